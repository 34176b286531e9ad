"""The OpenAPI 3.1 document of the API, generated from the operation catalog and the pydantic models,
so that it can never drift from what the service accepts and answers (served at GET /openapi.json).

It covers Batch AI's 29 operations and, beside them, the event subscriptions, a job's events,
the role assignments and the sweeps; the node agents' API and
the signed file downloads are internal and left out. Schemas are the models' validation JSON schemas
with wire names (the service answers what its own client reads back with these models); secret
fields are `writeOnly`, since they are accepted and never returned.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from shared import models
from shared.api import role_assignments, sweeps
from shared.api.catalog import OPERATIONS
from shared.api.request import API_VERSION
from shared.ids import NAME_PATTERN, RESOURCE_GROUP_PATTERN, SUBSCRIPTION_PATTERN
from shared.models import event_subscription as subs
from shared.models import role_assignment as roles
from shared.models.job_event import JobEvent
from shared.models.base import WireModel
from shared.sweeps import models as sweep_models

REF = "#/components/schemas/{model}"
_WS = ("subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.BatchAI"
       "/workspaces/{workspaceName}")
_SUB = _WS + "/eventSubscriptions/{eventSubscriptionName}"
_JOB = _WS + "/experiments/{experimentName}/jobs/{jobName}"

# operation id -> (request body model, answer model); None: no body. Kept beside the catalog because
# the catalog only says how an operation is routed, not what it carries.
BODIES: dict[str, tuple[type[BaseModel] | None, type[BaseModel] | None]] = {
    "Operations_List": (None, models.OperationListResult),
    "Usages_List": (None, models.ListUsagesResult),
    "Workspaces_List": (None, models.WorkspaceListResult),
    "Workspaces_ListByResourceGroup": (None, models.WorkspaceListResult),
    "Workspaces_Create": (models.WorkspaceCreateParameters, models.Workspace),
    "Workspaces_Update": (models.WorkspaceUpdateParameters, models.Workspace),
    "Workspaces_Delete": (None, None),
    "Workspaces_Get": (None, models.Workspace),
    "Experiments_ListByWorkspace": (None, models.ExperimentListResult),
    "Experiments_Create": (None, models.Experiment),
    "Experiments_Delete": (None, None),
    "Experiments_Get": (None, models.Experiment),
    "Jobs_ListByExperiment": (None, models.JobListResult),
    "Jobs_Create": (models.JobCreateParameters, models.Job),
    "Jobs_Delete": (None, None),
    "Jobs_Get": (None, models.Job),
    "Jobs_ListOutputFiles": (None, models.FileListResult),
    "Jobs_ListRemoteLoginInformation": (None, models.RemoteLoginInformationListResult),
    "Jobs_Terminate": (None, None),
    "FileServers_Create": (models.FileServerCreateParameters, models.FileServer),
    "FileServers_Delete": (None, None),
    "FileServers_Get": (None, models.FileServer),
    "FileServers_ListByWorkspace": (None, models.FileServerListResult),
    "Clusters_Create": (models.ClusterCreateParameters, models.Cluster),
    "Clusters_Update": (models.ClusterUpdateParameters, models.Cluster),
    "Clusters_Delete": (None, None),
    "Clusters_Get": (None, models.Cluster),
    "Clusters_ListRemoteLoginInformation": (None, models.RemoteLoginInformationListResult),
    "Clusters_ListByWorkspace": (None, models.ClusterListResult),
    "EventSubscriptions_Create": (subs.EventSubscriptionCreateParameters, subs.EventSubscription),
    "EventSubscriptions_Get": (None, subs.EventSubscription),
    "EventSubscriptions_Delete": (None, None),
    "EventSubscriptions_ListByWorkspace": (None, None),  # a page of EventSubscription (_list_of)
    "EventSubscriptions_ListDeadLetters": (None, None),  # a page of DeadLetter (_list_of)
    "JobEvents_List": (None, None),  # a page of JobEvent (_list_of)
    "RoleAssignments_Create": (roles.RoleAssignmentCreateParameters, roles.RoleAssignment),
    "RoleAssignments_Get": (None, roles.RoleAssignment),
    "RoleAssignments_Delete": (None, None),
    "RoleAssignments_List": (None, None),  # a page of RoleAssignment (_list_of)
    "SubscriptionRoleAssignments_Create": (roles.RoleAssignmentCreateParameters, roles.RoleAssignment),
    "SubscriptionRoleAssignments_Get": (None, roles.RoleAssignment),
    "SubscriptionRoleAssignments_Delete": (None, None),
    "SubscriptionRoleAssignments_List": (None, None),
    "Sweeps_Create": (sweep_models.SweepCreateParameters, sweep_models.Sweep),
    "Sweeps_Get": (None, sweep_models.Sweep),
    "Sweeps_Delete": (None, None),
    "Sweeps_ListByExperiment": (None, None),  # a page of Sweep (_list_of)
    "Sweeps_Cancel": (None, sweep_models.Sweep),
    "Sweeps_ListTrials": (None, None),  # a page of Trial (_list_of)
}

# The event subscription routes (functions/events.py): (operation id, method, route).
EVENT_SUBSCRIPTION_ROUTES: tuple[tuple[str, str, str], ...] = (
    ("EventSubscriptions_Create", "PUT", _SUB),
    ("EventSubscriptions_Get", "GET", _SUB),
    ("EventSubscriptions_Delete", "DELETE", _SUB),
    ("EventSubscriptions_ListByWorkspace", "GET", _WS + "/eventSubscriptions"),
    ("EventSubscriptions_ListDeadLetters", "GET", _SUB + "/deadLetters"),
)
# A job's events (functions/events.py).
JOB_EVENT_ROUTES: tuple[tuple[str, str, str], ...] = (("JobEvents_List", "GET", _JOB + "/events"),)
_LISTS_OF = {"EventSubscriptions_ListByWorkspace": "EventSubscription",
             "EventSubscriptions_ListDeadLetters": "DeadLetter", "JobEvents_List": "JobEvent",
             "RoleAssignments_List": "RoleAssignment",
             "SubscriptionRoleAssignments_List": "RoleAssignment", "Sweeps_ListByExperiment": "Sweep",
             "Sweeps_ListTrials": "Trial"}

# The service checks these path parameters against the spec's patterns (shared/ids.py).
_NAME = {"type": "string", "pattern": NAME_PATTERN.pattern, "minLength": 1, "maxLength": 64}
_PATH_SCHEMAS: dict[str, dict[str, Any]] = {
    "resourceGroupName": {"type": "string", "pattern": RESOURCE_GROUP_PATTERN.pattern, "minLength": 1,
                          "maxLength": 90},
    "subscriptionId": {"type": "string", "pattern": SUBSCRIPTION_PATTERN.pattern, "minLength": 1, "maxLength": 64},
    "location": {"type": "string", "minLength": 1, "maxLength": 90},
}
_MAXRESULTS = {"name": "maxresults", "in": "query", "required": False,
               "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 1000}}
_SKIPTOKEN = {"name": "$skiptoken", "in": "query", "required": False, "schema": {"type": "string"}}
_OUTPUT_FILES_QUERY = [
    {"name": "outputdirectoryid", "in": "query", "required": True, "schema": {"type": "string", "minLength": 1}},
    {"name": "directory", "in": "query", "required": False, "schema": {"type": "string", "default": "."}},
    {"name": "linkexpiryinminutes", "in": "query", "required": False,
     "schema": {"type": "integer", "minimum": 5, "maximum": 600, "default": 60}},
]


def routes() -> list[tuple[str, str, str]]:
    """(operation id, method, route) of every documented operation."""
    return ([(op.operation_id, op.method, op.route) for op in OPERATIONS] + list(EVENT_SUBSCRIPTION_ROUTES)
            + list(JOB_EVENT_ROUTES) + list(role_assignments.ROUTES) + list(sweeps.ROUTES))


@cache
def document() -> dict[str, Any]:
    """The whole OpenAPI document (built once: it depends only on the code)."""
    paths: dict[str, dict[str, Any]] = {}
    for operation_id, method, route in routes():
        paths.setdefault("/" + route, {})[method.lower()] = operation(operation_id, route)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Batch AI, rebuilt", "version": API_VERSION,
                 "description": "Batch AI's management API 2018-05-01, and event subscriptions and job events "
                                "beside it."},
        "paths": paths,
        "components": {"schemas": schemas(),
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
    }


def operation(operation_id: str, route: str) -> dict[str, Any]:
    request, answer = BODIES[operation_id]
    out: dict[str, Any] = {"operationId": operation_id, "parameters": parameters(operation_id, route),
                           "responses": responses(operation_id, answer)}
    if request is not None:
        out["requestBody"] = {"required": True, "content": {"application/json": {"schema": ref(request)}}}
    return out


def parameters(operation_id: str, route: str) -> list[dict[str, Any]]:
    """Path parameters from the route template, api-version, and the query options of lists."""
    found = [{"name": name, "in": "path", "required": True, "schema": _PATH_SCHEMAS.get(name, _NAME)}
             for name in re.findall(r"\{(\w+)\}", route)]
    found.append({"name": "api-version", "in": "query", "required": True,
                  "schema": {"type": "string", "enum": [API_VERSION]}})
    if operation_id == "Jobs_ListOutputFiles":
        found += _OUTPUT_FILES_QUERY
    if "List" in operation_id and operation_id not in ("Operations_List", "Usages_List"):
        found += [_MAXRESULTS, _SKIPTOKEN]
    return found


def responses(operation_id: str, answer: type[BaseModel] | None) -> dict[str, Any]:
    """The success answers, and a CloudError for everything else."""
    error = {"description": "A CloudError naming the offending field.",
             "content": {"application/json": {"schema": ref(models.CloudError)}}}
    if operation_id.endswith("_Delete"):
        return {"200": {"description": "Deleted."}, "204": {"description": "Nothing to delete."}, "default": error}
    if operation_id in _LISTS_OF:
        schema = _list_of(_LISTS_OF[operation_id])
    elif answer is None:
        return {"200": {"description": "Done."}, "default": error}
    else:
        schema = ref(answer)
    return {"200": {"description": "OK.", "content": {"application/json": {"schema": schema}}}, "default": error}


def _list_of(model: str) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False,
            "properties": {"value": {"type": "array", "items": {"$ref": REF.format(model=model)}},
                           "nextLink": {"type": "string"}}}


def ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def schemas() -> dict[str, Any]:
    """Every model's wire JSON schema (validation mode: the models' serializer hides their shape)."""
    wanted = {m for pair in BODIES.values() for m in pair if m is not None}
    wanted |= {models.CloudError, subs.EventSubscription, subs.DeadLetter, JobEvent, roles.RoleAssignment,
               sweep_models.Trial}
    _, top = models_json_schema([(m, "validation") for m in sorted(wanted, key=lambda m: m.__name__)],
                                by_alias=True, ref_template=REF)
    found: dict[str, Any] = top.get("$defs", {})
    mark_secrets(found)
    return found


def mark_secrets(found: dict[str, Any]) -> None:
    """Secret fields are accepted and never returned: writeOnly."""
    classes = {cls.__name__: cls for cls in _subclasses(WireModel)}
    for name, schema in found.items():
        cls = classes.get(name)
        if cls is None:
            continue
        for attribute in getattr(cls, "_secret_fields", ()):
            alias = cls.model_fields[attribute].alias or attribute
            if alias in schema.get("properties", {}):
                schema["properties"][alias]["writeOnly"] = True


def _subclasses(cls: type[WireModel]) -> list[type[WireModel]]:
    out: list[type[WireModel]] = []
    for sub in cls.__subclasses__():
        out += [sub, *_subclasses(sub)]
    return out
