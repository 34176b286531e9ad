"""Role assignments, beside Batch AI's API: per workspace and per subscription
(shared/api/role_assignments.py); who may call what is shared/api/access.py."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import azure.functions as func

from functions.http_api import guarded, to_api_request, to_http_response
from functions import blueprint, tracing
from shared.api import access, role_assignments
from shared.api.generic import delete_resource, get_resource, list_children
from shared.api.request import ApiRequest, ApiResponse
from shared.composition import Services, services
from shared.ids import ROLE_ASSIGNMENT

bp = blueprint()

Handler = Callable[[Services, ApiRequest], ApiResponse]


def _serve(name: str, handler: Handler, req: func.HttpRequest) -> func.HttpResponse:
    def run() -> ApiResponse:
        svc, api_req = services(), to_api_request(req)
        access.check(svc, api_req, name)
        return handler(svc, api_req)

    return to_http_response(guarded(name, run))


def _route(name: str, route: str, method: str, handler: Handler) -> None:
    @tracing.traced_function(name)
    def trigger(req: func.HttpRequest) -> func.HttpResponse:
        return _serve(name, handler, req)

    trigger.__name__ = trigger.__qualname__ = name
    bp.function_name(name)(bp.route(route=route, methods=[method], auth_level=func.AuthLevel.ANONYMOUS)(trigger))


HANDLERS: dict[str, Handler] = {
    "RoleAssignments_Create": role_assignments.create_in_workspace,
    "RoleAssignments_Get": partial(get_resource, ROLE_ASSIGNMENT),
    "RoleAssignments_Delete": partial(delete_resource, ROLE_ASSIGNMENT),
    "RoleAssignments_List": partial(list_children, ROLE_ASSIGNMENT),
    "SubscriptionRoleAssignments_Create": role_assignments.create_in_subscription,
    "SubscriptionRoleAssignments_Get": role_assignments.get_in_subscription,
    "SubscriptionRoleAssignments_Delete": role_assignments.delete_in_subscription,
    "SubscriptionRoleAssignments_List": role_assignments.list_in_subscription,
}

for _name, _method, _route_path in role_assignments.ROUTES:
    _route(_name, _route_path, _method, HANDLERS[_name])
