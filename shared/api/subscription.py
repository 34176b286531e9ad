"""Subscription-wide reads: the operations the provider offers and the usage of quotas."""

from __future__ import annotations

from shared import errors
from shared.api.request import ApiRequest, ApiResponse, check_api_version, ok
from shared.composition import Services
from shared.documents import base as documents
from shared.documents.base import JsonObject  # the operations and usages are answer bodies (wire JSON)
from shared.documents.resources import ClusterDocument, WorkspaceDocument
from shared.ids import CLUSTER, WORKSPACE
from shared.ports.state_store import Query
from shared.vm_sizes import lookup

PROVIDER_NAME = "Microsoft Batch AI"
CLUSTER_LIMIT = 200
DEDICATED_CORE_LIMIT = 600
LOW_PRIORITY_CORE_LIMIT = 150

# (resource path, resource display name, plural noun) -> read / write / delete
_RESOURCES = (
    ("workspaces", "Batch AI Workspaces", "workspace"),
    ("workspaces/clusters", "Batch AI Clusters", "cluster"),
    ("workspaces/fileservers", "Batch AI File Servers", "file server"),
    ("workspaces/experiments", "Batch AI Experiments", "experiment"),
    ("workspaces/experiments/jobs", "Batch AI Jobs", "job"),
)
_ACTIONS = (
    ("workspaces/clusters/remoteLoginInformation/action", "Batch AI Clusters",
     "List remote login information of a Batch AI cluster"),
    ("workspaces/experiments/jobs/terminate/action", "Batch AI Jobs", "Terminate a Batch AI job"),
    ("workspaces/experiments/jobs/listoutputfiles/action", "Batch AI Jobs", "List output files of a Batch AI job"),
    ("workspaces/experiments/jobs/remoteLoginInformation/action", "Batch AI Jobs",
     "List remote login information of a Batch AI job"),
    ("locations/usages/read", "Batch AI Usages", "List Batch AI usages of a subscription in a location"),
)


def _operation(name: str, resource: str, operation: str, description: str) -> JsonObject:
    return {"name": f"Microsoft.BatchAI/{name}", "origin": "user,system",
            "display": {"provider": PROVIDER_NAME, "resource": resource, "operation": operation,
                        "description": description},
            "properties": None}


def operations() -> list[JsonObject]:
    out = []
    for path, display, noun in _RESOURCES:
        out.append(_operation(f"{path}/read", display, f"List or get Batch AI {noun}s",
                              f"Lists Batch AI {noun}s or gets the properties of a Batch AI {noun}"))
        out.append(_operation(f"{path}/write", display, f"Create or update Batch AI {noun}",
                              f"Creates a new Batch AI {noun} or updates an existing one"))
        out.append(_operation(f"{path}/delete", display, f"Delete Batch AI {noun}", f"Deletes a Batch AI {noun}"))
    out.extend(_operation(path, display, text, text) for path, display, text in _ACTIONS)
    return out


def list_operations(svc: Services, req: ApiRequest) -> ApiResponse:
    check_api_version(req)
    return ok({"value": operations()})


def _usage(name: str, current: int, limit: int) -> JsonObject:
    return {"unit": "Count", "currentValue": current, "limit": limit, "name": {"value": name, "localizedValue": name}}


def _current_nodes(doc: ClusterDocument) -> int:
    """currentNodeCount as stored: reads add it to their answers (api/clusters.py's present) but no
    write stores it, so this is 0 today — kept as it was; the usage of cores waits for a fix."""
    return int((doc.resource.properties.model_extra or {}).get("currentNodeCount", 0))


def list_usages(svc: Services, req: ApiRequest) -> ApiResponse:
    """Clusters and allocated vCPUs (by priority and family) of the workspaces in one location."""
    check_api_version(req)
    location = req.route["location"]
    if not location or len(location) > 90:
        raise errors.InvalidParameter("The location is not valid.", target="location")
    pk = req.route["subscriptionId"].lower()
    workspaces = [d.id for d in documents.query(svc.store, WorkspaceDocument, Query(where={"kind": WORKSPACE.name}),
                                                pk=pk)
                  if d.resource.location.lower() == location.lower()]
    clusters = documents.query(svc.store, ClusterDocument, Query(where={"kind": CLUSTER.name, "workspace": workspaces}),
                               pk=pk) if workspaces else []
    cores = {"dedicated": 0, "lowpriority": 0}
    families: dict[tuple[str, str], int] = {}
    for doc in clusters:
        size = lookup(doc.spec.vm_size)
        priority = str(doc.spec.vm_priority)
        used = size.cores * _current_nodes(doc)
        cores[priority] += used
        families[(size.family, priority)] = families.get((size.family, priority), 0) + used
    value = [
        _usage("Clusters", len(clusters), CLUSTER_LIMIT),
        _usage("Total Cluster Dedicated Regional vCPUs", cores["dedicated"], DEDICATED_CORE_LIMIT),
        _usage("Total Cluster LowPriority Regional vCPUs", cores["lowpriority"], LOW_PRIORITY_CORE_LIMIT),
    ]
    for (family, priority), used in sorted(families.items()):
        label = "Dedicated" if priority == "dedicated" else "LowPriority"
        limit = DEDICATED_CORE_LIMIT if priority == "dedicated" else LOW_PRIORITY_CORE_LIMIT
        value.append(_usage(f"{family} Cluster {label} vCPUs", used, limit))
    return ok({"value": value})
