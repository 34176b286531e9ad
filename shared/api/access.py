"""Who may call what: every operation authenticates its caller (shared/auth/authenticate.py) and
checks the caller's role where the operation acts — the workspace named in its route, else the
subscription. A role held on the subscription holds in each of its workspaces.

    any          the operations list, usages, the OpenAPI document, listing workspaces (filtered)
    reader       every read, listing a job's files and nodes, a subscription's dead letters
    contributor  every change: create, update, delete, terminate
    owner        granting and revoking roles
"""

from __future__ import annotations

from collections.abc import Mapping

from shared import errors
from shared.api import role_assignments
from shared.api.request import ApiRequest, ApiResponse
from shared.auth.principals import RANK, Principal
from shared.composition import Services
from shared.documents import base as documents
from shared.documents.nodes import SubscriptionRoleAssignment
from shared.documents.resources import RoleAssignmentDocument
from shared.ids import ROLE_ASSIGNMENT, WORKSPACE, ResourceRef
from shared.models.role_assignment import Role
from shared.ports.state_store import Query

ANYONE = frozenset({"Operations_List", "Usages_List", "OpenApi_Document", "Workspaces_List",
                    "Workspaces_ListByResourceGroup"})
WORKSPACE_LISTS = frozenset({"Workspaces_List", "Workspaces_ListByResourceGroup"})
READS_BY_POST = frozenset({"Jobs_ListOutputFiles", "Jobs_ListRemoteLoginInformation",
                           "Clusters_ListRemoteLoginInformation"})
GRANTS = frozenset({"RoleAssignments_Create", "RoleAssignments_Delete", "SubscriptionRoleAssignments_Create",
                    "SubscriptionRoleAssignments_Delete"})


class Forbidden(errors.ApiError):
    status, code = 403, "AuthorizationFailed"


def needed_role(operation_id: str, method: str) -> Role | None:
    """The least role an operation needs where it acts; None when being authenticated is enough."""
    if operation_id in ANYONE:
        return None
    if operation_id in GRANTS:
        return Role.OWNER
    if method in ("GET", "HEAD") or operation_id in READS_BY_POST:
        return Role.READER
    return Role.CONTRIBUTOR


def check(svc: Services, req: ApiRequest, operation_id: str) -> Principal:
    """The authenticated caller, allowed to run the operation (else 401 or 403)."""
    principal = svc.auth.authenticate(req.headers, req.query, svc.clock.now())
    require_role(svc, principal, req.route, operation_id, req.method)
    return principal


def require_role(svc: Services, principal: Principal, route: Mapping[str, str], operation_id: str,
                 method: str) -> None:
    """403 unless the principal holds the role the operation needs where it acts."""
    needed = needed_role(operation_id, method.upper())
    if needed is None or principal.superuser:
        return
    held = role_of(svc, principal, route)
    if held is None or RANK[held] < RANK[needed]:
        scope = _scope_label(route)
        raise Forbidden(f"The principal '{principal.name}' ({principal.id}) may not run {operation_id} on "
                        f"{scope}: it needs the {needed} role there and has "
                        f"{'the ' + str(held) + ' role' if held else 'none'}.")


def role_of(svc: Services, principal: Principal, route: Mapping[str, str]) -> Role | None:
    """The strongest role the principal holds on the route's workspace, or on its subscription."""
    subscription = route.get("subscriptionId", "")
    roles = [_role(d) for d in role_assignments.subscription_assignments(svc, subscription)
             if _holder(d) == principal.id] if subscription else []
    if "workspaceName" in route and "resourceGroupName" in route:
        workspace = ResourceRef.from_route(WORKSPACE, route)
        roles += [_role(d) for d in _workspace_assignments(svc, workspace) if _holder(d) == principal.id]
    return max(roles, key=lambda r: RANK[r], default=None)


def visible_workspaces(svc: Services, principal: Principal, req: ApiRequest, answer: ApiResponse) -> ApiResponse:
    """A workspace list shows a caller without a role on the subscription only the workspaces it has a role in."""
    if principal.superuser or answer.status != 200 or role_of(svc, principal, req.route) is not None:
        return answer
    subscription = req.route.get("subscriptionId", "").lower()
    mine = {d.workspace for d in documents.query(svc.store, RoleAssignmentDocument,
                                                 Query(where={"kind": ROLE_ASSIGNMENT.name}), pk=subscription)
            if _holder(d) == principal.id}
    kept = [w for w in answer.body.get("value", []) if _workspace_key(w["id"]) in mine]
    return ApiResponse(200, {**answer.body, "value": kept}, answer.headers)


def _workspace_assignments(svc: Services, workspace: ResourceRef) -> list[RoleAssignmentDocument]:
    where = {"kind": ROLE_ASSIGNMENT.name, "parent": workspace.key}
    return documents.query(svc.store, RoleAssignmentDocument, Query(where=where), pk=workspace.pk)


def _holder(doc: RoleAssignmentDocument | SubscriptionRoleAssignment) -> str:
    return doc.resource.properties.principal_id


def _role(doc: RoleAssignmentDocument | SubscriptionRoleAssignment) -> Role:
    return Role(doc.resource.properties.role)


def _workspace_key(arm_id: str) -> str | None:
    ref = ResourceRef.parse(arm_id, WORKSPACE)
    return ref.key if ref else None


def _scope_label(route: Mapping[str, str]) -> str:
    if "workspaceName" in route:
        return f"workspace '{route['workspaceName']}' of resource group '{route.get('resourceGroupName', '')}'"
    return f"subscription '{route.get('subscriptionId', '')}'"
