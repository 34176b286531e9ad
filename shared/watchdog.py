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

from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared import job_runs, nodes, telemetry
from shared.composition import Services
from shared.models.common import parse_duration
from shared.nodes import parse_time, stamp
from shared.ports.state_store import NotFound, Query
from shared.resources import HEARTBEATS, R
from shared.scheduler import IDLE, PREPARING, RUNNING, UNUSABLE
from shared.documents.nodes import NodeDocument
from shared.documents.resources import JobDocument

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


class HeldAttempt(BaseModel):
    """The attempt an agent holds, and whether it still works toward its report."""

    model_config = ConfigDict(extra="forbid")
    job: str = Field(max_length=1000)
    attempt: int = Field(ge=1)
    live: bool


class Work(BaseModel):
    """What a heartbeat says the agent runs. `idle_seconds` is how long it has had no live work at
    all (a duration measured by the node: no clock skew); None from an agent that does not say."""

    model_config = ConfigDict(extra="forbid", populate_by_name=False)
    running: HeldAttempt | None = None
    idle_seconds: float | None = Field(default=None, alias="idleSeconds", ge=0, le=1e9, allow_inf_nan=False)

    def lacks(self, job: str, attempt: int) -> bool:
        """The agent has no live work for this attempt."""
        held = self.running
        return held is None or (held.job, held.attempt) != (job, attempt) or not held.live


def beat(svc: Services, uid: str, node_id: str, work: Work | None = None) -> None:
    """The node is alive now (and runs what `work` says, when it says)."""
    record: dict[str, Any] = {"id": nodes.node_key(uid, node_id), "pk": uid, "at": stamp(svc.clock.now())}
    if work is not None:
        record["work"] = work.model_dump(by_alias=True)
    svc.store.upsert(H, record)


def grace(svc: Services) -> timedelta:
    return timedelta(seconds=svc.settings.heartbeat_seconds * svc.settings.missed_heartbeats)


def lost_nodes(docs: list[dict[str, Any]], beats: dict[str, datetime], now: datetime, grace: timedelta
               ) -> list[dict[str, Any]]:
    """Registered nodes in a watched state whose last sign of life is older than the grace (pure)."""
    lost = []
    for doc in docs:
        if doc["state"] not in WATCHED or not doc.get("credential"):
            continue  # not yet registered: the pool judges a node that never starts
        last = beats.get(doc["nodeId"]) or parse_time(doc.get("since"))
        if last is None or now - last > grace:
            lost.append(doc)
    return lost


def past_wall_clock(job: dict[str, Any], now: datetime) -> bool:
    """Pure: has this running job used up its maxWallClockTime?"""
    props = job["resource"]["properties"]
    started = parse_time((props.get("executionInfo") or {}).get("startTime"))
    limit = (props.get("constraints") or {}).get("maxWallClockTime")
    if started is None or limit is None:
        return False
    duration = parse_duration(limit)
    return isinstance(duration, timedelta) and now - started > duration


def watch(svc: Services, cluster: dict[str, Any], uid: str) -> list[str]:
    """One round: the lost nodes are settled (see the module's doc); returns their ids, which the
    caller removes from the pool."""
    now = svc.clock.now()
    limit = grace(svc)
    docs = nodes.list_docs(svc.store, uid)
    records = {d["id"]: d for d in svc.store.query(H, Query(where={"pk": uid}), pk=uid)}
    previous = parse_time((records.get(_WATCHDOG) or {}).get("at"))
    svc.store.upsert(H, {"id": _WATCHDOG, "pk": uid, "at": stamp(now)})
    if previous is None or now - previous > max(limit, ABSENCE):
        for doc in docs:  # the control plane was away: a fresh grace for everyone
            beat(svc, uid, doc["nodeId"])
        _check_running(svc, cluster, uid, now)
        return []
    known = {d["id"] for d in docs}
    for key in set(records) - known - {_WATCHDOG}:  # nodes that left the cluster
        _delete(svc, uid, key)
    beats = {r["id"].partition("|")[2]: t for r in records.values() if (t := parse_time(r.get("at")))}
    lost = lost_nodes(docs, beats, now, limit)
    for doc in lost:
        seconds = limit.total_seconds()
        error = {"code": "NodeHeartbeatLost", "message": f"The node sent no heartbeat for more than {seconds:g} s."}
        nodes.set_state(svc.store, uid, doc["nodeId"], UNUSABLE, now, error)
        telemetry.count_failure("NodeHeartbeatLost")
        job_runs.requeue_holder(svc, NodeDocument.load(doc),  # bridge
                                "NodeHeartbeatLost", f"Node {doc['nodeId']}: {error['message']}",
                                failure=True)
    _check_running(svc, cluster, uid, now, _work_of(records))
    return [d["nodeId"] for d in lost]


def unheld(job: dict[str, Any], docs: dict[str, dict[str, Any]]) -> list[str]:
    """Pure: the nodes of a running job that do not hold its attempt (gone, or holding another)."""
    return [n for n in job.get("nodes") or []
            if (d := docs.get(n)) is None or d.get("job") != job["id"] or d.get("attempt") != job["attempt"]]


def vanished(job: dict[str, Any], docs: dict[str, dict[str, Any]], beats: dict[str, tuple[datetime, Work]],
             grace: timedelta) -> list[str]:
    """Pure: the nodes that hold this running job's attempt and have not reported it, but whose
    agent said, in its last beat, that it had had no live work for it for longer than `grace`.
    That span starts at the node's claim (its `since`) or the attempt's start, whichever is later,
    so a beat from before the agent could know of the attempt is never evidence."""
    started = parse_time(((job.get("resource") or {}).get("properties", {}).get("executionInfo") or {}).get("startTime"))
    lost = []
    for node_id in job.get("nodes") or []:
        doc, seen = docs.get(node_id), beats.get(node_id)
        if node_id in (job.get("reports") or {}) or doc is None or seen is None:
            continue
        at, work = seen
        claimed = max(filter(None, (parse_time(doc.get("since")), started)), default=None)
        if work.idle_seconds is None or claimed is None or not work.lacks(job["id"], job["attempt"]):
            continue
        lacking_since = max(claimed, at - timedelta(seconds=work.idle_seconds))
        if at - lacking_since > grace:
            lost.append(node_id)
    return lost


def _check_running(svc: Services, cluster: dict[str, Any], uid: str, now: datetime,
                   beats: dict[str, tuple[datetime, Work]] | None = None) -> None:
    """Running jobs past their wall-clock limit fail; one whose nodes no longer run it (a crash
    between two writes) queues again, spending no retry: its nodes did not fail; one whose node
    lost it (see `vanished`) fails."""
    running = svc.store.query(R, Query(where={"kind": "job", "cluster": cluster["id"], "state": job_runs.RUNNING}),
                              pk=cluster["pk"])
    docs = {d["nodeId"]: d for d in nodes.list_docs(svc.store, uid)} if running else {}
    for job in running:
        missing = unheld(job, docs)
        lost = vanished(job, docs, beats or {}, grace(svc))
        if missing:
            telemetry.count_failure("AttemptRepaired")
            job_runs.requeue_attempt(svc, job["pk"], job["id"], job["attempt"], "AttemptRepaired",
                                    f"Nodes {', '.join(missing)} no longer ran the attempt; it starts again.")
        elif lost:
            telemetry.count_failure(ATTEMPT_VANISHED)
            _fail_attempt(svc, job, ATTEMPT_VANISHED, (
                f"Node {', '.join(lost)} held attempt {job['attempt']} of the job but ran nothing for it and reported"
                f" no exit code for more than {grace(svc).total_seconds():g} s; see the node's execution log."))
        elif past_wall_clock(job, now):
            limit = job["resource"]["properties"]["constraints"]["maxWallClockTime"]
            telemetry.count_failure("MaxWallClockTimeExceeded")
            job_runs.fail_job(svc, JobDocument.load(job), "MaxWallClockTimeExceeded",  # bridge
                              f"The job ran longer than its maxWallClockTime ({limit}).")
    terminating = svc.store.query(R, Query(where={"kind": "job", "cluster": cluster["id"],
                                                  "state": job_runs.TERMINATING}), pk=cluster["pk"])
    for job in terminating:
        since = parse_time(job["resource"]["properties"].get("executionStateTransitionTime"))
        if since is not None and now - since > TERMINATE_TIMEOUT:  # a node that never confirmed
            telemetry.count_failure("TerminateTimedOut")
            job_runs.fail_job(svc, JobDocument.load(job), job_runs.TERMINATED, job_runs.TERMINATED_MESSAGE)  # bridge


def _fail_attempt(svc: Services, job: dict[str, Any], code: str, message: str) -> None:
    """Fail the job if the attempt that was judged is still the running one (invariant 3)."""
    attempt = job["attempt"]

    def edit(doc: JobDocument) -> bool:
        if doc.state != job_runs.RUNNING or doc.attempt != attempt:
            return False
        job_runs.fail(doc, svc.clock.now(), code, message)
        return True

    job_runs.transition(svc, job["pk"], job["id"], edit)


def _work_of(records: dict[str, dict[str, Any]]) -> dict[str, tuple[datetime, Work]]:
    """Node id -> (when, what) of its last beat that said what it runs."""
    out = {}
    for record in records.values():
        at, work = parse_time(record.get("at")), record.get("work")
        if at is None or work is None:
            continue
        try:
            out[record["id"].partition("|")[2]] = (at, Work.model_validate(work, by_alias=True, by_name=False))
        except ValidationError:  # a record no beat of this version wrote: no evidence either way
            continue
    return out


def _delete(svc: Services, uid: str, key: str) -> None:
    try:
        svc.store.delete(H, uid, key)
    except NotFound:
        pass


def resume_all(svc: Services) -> None:
    """A control plane that has just started (the local host is the only one) was away for an
    unknown time: every cluster's next round gives its nodes a fresh grace."""
    for record in svc.store.query(H, Query(where={"id": _WATCHDOG})):
        _delete(svc, record["pk"], _WATCHDOG)
