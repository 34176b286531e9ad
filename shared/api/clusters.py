"""Clusters: a pool of VMs of one size inside a workspace. Scaling them is the VM pool's work;
here they are created, read, re-scaled by PATCH and described."""

from __future__ import annotations

import uuid

from pydantic import ValidationError

from shared import errors, lanes, nodes, pools, resources
from shared.api.generic import get_resource, list_children, own_subnet, put_resource, refuse_changes, route_ref, timestamp
from shared.api.request import ApiRequest, ApiResponse, int_param, ok, page_of, parse_body, validation_error
from shared.composition import Services
from shared.cluster_keys import new_cluster_key
from shared.documents.base import JsonObject
from shared.documents.nodes import NodeDocument
from shared.documents.resources import ClusterDocument, ErrorEntry, NameValue, SshKeyPair
from shared.ids import CLUSTER, ResourceRef
from shared.node_boot import DEFAULT_IMAGE
from shared.models import ClusterBaseProperties, ClusterCreateParameters, ClusterUpdateParameters
from shared.models.cluster import ManualScaleSettings, ScaleSettings
from shared.scheduler import UNUSABLE

MUTABLE = frozenset({"scaleSettings"})
SSH_PORT = 22
DEFAULT_SCALE = ScaleSettings(manual=ManualScaleSettings(target_node_count=0))
# Batch AI gave a cluster that named no image Ubuntu 16.04 LTS, long retired: now a current LTS
# whose Python runs the agent (shared/node_boot.py says which, and why).
DEFAULT_VM_CONFIGURATION = {"imageReference": dict(DEFAULT_IMAGE)}


def create(svc: Services, req: ApiRequest) -> ApiResponse:
    ref = route_ref(CLUSTER, req)
    params = parse_body(ClusterCreateParameters, req).properties
    if params.scale_settings is None:
        params = params.model_copy(update={"scale_settings": DEFAULT_SCALE})
    scale = params.scale_settings or DEFAULT_SCALE
    check_pool_limit(svc, scale)
    check_subnet(svc, params)
    spec = params.to_wire(reveal_secrets=True)  # what a repeated PUT is compared with

    def build() -> ClusterDocument:
        now = timestamp(svc.clock.now())
        public = params.to_wire()  # the wire answer's properties (JSON until the model takes them)
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
        key = new_cluster_key()
        # uid names the cluster's lanes and pool; agentToken lets its nodes join (never returned).
        # sshKey: the key pair its nodes trust one another with, for mpirun (never returned either).
        return resources.new_document(ref, ClusterDocument, resources.envelope(ref, properties), params,
                                      uid=uuid.uuid4().hex[:16], agent_token=pools.new_agent_token(),
                                      provisioned=False, ssh_key=SshKeyPair(private=key.private, public=key.public))

    def reconcile(doc: ClusterDocument) -> bool:
        if not refuse_changes(CLUSTER, doc.spec.to_wire(reveal_secrets=True), spec, MUTABLE):
            return False
        return with_scale(doc, scale)

    answer = put_resource(svc, ref, ClusterDocument, build, reconcile, present=present)
    lanes.signal(svc.messaging, ref.key, ref.pk, lanes.RECONCILE)  # bring up (or resize) its nodes
    return answer


def present(svc: Services, cluster: ClusterDocument) -> JsonObject:
    """The cluster with its node counts as they are this moment (the answer's JSON)."""
    docs = nodes.list_docs(svc.store, cluster.cluster_uid)
    resource = cluster.wire()
    properties = resource["properties"]
    properties.update(currentNodeCount=len(docs), nodeStateCounts=nodes.state_counts(docs))
    failed = node_errors(docs)
    if failed:
        properties["errors"] = properties.get("errors", []) + [e.wire_json()
                                                               for e in failed]
    return resource


def node_errors(docs: list[NodeDocument]) -> list[ErrorEntry]:
    """Why nodes are unusable (a failed mount or setup task), one error per node."""
    return [ErrorEntry(code=d.error.code, message=f"Node {d.node_id}: {d.error.message}",
                       details=[NameValue(name="nodeId", value=d.node_id)])
            for d in docs if d.state == UNUSABLE and d.error]


def get(svc: Services, req: ApiRequest) -> ApiResponse:
    return get_resource(CLUSTER, svc, req, present)


def list_by_workspace(svc: Services, req: ApiRequest) -> ApiResponse:
    return list_children(CLUSTER, svc, req, present)


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
        return ok(present(svc, resources.require(svc.store, ref, ClusterDocument)))

    def change(doc: ClusterDocument) -> bool:
        current = doc.spec.scale_settings
        try:
            scale = patch.merged_into(current.to_wire() if current else None)
        except ValidationError as exc:
            raise validation_error(exc, prefix="properties.scaleSettings") from None
        check_pool_limit(svc, scale)
        return with_scale(doc, scale)

    doc = resources.mutate(svc.store, ref, change, ClusterDocument)
    lanes.signal(svc.messaging, ref.key, ref.pk, lanes.RECONCILE)
    return ok(present(svc, doc))


def check_pool_limit(svc: Services, scale: ScaleSettings) -> None:
    """The local pool runs a process per node: a size beyond `local_max_nodes` is a 400, not a fork bomb."""
    if not svc.settings.nodes_on_this_machine:
        return
    limit = svc.settings.local_max_nodes
    counts = [("manual", "targetNodeCount", scale.manual.target_node_count if scale.manual else None)]
    if scale.auto_scale is not None:
        counts += [("autoScale", "maximumNodeCount", scale.auto_scale.maximum_node_count),
                   ("autoScale", "initialNodeCount", scale.auto_scale.initial_node_count)]
    for kind, field, count in counts:
        if count is not None and count > limit:
            raise errors.InvalidParameter(
                f"The local pool runs at most {limit} nodes per cluster (BATCHAI_LOCAL_MAX_NODES); "
                f"{field} is {count}.", target=f"properties.scaleSettings.{kind}.{field}")


def check_subnet(svc: Services, spec: ClusterBaseProperties) -> None:
    """A VM scale set needs a subnet: the request's, or the deployment's default (BATCHAI_DEFAULT_SUBNET_ID)."""
    if svc.settings.pool == "vmss" and not svc.settings.default_subnet_id and not (spec.subnet and spec.subnet.id):
        raise errors.InvalidParameter(
            "This deployment has no default subnet for cluster nodes (BATCHAI_DEFAULT_SUBNET_ID): give "
            "properties.subnet.id, the resource id of a subnet the service's identity may join.",
            target="properties.subnet")


def with_scale(doc: ClusterDocument, scale: ScaleSettings) -> bool:
    """Set the cluster's scale settings (in its spec and its answer); False when they are the same."""
    current = doc.spec.scale_settings
    if current is not None and current.to_wire() == scale.to_wire():
        return False
    doc.spec.scale_settings = scale
    doc.props.scale_settings = scale
    return True


def list_remote_login(svc: Services, req: ApiRequest) -> ApiResponse:
    """Every node's address and SSH port, paged like every list."""
    ref = route_ref(CLUSTER, req)
    doc = resources.require(svc.store, ref, ClusterDocument)
    return remote_logins(req, nodes.list_docs(svc.store, doc.cluster_uid))


def remote_logins(req: ApiRequest, docs: list[NodeDocument]) -> ApiResponse:
    entries = [{"nodeId": d.node_id, "ipAddress": d.address, "port": SSH_PORT} for d in docs]
    return page_of(entries, req, int_param(req, "maxresults", 1000, 1, 1000))
