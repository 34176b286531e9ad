"""Nodes fail, jobs don't: the watchdog's round over one cluster (under its lease, from the pool
manager's timer).

- A registered node whose heartbeats stopped for the grace period (`missed_heartbeats` beats) is
  lost: it becomes `unusable` with the reason, the attempt it held ends on every node of the job,
  the job queues again at the head of its lane, and the node leaves the pool, which the resize that
  follows replaces. A job requeued for a failure spends one retry of its budget; once spent, the
  job fails with the failures it met.
- If the watchdog itself has not run for a grace period (the control plane was down), nobody can
  have heartbeated to it meanwhile: every node gets a fresh grace instead of being declared lost.
- A running job past its `constraints.maxWallClockTime` fails; one whose nodes no longer hold its
  attempt (a crash between two writes) queues again; a terminating one whose nodes did not all
  confirm within 30 s ends as terminated.
- No silent hang (invariant 9): each heartbeat says what the agent runs and for how long it has had
  no live work. A node that holds a running attempt, has not reported it, and says in a beat that
  it has had nothing live for it for longer than the grace (counted from the claim at the earliest,
  so an attempt that is only starting is never judged) lost the attempt: the job fails with
  `AttemptVanished`. The node is healthy, so it is the job's failure, not a node's.

Heartbeats live in their own container, written without ETags, so that a beat never makes a claim
or another edit of the node's document retry.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta


from pydantic import ValidationError

from shared import job_runs, nodes, telemetry
from shared.composition import Services
from shared.documents import base
from shared.documents.nodes import Heartbeat, HeldAttempt, NodeDocument, NodeError, Work
from shared.documents.resources import ClusterDocument, JobDocument
from shared.models.common import parse_duration
from shared.nodes import parse_time, stamp
from shared.ports.state_store import Query
from shared.resources import HEARTBEATS
from shared.scheduler import IDLE, PREPARING, RUNNING, UNUSABLE
from shared.documents.nodes import NodeDocument
from shared.documents.resources import JobDocument

__all__ = ["HeldAttempt", "Work", "beat", "grace", "lost_nodes", "past_wall_clock", "watch", "unheld", "vanished",
           "resume_all"]

H = HEARTBEATS.name
WATCHED = frozenset({PREPARING, IDLE, RUNNING})
_WATCHDOG = "watchdog"
# The timer runs the watchdog every 2 s: a round that comes later than three of them (or than the
# grace, if longer) means the control plane was away.
ABSENCE = timedelta(seconds=6)
# A terminating job whose nodes have not all said they stopped its processes by then ends anyway
# (a node that cannot answer is lost, and leaving the pool stops whatever it ran).
TERMINATE_TIMEOUT = timedelta(seconds=30)
ATTEMPT_VANISHED = "AttemptVanished"


def beat(svc: Services, uid: str, node_id: str, work: Work | None = None) -> None:
    """The node is alive now (and runs what `work` says, when it says)."""
    record = Heartbeat(id=nodes.node_key(uid, node_id), pk=uid, at=stamp(svc.clock.now()), work=work)
    svc.store.upsert(H, record.to_json())  # not base.upsert: a beat needs no model of what was written


def grace(svc: Services) -> timedelta:
    return timedelta(seconds=svc.settings.heartbeat_seconds * svc.settings.missed_heartbeats)


def lost_nodes(docs: list[NodeDocument], beats: dict[str, datetime], now: datetime, grace: timedelta
               ) -> list[NodeDocument]:
    """Registered nodes in a watched state whose last sign of life is older than the grace (pure)."""
    lost = []
    for doc in docs:
        if doc.state not in WATCHED or not doc.credential:
            continue  # not yet registered: the pool judges a node that never starts
        last = beats.get(doc.node_id) or parse_time(doc.since)
        if last is None or now - last > grace:
            lost.append(doc)
    return lost


def _started(job: JobDocument) -> datetime | None:
    info = job.props.execution_info
    return parse_time(info.start_time if info else None)


def _wall_clock_limit(job: JobDocument) -> str | None:
    constraints = job.props.constraints
    return constraints.max_wall_clock_time if constraints else None


def past_wall_clock(job: JobDocument, now: datetime) -> bool:
    """Pure: has this running job used up its maxWallClockTime?"""
    started, limit = _started(job), _wall_clock_limit(job)
    if started is None or limit is None:
        return False
    duration = parse_duration(limit)
    return isinstance(duration, timedelta) and now - started > duration


def watch(svc: Services, cluster: ClusterDocument, uid: str) -> list[str]:
    """One round: the lost nodes are settled (see the module's doc); returns their ids, which the
    caller removes from the pool."""
    now = svc.clock.now()
    limit = grace(svc)
    docs = nodes.list_docs(svc.store, uid)
    records = {r.id: r for r in _heartbeats(svc, uid)}
    previous = parse_time(watched.at) if (watched := records.get(_WATCHDOG)) else None
    svc.store.upsert(H, Heartbeat(id=_WATCHDOG, pk=uid, at=stamp(now)).to_json())
    if previous is None or now - previous > max(limit, ABSENCE):
        for doc in docs:  # the control plane was away: a fresh grace for everyone
            beat(svc, uid, doc.node_id)
        _check_running(svc, cluster, uid, now)
        return []
    known = {d.id for d in docs}
    for key in set(records) - known - {_WATCHDOG}:  # nodes that left the cluster
        base.delete(svc.store, Heartbeat, uid, key)
    beats = {r.id.partition("|")[2]: t for r in records.values() if (t := parse_time(r.at))}
    lost = lost_nodes(docs, beats, now, limit)
    for doc in lost:
        seconds = limit.total_seconds()
        error = NodeError(code="NodeHeartbeatLost", message=f"The node sent no heartbeat for more than {seconds:g} s.")
        nodes.set_state(svc.store, uid, doc.node_id, UNUSABLE, now, error)
        telemetry.count_failure("NodeHeartbeatLost")
        job_runs.requeue_holder(svc, doc, "NodeHeartbeatLost", f"Node {doc.node_id}: {error.message}", failure=True)
    _check_running(svc, cluster, uid, now, _work_of(records))
    return [d.node_id for d in lost]


def _heartbeats(svc: Services, uid: str) -> list[Heartbeat]:
    """The cluster's heartbeat records; one whose `work` no beat of this version wrote is kept
    without it (no evidence either way)."""
    out = []
    for raw in svc.store.query(H, Query(where={"pk": uid}), pk=uid):
        try:
            out.append(Heartbeat.load(raw))
        except ValidationError:
            out.append(Heartbeat.load({**raw, "work": None}))
    return out


def unheld(job: JobDocument, docs: Mapping[str, NodeDocument]) -> list[str]:
    """Pure: the nodes of a running job that do not hold its attempt (gone, or holding another)."""
    return [n for n in job.nodes
            if (d := docs.get(n)) is None or d.job != job.id or d.attempt != job.attempt]


def vanished(job: JobDocument, docs: Mapping[str, NodeDocument], beats: Mapping[str, tuple[datetime, Work]],
             grace: timedelta) -> list[str]:
    """Pure: the nodes that hold this running job's attempt and have not reported it, but whose
    agent said, in its last beat, that it had had no live work for it for longer than `grace`.
    That span starts at the node's claim (its `since`) or the attempt's start, whichever is later,
    so a beat from before the agent could know of the attempt is never evidence."""
    started = _started(job)
    lost = []
    for node_id in job.nodes:
        doc, seen = docs.get(node_id), beats.get(node_id)
        if node_id in job.reports or doc is None or seen is None:
            continue
        at, work = seen
        claimed = max(filter(None, (parse_time(doc.since), started)), default=None)
        if work.idle_seconds is None or claimed is None or not work.lacks(job.id, job.attempt):
            continue
        lacking_since = max(claimed, at - timedelta(seconds=work.idle_seconds))
        if at - lacking_since > grace:
            lost.append(node_id)
    return lost


def _jobs(svc: Services, cluster: ClusterDocument, state: str) -> list[JobDocument]:
    return base.query(svc.store, JobDocument, Query(where={"kind": "job", "cluster": cluster.id, "state": state}),
                      pk=cluster.pk)


def _check_running(svc: Services, cluster: ClusterDocument, uid: str, now: datetime,
                   beats: Mapping[str, tuple[datetime, Work]] | None = None) -> None:
    """Running jobs past their wall-clock limit fail; one whose nodes no longer run it (a crash
    between two writes) queues again, spending no retry: its nodes did not fail; one whose node
    lost it (see `vanished`) fails."""
    running = _jobs(svc, cluster, job_runs.RUNNING)
    docs = {d.node_id: d for d in nodes.list_docs(svc.store, uid)} if running else {}
    for job in running:
        missing = unheld(job, docs)
        lost = vanished(job, docs, beats or {}, grace(svc))
        if missing:
            telemetry.count_failure("AttemptRepaired")
            job_runs.requeue_attempt(svc, job.pk, job.id, job.attempt, "AttemptRepaired",
                                    f"Nodes {', '.join(missing)} no longer ran the attempt; it starts again.")
        elif lost:
            telemetry.count_failure(ATTEMPT_VANISHED)
            _fail_attempt(svc, job, ATTEMPT_VANISHED, (
                f"Node {', '.join(lost)} held attempt {job.attempt} of the job but ran nothing for it and reported"
                f" no exit code for more than {grace(svc).total_seconds():g} s; see the node's execution log."))
        elif past_wall_clock(job, now):
            telemetry.count_failure("MaxWallClockTimeExceeded")
            job_runs.fail_job(svc, job, "MaxWallClockTimeExceeded",
                              f"The job ran longer than its maxWallClockTime ({_wall_clock_limit(job)}).")
    for job in _jobs(svc, cluster, job_runs.TERMINATING):
        since = parse_time(job.props.execution_state_transition_time)
        if since is not None and now - since > TERMINATE_TIMEOUT:  # a node that never confirmed
            telemetry.count_failure("TerminateTimedOut")
            job_runs.fail_job(svc, job, job_runs.TERMINATED, job_runs.TERMINATED_MESSAGE)


def _fail_attempt(svc: Services, job: JobDocument, code: str, message: str) -> None:
    """Fail the job if the attempt that was judged is still the running one (invariant 3)."""
    attempt = job.attempt

    def edit(doc: JobDocument) -> bool:
        if doc.state != job_runs.RUNNING or doc.attempt != attempt:
            return False
        job_runs.fail(doc, svc.clock.now(), code, message)
        return True

    job_runs.transition(svc, job.pk, job.id, edit)


def _work_of(records: Mapping[str, Heartbeat]) -> dict[str, tuple[datetime, Work]]:
    """Node id -> (when, what) of its last beat that said what it runs."""
    out = {}
    for record in records.values():
        at, work = parse_time(record.at), record.work
        if at is not None and work is not None:
            out[record.id.partition("|")[2]] = (at, work)
    return out


def resume_all(svc: Services) -> None:
    """A control plane that has just started (the local host is the only one) was away for an
    unknown time: every cluster's next round gives its nodes a fresh grace."""
    for record in svc.store.query(H, Query(where={"id": _WATCHDOG})):
        base.delete(svc.store, Heartbeat, record["pk"], _WATCHDOG)
