"""The OpenAPI document (shared/api/openapi.py) covers every operation and hides no secret's nature."""

from __future__ import annotations

from typing import Any

from shared.api import openapi, role_assignments, sweeps
from shared.api.catalog import OPERATIONS


def operations(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {op["operationId"]: op for path in doc["paths"].values() for op in path.values()}


def test_every_catalog_operation_event_subscription_and_role_assignment_route_is_documented() -> None:
    documented = operations(openapi.document())
    beside = {r[0] for r in (*openapi.EVENT_SUBSCRIPTION_ROUTES, *openapi.JOB_EVENT_ROUTES, *role_assignments.ROUTES,
                             *sweeps.ROUTES)}
    assert {op.operation_id for op in OPERATIONS} | beside == set(documented)
    assert len(documented) == 49 and not any(p.startswith("/agent") or p.startswith("/files")
                                             for p in openapi.document()["paths"])


def test_path_parameters_api_version_bodies_and_errors() -> None:
    doc = openapi.document()
    create = doc["paths"]["/" + next(o.route for o in OPERATIONS if o.operation_id == "Jobs_Create")]["put"]
    names = [p["name"] for p in create["parameters"]]
    assert names == ["subscriptionId", "resourceGroupName", "workspaceName", "experimentName", "jobName", "api-version"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/JobCreateParameters"}
    assert create["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/Job")
    assert create["responses"]["default"]["content"]["application/json"]["schema"]["$ref"].endswith("/CloudError")


def test_every_reference_resolves_and_secrets_are_write_only() -> None:
    doc = openapi.document()
    schemas = doc["components"]["schemas"]

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            return ([node["$ref"]] if "$ref" in node else []) + [r for v in node.values() for r in refs(v)]
        return [r for v in node for r in refs(v)] if isinstance(node, list) else []

    assert all(r.removeprefix("#/components/schemas/") in schemas for r in refs(doc))
    assert schemas["UserAccountSettings"]["properties"]["adminUserPassword"]["writeOnly"] is True
    assert schemas["AzureStorageCredentialsInfo"]["properties"]["accountKey"]["writeOnly"] is True
    assert schemas["EventSubscriptionCreateProperties"]["properties"]["secret"]["writeOnly"] is True
    assert "writeOnly" not in schemas["UserAccountSettings"]["properties"]["adminUserName"]


def test_a_jobs_events_are_a_page_of_cloud_events() -> None:
    doc = openapi.document()
    route = "/" + openapi.JOB_EVENT_ROUTES[0][2]
    assert route.endswith("/experiments/{experimentName}/jobs/{jobName}/events")
    listed = doc["paths"][route]["get"]
    items = listed["responses"]["200"]["content"]["application/json"]["schema"]["properties"]["value"]["items"]
    assert listed["operationId"] == "JobEvents_List" and items == {"$ref": "#/components/schemas/JobEvent"}
    event = doc["components"]["schemas"]["JobEvent"]
    assert {"specversion", "id", "source", "type", "time", "sequence", "data"} <= set(event["properties"])
