"""Clusters: a pool of VMs of one size inside a workspace. Scaling them is the VM pool's work;
here they are created, read, re-scaled by PATCH and described."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import ValidationError

from shared import errors, lanes, nodes, pools, resources
from shared.api.generic import (dict_present, get_resource, list_children, own_subnet, put_resource_json,  # bridge
                                refuse_changes, route_ref, timestamp)
from shared.api.request import ApiRequest, ApiResponse, int_param, ok, page_of, parse_body, validation_error
from shared.composition import Services
from shared.cluster_keys import new_cluster_key
from shared.ids import CLUSTER, ResourceRef
from shared.node_boot import DEFAULT_IMAGE
from shared.models import ClusterCreateParameters, ClusterUpdateParameters
from shared.scheduler import UNUSABLE

MUTABLE = frozenset({"scaleSettings"})
SSH_PORT = 22
DEFAULT_SCALE = {"manual": {"targetNodeCount": 0, "nodeDeallocationOption": "requeue"}}
# Batch AI gave a cluster that named no image Ubuntu 16.04 LTS, long retired: now a current LTS
# whose Python runs the agent (shared/node_boot.py says which, and why).
DEFAULT_VM_CONFIGURATION = {"imageReference": dict(DEFAULT_IMAGE)}


def create(svc: Services, req: ApiRequest) -> ApiResponse:
    ref = route_ref(CLUSTER, req)
    params = parse_body(ClusterCreateParameters, req).properties
    spec = params.to_wire(reveal_secrets=True)
    public = params.to_wire()
    for props in (spec, public):
        props.setdefault("scaleSettings", DEFAULT_SCALE)
    check_pool_limit(svc, spec["scaleSettings"])
    check_subnet(svc, spec)

    def build() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        now = timestamp(svc.clock.now())
        properties = public | {
            "virtualMachineConfiguration": public.get("virtualMachineConfiguration", DEFAULT_VM_CONFIGURATION),
            "subnet": public.get("subnet", {"id": own_subnet(ref)}),
            "creationTime": now,
            "provisioningState": "succeeded",
            "provisioningStateTransitionTime": now,
            "allocationState": "steady",
            "allocationStateTransitionTime": now,
        }
        task = properties.get("nodeSetup", {}).get("setupTask")
        if task is not None:
            task["stdOutErrPathSuffix"] = setup_task_suffix(ref)
        # uid names the cluster's lanes and pool; agentToken lets its nodes join (never returned).
        # sshKey: the key pair its nodes trust one another with, for mpirun (never returned either).
        extra = {"uid": uuid.uuid4().hex[:16], "agentToken": pools.new_agent_token(), "provisioned": False,
                 "sshKey": new_cluster_key().to_doc()}
        return resources.envelope(ref, properties), spec, extra

    def reconcile(doc: dict[str, Any]) -> dict[str, Any] | None:
        if not refuse_changes(CLUSTER, doc["spec"], spec, MUTABLE):
            return None
        return with_scale(doc, spec["scaleSettings"])

    answer = put_resource_json(svc, ref, build, reconcile, present=present)  # bridge
    lanes.signal(svc.messaging, ref.key, ref.pk, lanes.RECONCILE)  # bring up (or resize) its nodes
    return answer


def present(svc: Services, doc: dict[str, Any]) -> dict[str, Any]:
    """The cluster with its node counts as they are this moment."""
    docs = nodes.list_docs(svc.store, lanes.cluster_uid(doc))
    resource = dict(doc["resource"])
    resource["properties"] = dict(resource["properties"], currentNodeCount=len(docs),
                                  nodeStateCounts=nodes.state_counts(docs))
    failed = node_errors(docs)
    if failed:
        resource["properties"]["errors"] = resource["properties"].get("errors", []) + failed
    return resource


def node_errors(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Why nodes are unusable (a failed mount or setup task), one error per node."""
    return [{"code": d["error"]["code"], "message": f"Node {d['nodeId']}: {d['error']['message']}",
             "details": [{"name": "nodeId", "value": d["nodeId"]}]}
            for d in docs if d["state"] == UNUSABLE and d.get("error")]


def get(svc: Services, req: ApiRequest) -> ApiResponse:
    return get_resource(CLUSTER, svc, req, dict_present(present))  # bridge


def list_by_workspace(svc: Services, req: ApiRequest) -> ApiResponse:
    return list_children(CLUSTER, svc, req, dict_present(present))  # bridge


def setup_task_suffix(ref: ResourceRef) -> str:
    """Where under its prefix a cluster's setup task output goes: unique, so clusters never mix."""
    workspace, cluster = ref.names
    return f"{ref.subscription}/{ref.resource_group}/workspaces/{workspace}/clusters/{cluster}/{uuid.uuid4()}"


def update(svc: Services, req: ApiRequest) -> ApiResponse:
    """PATCH merges the given scaleSettings fields into the current ones, under the ETag."""
    ref = route_ref(CLUSTER, req)
    params = parse_body(ClusterUpdateParameters, req)
    patch = params.properties.scale_settings if params.properties else None
    if patch is None:
        return ok(present(svc, resources.require_json(svc.store, ref)))  # bridge

    def change(doc: dict[str, Any]) -> dict[str, Any] | None:
        try:
            scale = patch.merged_into(doc["spec"].get("scaleSettings"))
        except ValidationError as exc:
            raise validation_error(exc, prefix="properties.scaleSettings") from None
        check_pool_limit(svc, scale.to_wire())
        return with_scale(doc, scale.to_wire())

    doc = resources.mutate_json(svc.store, ref, change)  # bridge
    lanes.signal(svc.messaging, ref.key, ref.pk, lanes.RECONCILE)
    return ok(present(svc, doc))


def check_pool_limit(svc: Services, scale: dict[str, Any]) -> None:
    """The local pool runs a process per node: a size beyond `local_max_nodes` is a 400, not a fork bomb."""
    if not svc.settings.nodes_on_this_machine:
        return
    limit = svc.settings.local_max_nodes
    for kind, field in (("manual", "targetNodeCount"), ("autoScale", "maximumNodeCount"),
                        ("autoScale", "initialNodeCount")):
        count = (scale.get(kind) or {}).get(field)
        if count is not None and count > limit:
            raise errors.InvalidParameter(
                f"The local pool runs at most {limit} nodes per cluster (BATCHAI_LOCAL_MAX_NODES); "
                f"{field} is {count}.", target=f"properties.scaleSettings.{kind}.{field}")


def check_subnet(svc: Services, spec: dict[str, Any]) -> None:
    """A VM scale set needs a subnet: the request's, or the deployment's default (BATCHAI_DEFAULT_SUBNET_ID)."""
    if svc.settings.pool == "vmss" and not svc.settings.default_subnet_id and not (spec.get("subnet") or {}).get("id"):
        raise errors.InvalidParameter(
            "This deployment has no default subnet for cluster nodes (BATCHAI_DEFAULT_SUBNET_ID): give "
            "properties.subnet.id, the resource id of a subnet the service's identity may join.",
            target="properties.subnet")


def with_scale(doc: dict[str, Any], scale: dict[str, Any]) -> dict[str, Any] | None:
    if doc["spec"].get("scaleSettings") == scale:
        return None
    doc["spec"]["scaleSettings"] = scale
    doc["resource"]["properties"]["scaleSettings"] = scale
    return doc


def list_remote_login(svc: Services, req: ApiRequest) -> ApiResponse:
    """Every node's address and SSH port, paged like every list."""
    ref = route_ref(CLUSTER, req)
    doc = resources.require_json(svc.store, ref)  # bridge
    return remote_logins(req, nodes.list_docs(svc.store, lanes.cluster_uid(doc)))


def remote_logins(req: ApiRequest, docs: list[dict[str, Any]]) -> ApiResponse:
    entries = [{"nodeId": d["nodeId"], "ipAddress": d["address"], "port": SSH_PORT} for d in docs]
    return page_of(entries, req, int_param(req, "maxresults", 1000, 1, 1000))
