"""Role assignments, beside Batch AI's API: per workspace (`.../workspaces/{ws}/roleAssignments/{name}`,
children of the workspace in the store, gone with it) and per subscription
(`/subscriptions/{sub}/providers/Microsoft.BatchAI/roleAssignments/{name}`, in their own container).
Only owners (of the workspace, or of the subscription) may change them; readers may read them."""

from __future__ import annotations

from typing import Any

from shared import errors, resources
from shared.api.generic import put_resource, route_ref, timestamp
from shared.api.request import ApiRequest, ApiResponse, check_api_version, int_param, ok, parse_body
from shared.composition import Services
from shared.ids import ROLE_ASSIGNMENT, check_name, check_subscription
from shared.models.role_assignment import RoleAssignmentCreateParameters
from shared.ports.state_store import Query
from shared.resources import ROLE_ASSIGNMENTS, envelope

SUBSCRIPTION_TYPE = "Microsoft.BatchAI/RoleAssignments"
# Routes (Functions route templates): the lists; an assignment adds "/{roleAssignmentName}".
IN_WORKSPACE = ("subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.BatchAI"
                "/workspaces/{workspaceName}/roleAssignments")
IN_SUBSCRIPTION = "subscriptions/{subscriptionId}/providers/Microsoft.BatchAI/roleAssignments"
ONE = "/{roleAssignmentName}"
# (operation id, method, route) of each operation
ROUTES: tuple[tuple[str, str, str], ...] = (
    ("RoleAssignments_Create", "PUT", IN_WORKSPACE + ONE),
    ("RoleAssignments_Get", "GET", IN_WORKSPACE + ONE),
    ("RoleAssignments_Delete", "DELETE", IN_WORKSPACE + ONE),
    ("RoleAssignments_List", "GET", IN_WORKSPACE),
    ("SubscriptionRoleAssignments_Create", "PUT", IN_SUBSCRIPTION + ONE),
    ("SubscriptionRoleAssignments_Get", "GET", IN_SUBSCRIPTION + ONE),
    ("SubscriptionRoleAssignments_Delete", "DELETE", IN_SUBSCRIPTION + ONE),
    ("SubscriptionRoleAssignments_List", "GET", IN_SUBSCRIPTION),
)
KEPT = ("creationTime", "provisioningState", "provisioningStateTransitionTime")


def _properties(req: ApiRequest, scope: str, now: str) -> dict[str, Any]:
    given = parse_body(RoleAssignmentCreateParameters, req).properties.to_wire()
    return given | {"scope": scope, "creationTime": now, "provisioningState": "succeeded",
                    "provisioningStateTransitionTime": now}


def _same(stored: dict[str, Any], wanted: dict[str, Any]) -> bool:
    return {k: v for k, v in stored.items() if k not in KEPT} == {k: v for k, v in wanted.items() if k not in KEPT}


# -- per workspace ------------------------------------------------------------------------------
def create_in_workspace(svc: Services, req: ApiRequest) -> ApiResponse:
    ref = route_ref(ROLE_ASSIGNMENT, req)
    resources.require_parent(svc.store, ref)
    wanted = _properties(req, ref.workspace.arm_id, timestamp(svc.clock.now()))

    def build() -> tuple[dict[str, Any], dict[str, Any]]:
        return envelope(ref, wanted), {}

    def reconcile(doc: dict[str, Any]) -> dict[str, Any] | None:
        props = doc["resource"]["properties"]
        if _same(props, wanted):
            return None
        doc["resource"]["properties"] = wanted | {k: props[k] for k in KEPT}
        return doc

    return put_resource(svc, ref, build, reconcile)


# -- per subscription ---------------------------------------------------------------------------
def _sub_ref(req: ApiRequest) -> tuple[str, str, str]:
    """(partition, document id, ARM id) of a subscription-wide assignment."""
    check_api_version(req)
    subscription = check_subscription(req.route["subscriptionId"])
    name = check_name("roleAssignmentName", req.route["roleAssignmentName"])
    arm_id = f"/subscriptions/{subscription}/providers/Microsoft.BatchAI/roleAssignments/{name}"
    return subscription.lower(), name.lower(), arm_id


def create_in_subscription(svc: Services, req: ApiRequest) -> ApiResponse:
    pk, key, arm_id = _sub_ref(req)
    subscription = req.route["subscriptionId"]
    wanted = _properties(req, f"/subscriptions/{subscription}", timestamp(svc.clock.now()))
    existing = svc.store.read(ROLE_ASSIGNMENTS.name, pk, key)
    if existing is not None and _same(existing["resource"]["properties"], wanted):
        return ok(existing["resource"])
    if existing is not None:
        wanted |= {k: existing["resource"]["properties"][k] for k in KEPT}
    resource = {"id": arm_id, "name": req.route["roleAssignmentName"], "type": SUBSCRIPTION_TYPE,
                "properties": wanted}
    svc.store.upsert(ROLE_ASSIGNMENTS.name, {"id": key, "pk": pk, "resource": resource})
    return ok(resource)


def get_in_subscription(svc: Services, req: ApiRequest) -> ApiResponse:
    pk, key, arm_id = _sub_ref(req)
    doc = svc.store.read(ROLE_ASSIGNMENTS.name, pk, key)
    if doc is None:
        raise errors.ResourceNotFound(f"No role assignment '{req.route['roleAssignmentName']}' in the "
                                      "subscription.", target="roleAssignmentName")
    return ok(doc["resource"])


def list_in_subscription(svc: Services, req: ApiRequest) -> ApiResponse:
    check_api_version(req)
    int_param(req, "maxresults", 1000, 1, 1000)
    docs = subscription_assignments(svc, req.route["subscriptionId"])
    return ok({"value": [d["resource"] for d in sorted(docs, key=lambda d: d["id"])]})


def delete_in_subscription(svc: Services, req: ApiRequest) -> ApiResponse:
    pk, key, _ = _sub_ref(req)
    if svc.store.read(ROLE_ASSIGNMENTS.name, pk, key) is None:
        return ApiResponse(204)
    svc.store.delete(ROLE_ASSIGNMENTS.name, pk, key)
    return ApiResponse(200)


def subscription_assignments(svc: Services, subscription: str) -> list[dict[str, Any]]:
    return svc.store.query(ROLE_ASSIGNMENTS.name, Query(), pk=subscription.lower())
