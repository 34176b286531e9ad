"""The pool manager: keeps each cluster's VM pool, node documents and allocation state in line with
its scale settings (shared/autoscale.py decides the size; this module carries it out).

Runs under the cluster's lease (leases.py), from the cluster-work queue and from a timer, and is
idempotent: every run compares what the pool has, what the store says and what is wanted.
"""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta
from typing import Any

from shared import autoscale, job_runs, lane_repair, lanes, node_package, nodes, watchdog
from shared.node_boot import DEFAULT_IMAGE
from shared.composition import Services
from shared.nodes import stamp
from shared.ports.state_store import Query
from shared.ports.blob_store import Account
from shared.ports.vm_pool import AgentBootstrap, PoolNotFound, PoolSpec
from shared.resources import R
from shared.resources import mutate_doc_json as mutate_doc  # bridge
from shared.scheduler import LEAVING, UNUSABLE
from shared.settings import Settings
from shared.documents.nodes import NodeDocument
from shared.documents.resources import JobDocument

log = logging.getLogger(__name__)


def pool_id(cluster: dict[str, Any]) -> str:
    return f"c{lanes.cluster_uid(cluster)}"


def new_agent_token() -> str:
    return secrets.token_urlsafe(32)


def pool_spec(svc: Services, cluster: dict[str, Any]) -> PoolSpec:
    spec = cluster["spec"]
    account = spec.get("userAccountSettings", {})
    image = (spec.get("virtualMachineConfiguration") or {}).get("imageReference") or DEFAULT_IMAGE
    key = cluster.get("sshKey") or {}
    return PoolSpec(
        pool_id=pool_id(cluster), vm_size=spec["vmSize"], vm_priority=spec.get("vmPriority", "dedicated"),
        image_reference=image, admin_user_name=account.get("adminUserName", "batchai"),
        admin_password=account.get("adminUserPassword"), admin_ssh_public_key=account.get("adminUserSshPublicKey"),
        subnet_id=(spec.get("subnet") or {}).get("id"), location=svc.settings.default_location,
        bootstrap=AgentBootstrap(endpoint=svc.settings.public_endpoint, cluster_id=cluster["resource"]["id"],
                                 token=cluster["agentToken"], telemetry=agent_telemetry(svc.settings),
                                 ssh_private_key=key.get("private", ""), ssh_public_key=key.get("public", ""),
                                 agent_url=agent_bundle_url(svc)),
        tags={"batchai-cluster": cluster["resource"]["id"][-256:]})


def agent_bundle_url(svc: Services) -> str:
    """The signed URL VMs fetch the agent from (shared/node_package.py); local agents need none.
    Valid for a year: VMs a scale set adds later boot with the same user data."""
    if svc.settings.pool == "local":
        return ""
    account = Account(svc.settings.agent_storage_account, svc.settings.agent_storage_key)
    return node_package.bundle_url(svc.blobs, account, svc.clock.now() + timedelta(days=365))


def agent_telemetry(settings: Settings) -> dict[str, str]:
    """The control plane's exporter choice for its agents, which see none of its settings. The
    directory serves the `file` exporter of local agents; an agent on a VM uses its node's folder."""
    return {"exporter": settings.otel_exporter, "endpoint": settings.otel_endpoint,
            "directory": str(settings.data_dir.resolve() / "telemetry")}


def reconcile(svc: Services, cluster: dict[str, Any]) -> None:
    """Bring the cluster's pool to the size it should have now. Call under the lease."""
    uid = lanes.cluster_uid(cluster)
    if not cluster.get("provisioned"):
        lanes.create_lanes(svc.messaging, uid)
        lane_repair.repair(svc, cluster, confirm=False)  # jobs created before the lanes existed join them now
        svc.pool.create_pool(pool_spec(svc, cluster))
        cluster = mutate_doc(svc.store, cluster, lambda d: d.update(provisioned=True) or True) or cluster
    if not _sync(svc, cluster, uid):
        mutate_doc(svc.store, cluster, lambda d: d.update(provisioned=False) or True)
        return
    lost = watchdog.watch(svc, cluster, uid)
    if lost:  # they leave the pool; the resize below replaces them
        svc.pool.remove_nodes(pool_id(cluster), lost)
        for node_id in lost:
            nodes.delete(svc.store, uid, node_id)
    _repair_claims(svc, nodes.list_docs(svc.store, uid))
    target = _resize(svc, cluster, uid, {d["nodeId"]: d for d in nodes.list_docs(svc.store, uid)})
    _sync(svc, cluster, uid)  # nodes it just asked for get their documents now, not a round later
    _update_allocation(svc, cluster, uid, target)


def _sync(svc: Services, cluster: dict[str, Any], uid: str) -> bool:
    """Node documents for what the pool has: new machines join as preparing; lost or failed ones
    leave (their attempts start again elsewhere) and are replaced by the resize that follows.
    False when the pool does not exist."""
    try:
        pool_nodes = {n.node_id: n for n in svc.pool.list_nodes(pool_id(cluster))}
    except PoolNotFound:
        return False
    docs = {d["nodeId"]: d for d in nodes.list_docs(svc.store, uid)}
    lost = [d for node_id, d in docs.items() if node_id not in pool_nodes]
    failed = [n.node_id for n in pool_nodes.values() if n.state == "failed"]
    evictable = cluster["spec"].get("vmPriority") == "lowpriority"  # a lost Spot VM was most likely evicted
    for doc in lost + [docs[n] for n in failed if n in docs]:
        if evictable and doc in lost:
            job_runs.requeue_holder(svc, NodeDocument.load(doc),  # bridge
                                    "NodePreempted", f"The low-priority node {doc['nodeId']} was evicted.")
        else:
            job_runs.requeue_holder(svc, NodeDocument.load(doc),  # bridge
                                    "NodeLost", f"The node {doc['nodeId']} was lost.", failure=True)
        nodes.delete(svc.store, uid, doc["nodeId"])
    if failed:
        svc.pool.remove_nodes(pool_id(cluster), failed)
    now = svc.clock.now()
    for node in pool_nodes.values():
        if node.node_id not in docs and node.state in ("creating", "running"):
            nodes.ensure(svc.store, nodes.new_doc(uid, node.node_id, cluster["id"], cluster["pk"], node.address, now))
    return True


def _resize(svc: Services, cluster: dict[str, Any], uid: str, docs: dict[str, dict[str, Any]]) -> int:
    """Grow or shrink the pool towards the size it should have; returns that size."""
    scale = cluster["spec"]["scaleSettings"]
    views = [nodes.view(d) for d in docs.values()]
    demand = autoscale.Demand(queued=[int(j["resource"]["properties"]["nodeCount"]) for j in demand_jobs(svc, cluster)])
    idle = timedelta(seconds=svc.settings.autoscale_idle_seconds)
    target = autoscale.target_size(scale, views, demand, svc.clock.now(), idle)
    live = [v for v in views if v.state not in (LEAVING, UNUSABLE)]
    leaving = [v for v in views if v.state == LEAVING]
    done_leaving = [v.node_id for v in leaving if v.job is None]
    if len(live) < target:
        svc.pool.resize(pool_id(cluster), target + len(leaving))
    elif len(live) > target:
        shrink = autoscale.choose_removals(live, len(live) - target)
        option = (scale.get("manual") or {}).get("nodeDeallocationOption", "requeue")
        for node_id in shrink.running:
            _deallocate(svc, docs[node_id], option)
        done_leaving += shrink.remove
        done_leaving += [n for n in shrink.running if option != "waitforjobcompletion"]
    if done_leaving:
        now = svc.clock.now()
        for node_id in done_leaving:
            nodes.set_state(svc.store, uid, node_id, LEAVING, now)
        svc.pool.remove_nodes(pool_id(cluster), done_leaving)
        for node_id in done_leaving:
            nodes.delete(svc.store, uid, node_id)
    return target


def _deallocate(svc: Services, doc: dict[str, Any], option: str) -> None:
    """A node that runs a job is being removed: requeue, fail, or let the job finish first."""
    nodes.set_state(svc.store, doc["pk"], doc["nodeId"], LEAVING, svc.clock.now())
    if option == "requeue":
        job_runs.requeue_holder(svc, NodeDocument.load(doc),  # bridge
                                "NodeDeallocated", "The cluster was resized; the job was requeued.")
    elif option == "terminate":
        job_runs.fail_holder(svc, NodeDocument.load(doc),  # bridge
                             "JobTerminatedByResize", "The cluster was resized; the job was terminated.")


def _repair_claims(svc: Services, docs: list[dict[str, Any]]) -> None:
    """Free nodes claimed for an attempt that never started or already ended (a crash between
    the claim and the job's write). Safe: the lease keeps the dispatcher out meanwhile."""
    now = svc.clock.now()
    for doc in docs:
        if doc.get("job") is None:
            continue
        job = svc.store.read(R, doc["jobPk"], doc["job"])
        holds = (job is not None and job["state"] in job_runs.ACTIVE and job["attempt"] == doc["attempt"]
                 and doc["nodeId"] in job.get("nodes", []))
        if not holds:
            nodes.release(svc.store, doc["pk"], doc["nodeId"], doc["job"], doc["attempt"], now)
            svc.wakeups.notify(doc["id"])


def demand_jobs(svc: Services, cluster: dict[str, Any]) -> list[dict[str, Any]]:
    """The queued jobs an auto-scale cluster sizes for: no more than its maximum node count of them
    (each needs a node at least, so more cannot raise its size); a manual cluster needs none. The
    round's cost does not grow with the queue. (Lost lane messages: shared/lane_repair.py.)"""
    auto = cluster["spec"]["scaleSettings"].get("autoScale")
    if auto is None:
        return []
    return svc.store.query(R, Query(where=lane_repair.queued_filter(cluster), order_by=("id",),
                                    limit=int(auto["maximumNodeCount"])), pk=cluster["pk"])


def _update_allocation(svc: Services, cluster: dict[str, Any], uid: str, target: int) -> None:
    """allocationState: resizing while the pool is not yet the size asked for, else steady."""
    views = [nodes.view(d) for d in nodes.list_docs(svc.store, uid)]
    live = [v for v in views if v.state not in (LEAVING, UNUSABLE)]
    steady = len(live) == target and len(live) == len(views)
    state = "steady" if steady else "resizing"

    def edit(doc: dict[str, Any]) -> bool:
        props = doc["resource"]["properties"]
        if props.get("allocationState") == state:
            return False
        props["allocationState"] = state
        props["allocationStateTransitionTime"] = stamp(svc.clock.now())
        return True

    mutate_doc(svc.store, cluster, edit)


def set_errors(svc: Services, cluster: dict[str, Any], errors: list[dict[str, str]]) -> None:
    """The cluster's `errors`: what went wrong with its pool, until a round goes right."""

    def edit(doc: dict[str, Any]) -> bool:
        props = doc["resource"]["properties"]
        if props.get("errors", []) == errors:
            return False
        if errors:
            props["errors"] = errors
        else:
            props.pop("errors", None)
        return True

    mutate_doc(svc.store, cluster, edit)


def teardown(svc: Services, cluster: dict[str, Any]) -> None:
    """A deleted cluster: its jobs stop, its pool, lanes and nodes go."""
    uid = lanes.cluster_uid(cluster)
    for job in svc.store.query(R, Query(where={"kind": "job", "cluster": cluster["id"]}), pk=cluster["pk"]):
        if job["state"] not in job_runs.FINAL:
            job_runs.fail_job(svc, JobDocument.load(job), "ClusterDeleted", "The job's cluster was deleted.")  # bridge
    svc.pool.delete_pool(pool_id(cluster))
    lanes.delete_lanes(svc.messaging, uid)
    for doc in nodes.list_docs(svc.store, uid):
        nodes.delete(svc.store, uid, doc["nodeId"])

