"""Workspaces: the top of the hierarchy, the only resource with a location and tags."""

from __future__ import annotations

from shared import errors, resources
from shared.api.generic import put_resource, route_ref, timestamp
from shared.api.request import ApiRequest, ApiResponse, check_api_version, int_param, ok, page, parse_body
from shared.composition import Services
from shared.documents.resources import WorkspaceDocument
from shared.ids import WORKSPACE, check_resource_group, resource_group_key
from shared.models import WorkspaceCreateParameters, WorkspaceUpdateParameters


def create(svc: Services, req: ApiRequest) -> ApiResponse:
    ref = route_ref(WORKSPACE, req)
    params = parse_body(WorkspaceCreateParameters, req)
    tags = params.tags or {}

    def build() -> WorkspaceDocument:
        now = timestamp(svc.clock.now())
        resource = {
            "id": ref.arm_id, "name": ref.name, "type": WORKSPACE.arm_type,
            "location": params.location, "tags": tags,
            "properties": {"creationTime": now, "provisioningState": "succeeded",
                           "provisioningStateTransitionTime": now},
        }
        return resources.new_document(ref, WorkspaceDocument, resource)

    def reconcile(doc: WorkspaceDocument) -> bool:
        if doc.resource.location.lower() != params.location.lower():
            raise errors.Conflict(
                f"The Workspace already exists in location '{doc.resource.location}'; "
                "its location cannot be changed.", target="location")
        if (doc.resource.tags or {}) == tags:
            return False
        doc.resource.tags = tags
        return True

    return put_resource(svc, ref, WorkspaceDocument, build, reconcile)


def update(svc: Services, req: ApiRequest) -> ApiResponse:
    ref = route_ref(WORKSPACE, req)
    params = parse_body(WorkspaceUpdateParameters, req)

    def change(doc: WorkspaceDocument) -> bool:
        if params.tags is None:
            return False
        doc.resource.tags = params.tags
        return True

    return ok(resources.mutate(svc.store, ref, change, WorkspaceDocument).wire())


def list_all(svc: Services, req: ApiRequest) -> ApiResponse:
    """Workspaces of a subscription, or of one resource group when the route names it."""
    check_api_version(req)
    subscription = req.route["subscriptionId"]
    where: dict[str, object] = {"kind": WORKSPACE.name}
    if "resourceGroupName" in req.route:
        where["parent"] = resource_group_key(check_resource_group(req.route["resourceGroupName"]))
    max_results = int_param(req, "maxresults", 1000, 1, 1000)
    docs, token = resources.list_page(svc.store, subscription.lower(), where, max_results,
                                      req.query.get("$skiptoken"), WorkspaceDocument)
    return page([d.wire() for d in docs], req, token)
