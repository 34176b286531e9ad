"""The 29 operations of the Batch AI 2018-05-01 API: id, method, route and the function that serves it.

Routes are written as Azure Functions route templates (no leading slash; the host's routePrefix
is empty so that paths are exactly ARM's)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from shared.api import clusters, experiments, file_servers, jobs, subscription, workspaces
from shared.api.generic import delete_resource, get_resource, list_children
from shared.api.request import ApiRequest, ApiResponse
from shared.composition import Services
from shared.ids import CLUSTER, EXPERIMENT, FILE_SERVER, JOB, WORKSPACE

Handler = Callable[[Services, ApiRequest], ApiResponse]


@dataclass(frozen=True)
class Operation:
    operation_id: str
    method: str
    route: str
    handler: Handler
    # A POST list whose nextLink the SDK follows with GET (ARM's convention for action lists).
    pages_by_get: bool = False


_SUB = "subscriptions/{subscriptionId}"
_RG = _SUB + "/resourceGroups/{resourceGroupName}/providers/Microsoft.BatchAI"
_WS = _RG + "/workspaces/{workspaceName}"
_CLUSTER = _WS + "/clusters/{clusterName}"
_FS = _WS + "/fileServers/{fileServerName}"
_EXP = _WS + "/experiments/{experimentName}"
_JOB = _EXP + "/jobs/{jobName}"

OPERATIONS: tuple[Operation, ...] = (
    Operation("Operations_List", "GET", "providers/Microsoft.BatchAI/operations", subscription.list_operations),
    Operation("Usages_List", "GET", _SUB + "/providers/Microsoft.BatchAI/locations/{location}/usages",
              subscription.list_usages),
    Operation("Workspaces_List", "GET", _SUB + "/providers/Microsoft.BatchAI/workspaces", workspaces.list_all),
    Operation("Workspaces_ListByResourceGroup", "GET", _RG + "/workspaces", workspaces.list_all),
    Operation("Workspaces_Create", "PUT", _WS, workspaces.create),
    Operation("Workspaces_Update", "PATCH", _WS, workspaces.update),
    Operation("Workspaces_Delete", "DELETE", _WS, partial(delete_resource, WORKSPACE)),
    Operation("Workspaces_Get", "GET", _WS, partial(get_resource, WORKSPACE)),
    Operation("Experiments_ListByWorkspace", "GET", _WS + "/experiments", partial(list_children, EXPERIMENT)),
    Operation("Experiments_Create", "PUT", _EXP, experiments.create),
    Operation("Experiments_Delete", "DELETE", _EXP, partial(delete_resource, EXPERIMENT)),
    Operation("Experiments_Get", "GET", _EXP, partial(get_resource, EXPERIMENT)),
    Operation("Jobs_ListByExperiment", "GET", _EXP + "/jobs", partial(list_children, JOB)),
    Operation("Jobs_Create", "PUT", _JOB, jobs.create),
    Operation("Jobs_Delete", "DELETE", _JOB, partial(delete_resource, JOB)),
    Operation("Jobs_Get", "GET", _JOB, partial(get_resource, JOB)),
    Operation("Jobs_ListOutputFiles", "POST", _JOB + "/listOutputFiles", jobs.list_output_files, True),
    Operation("Jobs_ListRemoteLoginInformation", "POST", _JOB + "/listRemoteLoginInformation",
              jobs.list_remote_login, True),
    Operation("Jobs_Terminate", "POST", _JOB + "/terminate", jobs.terminate),
    Operation("FileServers_Create", "PUT", _FS, file_servers.create),
    Operation("FileServers_Delete", "DELETE", _FS, partial(delete_resource, FILE_SERVER)),
    Operation("FileServers_Get", "GET", _FS, partial(get_resource, FILE_SERVER)),
    Operation("FileServers_ListByWorkspace", "GET", _WS + "/fileServers", partial(list_children, FILE_SERVER)),
    Operation("Clusters_Create", "PUT", _CLUSTER, clusters.create),
    Operation("Clusters_Update", "PATCH", _CLUSTER, clusters.update),
    Operation("Clusters_Delete", "DELETE", _CLUSTER, partial(delete_resource, CLUSTER)),
    Operation("Clusters_Get", "GET", _CLUSTER, clusters.get),
    Operation("Clusters_ListRemoteLoginInformation", "POST", _CLUSTER + "/listRemoteLoginInformation",
              clusters.list_remote_login, True),
    Operation("Clusters_ListByWorkspace", "GET", _WS + "/clusters", clusters.list_by_workspace),
)
