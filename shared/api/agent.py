"""The node agents' API, beside Batch AI's (routes under agent/): register, fetch the node's setup,
say it is ready (or unusable), heartbeat, wait for an assignment, report an exit code. Every call
but register carries the node's own credential, and can touch only that node and the attempt it
holds (invariant 3: stale attempts are refused).

A node is `preparing` from registration until its agent has mounted the cluster's volumes and run
the setup task; then it is `idle`, or `unusable` with the error, which the cluster shows.
"""

from __future__ import annotations

import asyncio
import hmac
import math
import threading
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from shared import errors, job_runs, lanes, node_storage, nodes, pools, watchdog
from shared.api.request import ApiRequest, ApiResponse, ok, parse_body, small_int
from shared.composition import Services
from shared.documents import base as documents
from shared.documents.nodes import NodeDocument, NodeError
from shared.documents.resources import ClusterDocument, ErrorEntry, JobDocument
from shared.ids import CLUSTER, ResourceRef
from shared.models.agent import (Accepted, AllPrepared, AssignedNode, Assignment, AssignmentAnswer, NodeSetupAnswer,
                                 NodeStateAnswer, Prepared, Ready, Registered, Registration, Report, Work)
from shared.ports.vm_pool import PoolNotFound, node_token
from shared.scheduler import IDLE, LEAVING, PREPARING, UNUSABLE

NODE_HEADER = "x-batchai-node"
CREDENTIAL_HEADER = "x-batchai-node-credential"
STORE_RECHECK_SECONDS = 1.0  # a waiting agent re-reads the store this often when nobody wakes it


class Unauthorized(errors.ApiError):
    status, code = 401, "Unauthorized"


class Gone(errors.ApiError):
    status, code = 410, "NodeRemoved"


class NotAdmitted(errors.ApiError):
    status, code = 403, "NodeNotAdmitted"


def register(svc: Services, req: ApiRequest) -> ApiResponse:
    """Trade a bootstrap token for this node's credential. Only a node the cluster's pool made may
    register, with its own token where the pool gives one; and a node id registers once: again only
    with the credential it registered with (the agent keeps it on its node)."""
    reg = parse_body(Registration, req)
    ref = ResourceRef.parse(reg.cluster_id, CLUSTER)
    cluster = documents.read(svc.store, ClusterDocument, ref.pk, ref.key) if ref else None
    pool_token = cluster.agent_token if cluster else ""
    own_token = bool(pool_token) and hmac.compare_digest(node_token(pool_token, reg.node_id), reg.token)
    the_pools = bool(pool_token) and hmac.compare_digest(pool_token, reg.token)
    if cluster is None or not (own_token or the_pools):
        raise Unauthorized("The cluster id or bootstrap token is not valid.", target="token")
    uid = cluster.cluster_uid
    if the_pools and svc.pool.gives_node_tokens:
        raise NotAdmitted("Each node of this cluster registers with its own bootstrap token.", target="nodeId")
    if nodes.read(svc.store, uid, reg.node_id) is None and not _made(svc, cluster, reg.node_id):
        raise NotAdmitted(f"The node {reg.node_id} is not one that the cluster's pool made.", target="nodeId")
    now = svc.clock.now()
    nodes.ensure(svc.store, nodes.new_doc(uid, reg.node_id, cluster.id, cluster.pk, reg.address, now))
    previous: list[NodeDocument] = []  # the node as the last try found it

    def join(doc: NodeDocument) -> bool:
        previous[:] = [doc.model_copy()]  # shallow is enough: only top-level fields change below
        if doc.credential and not nodes.credential_matches(doc, reg.credential):
            return False  # registered already, by the holder of another credential
        doc.credential, doc.address, doc.since = nodes.hash_secret(reg.credential), reg.address, nodes.stamp(now)
        if doc.state != LEAVING:  # a (re)started agent sets its node up again before it takes work
            doc.state, doc.error = PREPARING, None
        return True

    node = nodes.change(svc.store, uid, reg.node_id, join)
    if node is None and previous:
        raise NotAdmitted(f"The node {reg.node_id} has registered already.", target="nodeId")
    if node is None:
        raise Gone(f"The node {reg.node_id} is no longer part of the cluster.", target="nodeId")
    watchdog.beat(svc, uid, reg.node_id)
    if previous[0].job:  # a restarted agent lost whatever it ran: that attempt starts again
        job_runs.requeue_holder(svc, previous[0], "AgentRestarted", "The node's agent restarted during the job.",
                                failure=True)
    lanes.signal(svc.messaging, cluster.id, cluster.pk)
    answer = Registered(node=node.id, credential=reg.credential, heartbeat_seconds=svc.settings.heartbeat_seconds)
    return ok(answer.to_wire(reveal_secrets=True))  # the node's own credential, to the node


def _made(svc: Services, cluster: ClusterDocument, node_id: str) -> bool:
    try:
        return svc.pool.made(pools.pool_id(cluster), node_id)
    except PoolNotFound:
        return False


def _claimed_node(req: ApiRequest) -> tuple[str, str]:
    """The (cluster uid, node id) the caller says it is (not yet checked); 401 when it says none."""
    uid, _, node_id = req.headers.get(NODE_HEADER, "").partition("|")
    if not uid or not node_id or not req.headers.get(CREDENTIAL_HEADER, ""):
        raise Unauthorized("The node's credential is missing.", target=NODE_HEADER)
    return uid, node_id


def authenticate(svc: Services, req: ApiRequest) -> NodeDocument:
    """The calling node's document; 401 without a valid credential, 410 for a removed node."""
    uid, node_id = _claimed_node(req)
    secret = req.headers.get(CREDENTIAL_HEADER, "")
    doc = nodes.read(svc.store, uid, node_id)
    if doc is None:
        raise Gone("The node is no longer part of its cluster.", target=NODE_HEADER)
    if not nodes.credential_matches(doc, secret):
        raise Unauthorized("The node's credential is not valid.", target=CREDENTIAL_HEADER)
    return doc


def setup(svc: Services, req: ApiRequest) -> ApiResponse:
    """What the node does before it takes work: the cluster's volumes and setup task (with its
    secrets: only ever sent to the cluster's own nodes), and where local storage lives."""
    node = authenticate(svc, req)
    cluster = documents.read(svc.store, ClusterDocument, node.cluster_pk, node.cluster)
    if cluster is None:
        raise Gone("The node's cluster no longer exists.", target=NODE_HEADER)
    node_setup = cluster.spec.node_setup
    task = node_setup.setup_task if node_setup else None
    if task is not None:
        returned = cluster.props.node_setup.setup_task if cluster.props.node_setup else None
        task = task.model_copy(update={"std_out_err_path_suffix": returned.std_out_err_path_suffix if returned else None})
    volumes = node_storage.mountable_volumes(svc, node_setup.mount_volumes if node_setup else None,
                                             "properties.nodeSetup.mountVolumes")
    answer = NodeSetupAnswer(node_id=node.node_id, setup_task=task, storage=node_storage.storage_info(svc),
                             volumes=volumes)
    return ok(answer.to_wire(reveal_secrets=True))  # its secrets and the volumes' keys: only to the cluster's nodes


def ready(svc: Services, req: ApiRequest) -> ApiResponse:
    """The node's setup is done: idle, or unusable with the error the cluster then shows."""
    node = authenticate(svc, req)
    body = parse_body(Ready, req)
    error = NodeError(code=body.error.code, message=body.error.message) if body.error else None

    def settle(doc: NodeDocument) -> bool:
        if doc.state != PREPARING:
            return False
        doc.state, doc.error, doc.since = UNUSABLE if error else IDLE, error, nodes.stamp(svc.clock.now())
        return True

    written = nodes.change(svc.store, node.pk, node.node_id, settle)
    if written is not None and written.state == IDLE:
        lanes.signal(svc.messaging, node.cluster, node.cluster_pk)
    return ok(NodeStateAnswer(state=(written or node).state).to_wire())


def evicting(svc: Services, req: ApiRequest) -> ApiResponse:
    """The node's VM is about to be evicted (a Spot VM's Scheduled Event): it leaves, and its job
    queues again at once without spending a retry; the pool replaces it once it is gone."""
    node = authenticate(svc, req)
    nodes.set_state(svc.store, node.pk, node.node_id, LEAVING, svc.clock.now(),
                    NodeError(code="NodePreempted", message="The VM is being evicted (low priority)."))
    job_runs.requeue_holder(svc, node, "NodePreempted", f"Node {node.node_id} was evicted (low priority).")
    return ok(NodeStateAnswer(state=LEAVING).to_wire())


# When each node's last accepted heartbeat arrived, in this process. Kept in memory so that a refused
# beat costs no store write. On Azure every Function instance keeps its own map: a node whose beats
# are spread over N instances can beat up to N times as often before it is refused, so this is a
# guard against a runaway agent or a flood, not an exact quota (that would cost a write per beat).
_last_beats: dict[str, datetime] = {}
_last_beats_lock = threading.Lock()


def heartbeat(svc: Services, req: ApiRequest) -> ApiResponse:
    """The node is alive, and runs what it says (the watchdog compares that with what it holds);
    a node beating faster than heartbeat_min_interval_seconds gets 429."""
    node = authenticate(svc, req)  # first: nobody else can use up a node's allowance
    work = parse_body(Work, req) if req.body.strip() else Work()
    wait = beat_too_soon(node.id, svc.clock.now(), svc.settings.heartbeat_min_interval_seconds)
    if wait > 0:
        return ApiResponse(429, errors.cloud_error(
            "TooManyRequests", f"The node heartbeats more often than every "
            f"{svc.settings.heartbeat_min_interval_seconds} s; retry after {wait:.2f} s.", target=NODE_HEADER),
            {"Retry-After": str(max(1, math.ceil(wait)))})
    watchdog.beat(svc, node.pk, node.node_id, work)
    return ok(NodeStateAnswer(state=node.state).to_wire())


def beat_too_soon(node: str, now: datetime, min_interval: float) -> float:
    """Seconds the node must still wait, or 0 when the beat is accepted (and recorded as the last)."""
    with _last_beats_lock:
        last = _last_beats.get(node)
        wait = min_interval - (now - last).total_seconds() if last is not None else 0.0
        if 0 < wait <= min_interval:  # more than that: the clock went back, so the beat is let through
            return wait
        _last_beats[node] = now
        return 0.0


class _AttemptView(BaseModel):
    """What the long poll compares of a job document, read without its spec: a node that runs its
    attempt re-reads its job every second, and only a change builds the whole assignment."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    state: str
    attempt: int = 0
    nodes: list[str] = Field(default_factory=list)
    prepared: list[str] = Field(default_factory=list)


def held_attempt(svc: Services, node: NodeDocument) -> tuple[str, int] | None:
    """The (job, attempt) the node should run now, as `current_assignment` would give it."""
    if node.job is None or node.job_pk is None:
        return None
    raw = svc.store.read(JobDocument.container, node.job_pk, node.job)
    job = _AttemptView.model_validate(raw) if raw is not None else None
    if job is None or job.state != job_runs.RUNNING or job.attempt != node.attempt or node.node_id not in job.nodes:
        return None
    return node.job, node.attempt


def current_assignment(svc: Services, node: NodeDocument) -> Assignment | None:
    """What the node should be running now: its attempt, if the job's start was written."""
    if node.job is None or node.job_pk is None:
        return None
    job = documents.read(svc.store, JobDocument, node.job_pk, node.job)
    if job is None or job.state != job_runs.RUNNING or job.attempt != node.attempt or node.node_id not in job.nodes:
        return None
    uid = node.pk
    members = [nodes.read(svc.store, uid, n) for n in job.nodes]
    return Assignment(
        job=job.id, job_id=job.resource.id, attempt=job.attempt, master=job.nodes[0] == node.node_id,
        nodes=[AssignedNode(node_id=m.node_id, address=m.address) for m in members if m],
        properties=job.spec,  # with secret values: only ever sent to the job's own nodes
        job_output_directory_path_segment=job.props.job_output_directory_path_segment or "",
        volumes=node_storage.mountable_volumes(svc, job.spec.mount_volumes, "properties.mountVolumes"),
        # The trace the node's spans continue: the dispatch that placed this attempt (else the create call).
        trace_context=job.attempt_trace_context or job.trace_context or {},
    )


def _running(req: ApiRequest) -> tuple[str, int] | None:
    job, _, attempt = req.query.get("running", "").rpartition("#")
    number = small_int(attempt)
    return (job, number) if job and number is not None else None


async def assignment(svc: Services, req: ApiRequest) -> ApiResponse:
    """Long-poll: answers as soon as what the node should run differs from what it says it runs
    (`running=<job>#<attempt>`), or after `wait` seconds with the same answer."""
    uid, node_id = _claimed_node(req)
    running = _running(req)
    wait = _wait_seconds(svc, req)
    deadline = asyncio.get_running_loop().time() + max(wait, 0.0)
    while True:
        # Listening before the reads, so no wake-up slips between; on the key the caller claims, which
        # each look authenticates before anything is answered or waited for.
        with svc.wakeups.listening(nodes.node_key(uid, node_id)) as waiter:
            final = deadline - asyncio.get_running_loop().time() <= 0
            answer = await asyncio.to_thread(_look, svc, req, running, final)  # one hop: the reads together
            if svc.wakeups.closed:  # the host is stopping: the agent asks again after a pause
                raise errors.ServiceUnavailable("The control plane is stopping.")
            if answer is not None:
                return ok(answer.to_wire(reveal_secrets=True))
            await waiter.wait(min(deadline - asyncio.get_running_loop().time(), STORE_RECHECK_SECONDS))


def _look(svc: Services, req: ApiRequest, running: tuple[str, int] | None, final: bool) -> AssignmentAnswer | None:
    """The answer to give now: when what the node should run is not what it runs, or on the last look."""
    node = authenticate(svc, req)
    if held_attempt(svc, node) == running and not final:
        return None
    return AssignmentAnswer(state=node.state, assignment=current_assignment(svc, node))


def _wait_seconds(svc: Services, req: ApiRequest) -> float:
    """A long poll's `wait`: a finite number of seconds, at most the setting (NaN would never end)."""
    try:
        wait = float(req.query.get("wait", "0") or 0)
    except ValueError:
        wait = math.nan
    if not math.isfinite(wait):
        raise errors.InvalidParameter("wait must be a number of seconds.", target="wait")
    return min(max(wait, 0.0), svc.settings.assignment_wait_seconds)


def _held_attempt(node: NodeDocument, job: str, attempt: int) -> None:
    if node.job != job or node.attempt != attempt:
        raise errors.Conflict("The node does not hold that attempt of the job (it ended or moved).",
                              target="attempt", code="StaleAttempt")


def prepared(svc: Services, req: ApiRequest) -> ApiResponse:
    """This node ran the job's preparation: the master, which waits for every node before it
    launches onto them (mpirun, or a custom command using the hostfile), is woken."""
    node = authenticate(svc, req)
    body = parse_body(Prepared, req)
    _held_attempt(node, body.job, body.attempt)

    def mark(job: JobDocument) -> bool:
        if job.state != job_runs.RUNNING or job.attempt != body.attempt or node.node_id in job.prepared:
            return False
        job.prepared.append(node.node_id)
        return True

    written = documents.edit(svc.store, JobDocument, node.job_pk or "", body.job, mark)
    if written is not None:
        svc.wakeups.notify(nodes.node_key(node.pk, written.nodes[0]))
    return ok(Accepted().to_wire())


async def all_prepared(svc: Services, req: ApiRequest) -> ApiResponse:
    """Long-poll (master): answers when every node of the attempt has prepared, or after `wait`."""
    node = await asyncio.to_thread(authenticate, svc, req)
    job_key, attempt = req.query.get("job", ""), small_int(req.query.get("attempt", ""))
    if attempt is None:
        raise errors.InvalidParameter("attempt must be a number.", target="attempt")
    _held_attempt(node, job_key, attempt)
    wait = _wait_seconds(svc, req)
    deadline = asyncio.get_running_loop().time() + max(wait, 0.0)
    while True:
        with svc.wakeups.listening(node.id) as waiter:
            raw = await asyncio.to_thread(svc.store.read, JobDocument.container, node.job_pk or "", job_key)
            job = _AttemptView.model_validate(raw) if raw is not None else None
            if job is None or job.state != job_runs.RUNNING or job.attempt != attempt:
                raise errors.Conflict("The attempt ended.", target="attempt", code="StaleAttempt")
            done = set(job.prepared)
            left = deadline - asyncio.get_running_loop().time()
            if done >= set(job.nodes) or left <= 0 or svc.wakeups.closed:
                return ok(AllPrepared(prepared=sorted(done), all_prepared=done >= set(job.nodes)).to_wire())
            await waiter.wait(min(left, STORE_RECHECK_SECONDS))


def report(svc: Services, req: ApiRequest) -> ApiResponse:
    """A node's part of the attempt ended: a non-zero exit fails the job at once, the last of the
    nodes' zeros makes it succeed; while the job is terminating, it says the node has stopped its
    processes, and the last node to say so makes the job final (see job_runs)."""
    node = authenticate(svc, req)
    rep = parse_body(Report, req)
    _held_attempt(node, rep.job, rep.attempt)

    def end(job: JobDocument) -> bool:
        if job.state not in job_runs.ACTIVE or job.attempt != rep.attempt:
            return False
        if job.state == job_runs.TERMINATING:
            return job_runs.record_stopped(job, node.node_id, svc.clock.now())
        if rep.stopped:
            return False  # stopped while running: the attempt moved on, nothing to decide
        error = ErrorEntry(code=rep.error.code, message=rep.error.message) if rep.error else None
        return job_runs.record_report(job, node.node_id, rep.exit_code, svc.clock.now(), error)

    job_runs.transition(svc, node.job_pk or "", rep.job, end)
    return ok(Accepted().to_wire())

