"""A job's run: its execution state machine, and what each transition frees or publishes.

    queued --(dispatcher places it)--> running --(agent reports exit)--> succeeded | failed
       ^                                  |
       +--------(requeue: node lost, cluster shrunk)
    queued | running --(terminate, cluster deleted, cannot fit)--> failed
    running --(terminate)--> terminating --(every node stopped its processes, or a timeout)--> failed

Every node of an attempt reports once: the exit code of the processes the job's outcome waits for
on that node (0 at once for a node that only holds its place, such as an MPI job's other nodes).
The attempt succeeds when every node reported 0 and fails at the first non-zero report.
Each start raises the job's attempt number; nodes, reports and kills all carry it (invariant 3).
The transition is one ETag-guarded write of the job document; what follows from it (nodes given back,
the lane message, a dispatch signal) is idempotent, so a crash in between is repaired by a retry.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from shared import events, lanes, nodes
from shared.composition import Services
from shared.documents.base import JsonObject, read, retrying_on_etag
from shared.documents.nodes import NodeDocument
from shared.documents.resources import AttemptEnd, ErrorEntry, ExecutionInfo, JobDocument, JobState
from shared.nodes import stamp
from shared.ports.state_store import NotFound

QUEUED: JobState = "queued"
RUNNING: JobState = "running"
TERMINATING: JobState = "terminating"
SUCCEEDED: JobState = "succeeded"
FAILED: JobState = "failed"
FINAL = frozenset({SUCCEEDED, FAILED})
ACTIVE = frozenset({RUNNING, TERMINATING})  # an attempt holds its nodes
TERMINATED, TERMINATED_MESSAGE = "JobTerminated", "The job was terminated by the user."


def _set_state(job: JobDocument, state: JobState, now: datetime) -> None:
    job.state = state
    job.props.execution_state = state
    job.props.execution_state_transition_time = stamp(now)


def _info(job: JobDocument) -> ExecutionInfo:
    """The job's executionInfo, made when it has none yet."""
    if job.props.execution_info is None:
        job.props.execution_info = ExecutionInfo()
    return job.props.execution_info


def start(job: JobDocument, node_ids: list[str], now: datetime) -> None:
    """Queued -> running on these nodes, as the next attempt."""
    job.attempt += 1
    job.nodes = list(node_ids)
    job.reports = {}
    job.prepared = []  # nodes that ran the job preparation (see api/agent.py `prepared`)
    _set_state(job, RUNNING, now)
    job.props.execution_info = ExecutionInfo(start_time=stamp(now))


def finish(job: JobDocument, exit_code: int, now: datetime) -> None:
    """Running -> succeeded (exit code 0) or failed."""
    _set_state(job, SUCCEEDED if exit_code == 0 else FAILED, now)
    info = _info(job)
    info.end_time, info.exit_code = stamp(now), exit_code
    if exit_code != 0:
        info.errors = [ErrorEntry(code="JobFailed", message=f"The job's process exited with code {exit_code}.")]


def record_report(job: JobDocument, node_id: str, exit_code: int, now: datetime,
                  error: ErrorEntry | None = None) -> bool:
    """One node's report on a running attempt; ends the attempt when it decides the outcome.
    False when it changes nothing (a repeated report)."""
    if node_id in job.reports:
        return False
    job.reports[node_id] = exit_code
    if exit_code != 0:
        finish(job, exit_code, now)
        if error is not None:
            _info(job).errors = [error.model_copy()]
    elif all(job.reports.get(n) == 0 for n in job.nodes):
        finish(job, 0, now)
    return True


def terminate(job: JobDocument, now: datetime) -> None:
    """Running -> terminating: the attempt keeps its nodes until each has stopped its processes."""
    job.stopped = []
    _set_state(job, TERMINATING, now)


def record_stopped(job: JobDocument, node_id: str, now: datetime) -> bool:
    """A node of a terminating attempt stopped its processes; the last one makes the job final."""
    if node_id in job.stopped:
        return False
    job.stopped.append(node_id)
    if set(job.nodes) <= set(job.stopped):
        fail(job, now, TERMINATED, TERMINATED_MESSAGE)
    return True


def fail(job: JobDocument, now: datetime, code: str, message: str) -> None:
    """Any unfinished state -> failed, with the reason."""
    _set_state(job, FAILED, now)
    info = _info(job)
    info.end_time = stamp(now)
    info.errors = [ErrorEntry(code=code, message=message)]


def requeue(job: JobDocument, now: datetime) -> None:
    """Running -> queued: the attempt is over; the next one starts from the head of the lane."""
    job.nodes = []
    _set_state(job, QUEUED, now)


Edit = Callable[[JobDocument], bool]


def transition(svc: Services, pk: str, job_key: str, edit: Edit, read_now: JobDocument | None = None,
               written_first: Callable[[JobDocument], None] | None = None) -> JobDocument | None:
    """Apply `edit` (False: no change) to the job under its ETag, then give back the nodes of an
    attempt that ended, publish a job that is queued again, and wake the dispatcher.
    `read_now`: the job as the caller has just read it (spares a read; a stale one costs a retry).
    `written_first`: called as soon as the write has landed, before those follow-ups and the events'
    sending (the dispatcher wakes the job's nodes there: they need only the write).
    Returns the job as written, or None if it is gone or unchanged."""
    written = _write(svc, pk, job_key, edit, read_now)
    if written is None:
        return None
    before, after, stored = written
    if written_first is not None:
        written_first(after)
    attempt_ended = before.state in ACTIVE and (after.state not in ACTIVE or after.attempt != before.attempt)
    if attempt_ended:
        free_attempt(svc, before)
    if after.state == QUEUED and before.state != QUEUED:
        lanes.publish_job(svc.messaging, after)
    if attempt_ended or after.state == QUEUED:
        lanes.signal(svc.messaging, after.cluster, after.cluster_pk)
    # Job events: publish the event(s) the write put in the job's outbox (shared/events.py).
    events.flush(svc, after, stored)
    return after


def requeue_holder(svc: Services, node: NodeDocument, code: str, message: str, failure: bool = False) -> None:
    """The attempt holding this node ends (the node is lost or leaving): its job queues again. A
    `failure` (not a resize or an eviction) spends one retry; with none left the job fails."""
    if node.job is not None and node.job_pk is not None:
        requeue_attempt(svc, node.job_pk, node.job, node.attempt, code, message, failure)


def requeue_attempt(svc: Services, job_pk: str, job_key: str, attempt: int, code: str, message: str,
                    failure: bool = False) -> None:
    """This attempt of the job ends, if it still runs, and the job queues again (see requeue_holder)."""

    def end(job: JobDocument) -> None:
        now = svc.clock.now()
        if job.state == TERMINATING:  # it was being stopped anyway: it ends as terminated
            fail(job, now, TERMINATED, TERMINATED_MESSAGE)
            return
        job.history.append(AttemptEnd(attempt=job.attempt, code=code, message=message))
        if failure:
            job.retries += 1
            if job.retries > svc.settings.job_retry_budget:
                fail(job, now, "RetryBudgetSpent", f"The job's nodes failed {job.retries} times; the last: "
                                                   f"{message}")
                failures = [h for h in job.history if h.code not in ("NodeDeallocated",)]
                _info(job).errors = [*(_info(job).errors or []), *(
                    ErrorEntry(code=h.code, message=f"Attempt {h.attempt}: {h.message}") for h in failures)]
                return
        requeue(job, now)

    _end_attempt(svc, job_pk, job_key, attempt, end)


def fail_holder(svc: Services, node: NodeDocument, code: str, message: str) -> None:
    """The attempt holding this node ends and its job fails with the reason."""
    if node.job is not None and node.job_pk is not None:
        _end_attempt(svc, node.job_pk, node.job, node.attempt, lambda job: fail(job, svc.clock.now(), code, message))


def _end_attempt(svc: Services, job_pk: str, job_key: str, attempt: int, end: Callable[[JobDocument], None]) -> None:
    """Apply `end` to the job if this attempt of it is still running."""

    def edit(job: JobDocument) -> bool:
        if job.state not in ACTIVE or job.attempt != attempt:
            return False
        end(job)
        return True

    transition(svc, job_pk, job_key, edit)


def terminate_job(svc: Services, job: JobDocument) -> JobDocument | None:
    """The user's terminate: a queued job fails at once; a running one is terminating until its
    nodes have stopped its processes (see `record_stopped`; the watchdog ends it if they do not)."""

    def edit(doc: JobDocument) -> bool:
        if doc.state == QUEUED:
            fail(doc, svc.clock.now(), TERMINATED, TERMINATED_MESSAGE)
        elif doc.state == RUNNING:
            terminate(doc, svc.clock.now())
        else:
            return False
        return True

    return transition(svc, job.pk, job.id, edit, read_now=job)


def fail_job(svc: Services, job: JobDocument, code: str, message: str) -> JobDocument | None:
    """End a job that has not finished as failed, with the reason (its attempt, if any, stops)."""

    def edit(doc: JobDocument) -> bool:
        if doc.state in FINAL:
            return False
        fail(doc, svc.clock.now(), code, message)
        return True

    return transition(svc, job.pk, job.id, edit)


def free_attempt(svc: Services, job: JobDocument) -> None:
    """Give back every node the job's current attempt holds, and tell their agents at once."""
    now = svc.clock.now()
    for node_id in job.nodes:
        nodes.release(svc.store, job.cluster_uid, node_id, job.id, job.attempt, now)
        svc.wakeups.notify(nodes.node_key(job.cluster_uid, node_id))


def _write(svc: Services, pk: str, job_key: str, edit: Edit, read_now: JobDocument | None
           ) -> tuple[JobDocument, JobDocument, JsonObject] | None:
    """(before, after, after's JSON as stored) of one ETag-guarded edit, re-read and retried when
    another writer won."""
    if read_now is not None and read_now.etag is None:
        read_now = None  # not as stored: its write would go unguarded
    for retry in retrying_on_etag():
        with retry:
            before, read_now = read_now or read(svc.store, JobDocument, pk, job_key), None
            if before is None:
                return None
            doc = before.copy_for_edit()
            if not edit(doc):
                return None
            # Job events: the change's CloudEvent joins the job's outbox in this same ETag-guarded
            # write, so it is recorded exactly when the change is (shared/events.py).
            events.record_change(before, doc)
            stored = doc.to_json()
            try:
                doc.etag = svc.store.replace(JobDocument.container, stored, etag=before.etag)["_etag"]
            except NotFound:
                return None
            return before, doc, stored  # as written: no second load of what was just dumped
    return None
