"""The pool manager: keeps each cluster's VM pool, node documents and allocation state in line with
its scale settings (shared/autoscale.py decides the size; this module carries it out).

Runs under the cluster's lease (leases.py), from the cluster-work queue and from a timer, and is
idempotent: every run compares what the pool has, what the store says and what is wanted.
"""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta

from shared import autoscale, job_runs, lane_repair, lanes, node_package, nodes, watchdog
from shared.node_boot import DEFAULT_IMAGE
from shared.composition import Services
from shared.documents import base
from shared.documents.nodes import NodeDocument
from shared.documents.resources import ClusterDocument, ErrorEntry, JobDocument
from shared.models.cluster import DeallocationOption, VmPriority
from shared.nodes import stamp
from shared.ports.state_store import Query
from shared.ports.blob_store import Account
from shared.ports.vm_pool import AgentBootstrap, PoolNotFound, PoolSpec
from shared.scheduler import LEAVING, UNUSABLE
from shared.settings import Settings
from shared.documents.nodes import NodeDocument
from shared.documents.resources import JobDocument

log = logging.getLogger(__name__)


def pool_id(cluster: ClusterDocument) -> str:
    return f"c{cluster.cluster_uid}"


def new_agent_token() -> str:
    return secrets.token_urlsafe(32)


def pool_spec(svc: Services, cluster: ClusterDocument) -> PoolSpec:
    spec = cluster.spec
    account = spec.user_account_settings
    configured = spec.virtual_machine_configuration
    image = configured.image_reference.to_wire() if configured and configured.image_reference else DEFAULT_IMAGE
    key = cluster.ssh_key
    return PoolSpec(
        pool_id=pool_id(cluster), vm_size=spec.vm_size,
        vm_priority="lowpriority" if spec.vm_priority == VmPriority.LOWPRIORITY else "dedicated",
        image_reference=image, admin_user_name=account.admin_user_name,
        admin_password=account.admin_user_password, admin_ssh_public_key=account.admin_user_ssh_public_key,
        subnet_id=spec.subnet.id if spec.subnet else None, location=svc.settings.default_location,
        bootstrap=AgentBootstrap(endpoint=svc.settings.public_endpoint, cluster_id=cluster.resource.id,
                                 token=cluster.agent_token, telemetry=agent_telemetry(svc.settings),
                                 ssh_private_key=key.private if key else "", ssh_public_key=key.public if key else "",
                                 agent_url=agent_bundle_url(svc)),
        tags={"batchai-cluster": cluster.resource.id[-256:]})


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


def reconcile(svc: Services, cluster: ClusterDocument) -> None:
    """Bring the cluster's pool to the size it should have now. Call under the lease."""
    uid = cluster.cluster_uid
    if not cluster.provisioned:
        lanes.create_lanes(svc.messaging, uid)
        lane_repair.repair(svc, cluster, confirm=False)  # jobs created before the lanes existed join them now
        svc.pool.create_pool(pool_spec(svc, cluster))
        cluster = _set_provisioned(svc, cluster, True) or cluster
    if not _sync(svc, cluster, uid):
        _set_provisioned(svc, cluster, False)
        return
    lost = watchdog.watch(svc, cluster, uid)
    if lost:  # they leave the pool; the resize below replaces them
        svc.pool.remove_nodes(pool_id(cluster), lost)
        for node_id in lost:
            nodes.delete(svc.store, uid, node_id)
    _repair_claims(svc, nodes.list_docs(svc.store, uid))
    target = _resize(svc, cluster, uid, {d.node_id: d for d in nodes.list_docs(svc.store, uid)})
    _sync(svc, cluster, uid)  # nodes it just asked for get their documents now, not a round later
    _update_allocation(svc, cluster, uid, target)


def _set_provisioned(svc: Services, cluster: ClusterDocument, provisioned: bool) -> ClusterDocument | None:
    def edit(doc: ClusterDocument) -> bool:
        doc.provisioned = provisioned
        return True

    return base.edit(svc.store, ClusterDocument, cluster.pk, cluster.id, edit)


def _sync(svc: Services, cluster: ClusterDocument, uid: str) -> bool:
    """Node documents for what the pool has: new machines join as preparing; lost or failed ones
    leave (their attempts start again elsewhere) and are replaced by the resize that follows.
    False when the pool does not exist."""
    try:
        pool_nodes = {n.node_id: n for n in svc.pool.list_nodes(pool_id(cluster))}
    except PoolNotFound:
        return False
    docs = {d.node_id: d for d in nodes.list_docs(svc.store, uid)}
    lost = [d for node_id, d in docs.items() if node_id not in pool_nodes]
    failed = [n.node_id for n in pool_nodes.values() if n.state == "failed"]
    evictable = cluster.spec.vm_priority == VmPriority.LOWPRIORITY  # a lost Spot VM was most likely evicted
    for doc in lost + [docs[n] for n in failed if n in docs]:
        if evictable and doc in lost:
            job_runs.requeue_holder(svc, doc, "NodePreempted", f"The low-priority node {doc.node_id} was evicted.")
        else:
            job_runs.requeue_holder(svc, doc, "NodeLost", f"The node {doc.node_id} was lost.", failure=True)
        nodes.delete(svc.store, uid, doc.node_id)
    if failed:
        svc.pool.remove_nodes(pool_id(cluster), failed)
    now = svc.clock.now()
    for node in pool_nodes.values():
        if node.node_id not in docs and node.state in ("creating", "running"):
            nodes.ensure(svc.store, nodes.new_doc(uid, node.node_id, cluster.id, cluster.pk, node.address, now))
    return True


def _resize(svc: Services, cluster: ClusterDocument, uid: str, docs: dict[str, NodeDocument]) -> int:
    """Grow or shrink the pool towards the size it should have; returns that size."""
    scale = cluster.scale
    views = [nodes.view(d) for d in docs.values()]
    demand = autoscale.Demand(queued=[j.props.node_count for j in demand_jobs(svc, cluster)])
    idle = timedelta(seconds=svc.settings.autoscale_idle_seconds)
    target = autoscale.target_size(scale, views, demand, svc.clock.now(), idle)
    live = [v for v in views if v.state not in (LEAVING, UNUSABLE)]
    leaving = [v for v in views if v.state == LEAVING]
    done_leaving = [v.node_id for v in leaving if v.job is None]
    if len(live) < target:
        svc.pool.resize(pool_id(cluster), target + len(leaving))
    elif len(live) > target:
        shrink = autoscale.choose_removals(live, len(live) - target)
        option = scale.manual.node_deallocation_option if scale.manual else DeallocationOption.REQUEUE
        for node_id in shrink.running:
            _deallocate(svc, docs[node_id], option)
        done_leaving += shrink.remove
        done_leaving += [n for n in shrink.running if option != DeallocationOption.WAITFORJOBCOMPLETION]
    if done_leaving:
        now = svc.clock.now()
        for node_id in done_leaving:
            nodes.set_state(svc.store, uid, node_id, LEAVING, now)
        svc.pool.remove_nodes(pool_id(cluster), done_leaving)
        for node_id in done_leaving:
            nodes.delete(svc.store, uid, node_id)
    return target


def _deallocate(svc: Services, doc: NodeDocument, option: str) -> None:
    """A node that runs a job is being removed: requeue, fail, or let the job finish first."""
    nodes.set_state(svc.store, doc.pk, doc.node_id, LEAVING, svc.clock.now())
    if option == DeallocationOption.REQUEUE:
        job_runs.requeue_holder(svc, doc, "NodeDeallocated", "The cluster was resized; the job was requeued.")
    elif option == DeallocationOption.TERMINATE:
        job_runs.fail_holder(svc, doc, "JobTerminatedByResize", "The cluster was resized; the job was terminated.")


def _repair_claims(svc: Services, docs: list[NodeDocument]) -> None:
    """Free nodes claimed for an attempt that never started or already ended (a crash between
    the claim and the job's write). Safe: the lease keeps the dispatcher out meanwhile."""
    now = svc.clock.now()
    for doc in docs:
        if doc.job is None or doc.job_pk is None:
            continue
        job = base.read(svc.store, JobDocument, doc.job_pk, doc.job)
        holds = (job is not None and job.state in job_runs.ACTIVE and job.attempt == doc.attempt
                 and doc.node_id in job.nodes)
        if not holds:
            nodes.release(svc.store, doc.pk, doc.node_id, doc.job, doc.attempt, now)
            svc.wakeups.notify(doc.id)


def demand_jobs(svc: Services, cluster: ClusterDocument) -> list[JobDocument]:
    """The queued jobs an auto-scale cluster sizes for: no more than its maximum node count of them
    (each needs a node at least, so more cannot raise its size); a manual cluster needs none. The
    round's cost does not grow with the queue. (Lost lane messages: shared/lane_repair.py.)"""
    auto = cluster.scale.auto_scale
    if auto is None:
        return []
    where = lane_repair.queued_filter(cluster)
    return base.query(svc.store, JobDocument, Query(where=where, order_by=("id",), limit=auto.maximum_node_count),
                      pk=cluster.pk)


def _update_allocation(svc: Services, cluster: ClusterDocument, uid: str, target: int) -> None:
    """allocationState: resizing while the pool is not yet the size asked for, else steady."""
    views = [nodes.view(d) for d in nodes.list_docs(svc.store, uid)]
    live = [v for v in views if v.state not in (LEAVING, UNUSABLE)]
    steady = len(live) == target and len(live) == len(views)
    state = "steady" if steady else "resizing"

    def edit(doc: ClusterDocument) -> bool:
        if doc.props.allocation_state == state:
            return False
        doc.props.allocation_state = state
        doc.props.allocation_state_transition_time = stamp(svc.clock.now())
        return True

    base.edit(svc.store, ClusterDocument, cluster.pk, cluster.id, edit)


def set_errors(svc: Services, cluster: ClusterDocument, errors: list[ErrorEntry]) -> None:
    """The cluster's `errors`: what went wrong with its pool, until a round goes right."""

    def edit(doc: ClusterDocument) -> bool:
        if (doc.props.errors or []) == errors:
            return False
        doc.props.errors = list(errors) or None
        return True

    base.edit(svc.store, ClusterDocument, cluster.pk, cluster.id, edit)


def teardown(svc: Services, cluster: ClusterDocument) -> None:
    """A deleted cluster: its jobs stop, its pool, lanes and nodes go."""
    uid = cluster.cluster_uid
    for job in base.query(svc.store, JobDocument, Query(where={"kind": "job", "cluster": cluster.id}), pk=cluster.pk):
        if job.state not in job_runs.FINAL:
            job_runs.fail_job(svc, job, "ClusterDeleted", "The job's cluster was deleted.")
    svc.pool.delete_pool(pool_id(cluster))
    lanes.delete_lanes(svc.messaging, uid)
    for doc in nodes.list_docs(svc.store, uid):
        nodes.delete(svc.store, uid, doc.node_id)
