"""Role assignments, beside Batch AI's API: per workspace (`.../workspaces/{ws}/roleAssignments/{name}`,
children of the workspace in the store, gone with it) and per subscription
(`/subscriptions/{sub}/providers/Microsoft.BatchAI/roleAssignments/{name}`, in their own container).
Only owners (of the workspace, or of the subscription) may change them; readers may read them."""

from __future__ import annotations

from shared import errors, resources
from shared.api.generic import put_resource, route_ref, timestamp
from shared.api.request import ApiRequest, ApiResponse, check_api_version, int_param, ok, parse_body
from shared.composition import Services
from shared.documents import base as documents
from shared.documents.nodes import SubscriptionRoleAssignment
from shared.documents.resources import RoleAssignmentDocument, RoleAssignmentResource, RoleAssignmentResourceProperties
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


def _properties(req: ApiRequest, scope: str, now: str) -> RoleAssignmentResourceProperties:
    given = parse_body(RoleAssignmentCreateParameters, req).properties.to_wire()
    return RoleAssignmentResourceProperties.model_validate(given | {
        "scope": scope, "creationTime": now, "provisioningState": "succeeded", "provisioningStateTransitionTime": now})


def _same(stored: RoleAssignmentResourceProperties, wanted: RoleAssignmentResourceProperties) -> bool:
    return stored.given() == wanted.given()


def _kept(stored: RoleAssignmentResourceProperties, wanted: RoleAssignmentResourceProperties
          ) -> RoleAssignmentResourceProperties:
    """The wanted properties with the stored ones' creation and state kept."""
    return wanted.model_copy(update={"creation_time": stored.creation_time,
                                     "provisioning_state": stored.provisioning_state,
                                     "provisioning_state_transition_time": stored.provisioning_state_transition_time})


# -- per workspace ------------------------------------------------------------------------------
def create_in_workspace(svc: Services, req: ApiRequest) -> ApiResponse:
    ref = route_ref(ROLE_ASSIGNMENT, req)
    resources.require_parent(svc.store, ref)
    wanted = _properties(req, ref.workspace.arm_id, timestamp(svc.clock.now()))

    def build() -> RoleAssignmentDocument:
        return resources.new_document(ref, RoleAssignmentDocument, envelope(ref, wanted.to_json()), {})

    def reconcile(doc: RoleAssignmentDocument) -> bool:
        props = doc.resource.properties
        if _same(props, wanted):
            return False
        doc.resource.properties = _kept(props, wanted)
        return True

    return put_resource(svc, ref, RoleAssignmentDocument, build, reconcile)


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
    existing = documents.read(svc.store, SubscriptionRoleAssignment, pk, key)
    if existing is not None and _same(existing.resource.properties, wanted):
        return ok(existing.resource.wire_json())
    if existing is not None:
        wanted = _kept(existing.resource.properties, wanted)
    resource = RoleAssignmentResource(id=arm_id, name=req.route["roleAssignmentName"], type=SUBSCRIPTION_TYPE,
                                      properties=wanted)
    documents.upsert(svc.store, SubscriptionRoleAssignment(id=key, pk=pk, resource=resource))
    return ok(resource.wire_json())


def get_in_subscription(svc: Services, req: ApiRequest) -> ApiResponse:
    pk, key, arm_id = _sub_ref(req)
    doc = documents.read(svc.store, SubscriptionRoleAssignment, pk, key)
    if doc is None:
        raise errors.ResourceNotFound(f"No role assignment '{req.route['roleAssignmentName']}' in the "
                                      "subscription.", target="roleAssignmentName")
    return ok(doc.resource.wire_json())


def list_in_subscription(svc: Services, req: ApiRequest) -> ApiResponse:
    check_api_version(req)
    int_param(req, "maxresults", 1000, 1, 1000)
    docs = subscription_assignments(svc, req.route["subscriptionId"])
    return ok({"value": [d.resource.wire_json() for d in sorted(docs, key=lambda d: d.id)]})


def delete_in_subscription(svc: Services, req: ApiRequest) -> ApiResponse:
    pk, key, _ = _sub_ref(req)
    if svc.store.read(ROLE_ASSIGNMENTS.name, pk, key) is None:
        return ApiResponse(204)
    svc.store.delete(ROLE_ASSIGNMENTS.name, pk, key)
    return ApiResponse(200)


def subscription_assignments(svc: Services, subscription: str) -> list[SubscriptionRoleAssignment]:
    return documents.query(svc.store, SubscriptionRoleAssignment, Query(), pk=subscription.lower())
