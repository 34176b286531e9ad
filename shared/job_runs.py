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
from typing import Any

from shared import events, lanes, nodes
from shared.composition import Services
from shared.nodes import stamp
from shared.resources import R, retrying_on_etag
from shared.ports.state_store import NotFound

QUEUED, RUNNING, TERMINATING, SUCCEEDED, FAILED = "queued", "running", "terminating", "succeeded", "failed"
FINAL = frozenset({SUCCEEDED, FAILED})
ACTIVE = frozenset({RUNNING, TERMINATING})  # an attempt holds its nodes
TERMINATED, TERMINATED_MESSAGE = "JobTerminated", "The job was terminated by the user."


def _set_state(doc: dict[str, Any], state: str, now: datetime) -> None:
    doc["state"] = state
    props = doc["resource"]["properties"]
    props["executionState"] = state
    props["executionStateTransitionTime"] = stamp(now)


def start(doc: dict[str, Any], node_ids: list[str], now: datetime) -> None:
    """Queued -> running on these nodes, as the next attempt."""
    doc["attempt"] = doc.get("attempt", 0) + 1
    doc["nodes"] = list(node_ids)
    doc["reports"] = {}
    doc["prepared"] = []  # nodes that ran the job preparation (see api/agent.py `prepared`)
    _set_state(doc, RUNNING, now)
    doc["resource"]["properties"]["executionInfo"] = {"startTime": stamp(now)}


def finish(doc: dict[str, Any], exit_code: int, now: datetime) -> None:
    """Running -> succeeded (exit code 0) or failed."""
    _set_state(doc, SUCCEEDED if exit_code == 0 else FAILED, now)
    info = doc["resource"]["properties"].setdefault("executionInfo", {})
    info.update(endTime=stamp(now), exitCode=exit_code)
    if exit_code != 0:
        info["errors"] = [{"code": "JobFailed", "message": f"The job's process exited with code {exit_code}."}]


def record_report(doc: dict[str, Any], node_id: str, exit_code: int, now: datetime,
                  error: dict[str, str] | None = None) -> bool:
    """One node's report on a running attempt; ends the attempt when it decides the outcome.
    False when it changes nothing (a repeated report)."""
    reports = doc.setdefault("reports", {})
    if node_id in reports:
        return False
    reports[node_id] = exit_code
    if exit_code != 0:
        finish(doc, exit_code, now)
        if error is not None:
            doc["resource"]["properties"]["executionInfo"]["errors"] = [dict(error)]
    elif all(reports.get(n) == 0 for n in doc["nodes"]):
        finish(doc, 0, now)
    return True


def terminate(doc: dict[str, Any], now: datetime) -> None:
    """Running -> terminating: the attempt keeps its nodes until each has stopped its processes."""
    doc["stopped"] = []
    _set_state(doc, TERMINATING, now)


def record_stopped(doc: dict[str, Any], node_id: str, now: datetime) -> bool:
    """A node of a terminating attempt stopped its processes; the last one makes the job final."""
    stopped = doc.setdefault("stopped", [])
    if node_id in stopped:
        return False
    stopped.append(node_id)
    if set(doc["nodes"]) <= set(stopped):
        fail(doc, now, TERMINATED, TERMINATED_MESSAGE)
    return True



def fail(doc: dict[str, Any], now: datetime, code: str, message: str) -> None:
    """Any unfinished state -> failed, with the reason."""
    _set_state(doc, FAILED, now)
    info = doc["resource"]["properties"].setdefault("executionInfo", {})
    info["endTime"] = stamp(now)
    info["errors"] = [{"code": code, "message": message}]


def requeue(doc: dict[str, Any], now: datetime) -> None:
    """Running -> queued: the attempt is over; the next one starts from the head of the lane."""
    doc["nodes"] = []
    _set_state(doc, QUEUED, now)


Edit = Callable[[dict[str, Any]], bool]


def transition(svc: Services, pk: str, job_key: str, edit: Edit) -> dict[str, Any] | None:
    """Apply `edit` (False: no change) to the job under its ETag, then give back the nodes of an
    attempt that ended, publish a job that is queued again, and wake the dispatcher.
    Returns the job as written, or None if it is gone or unchanged."""
    written = _write(svc, pk, job_key, edit)
    if written is None:
        return None
    before, after = written
    attempt_ended = before["state"] in ACTIVE and (after["state"] not in ACTIVE or after["attempt"] != before["attempt"])
    if attempt_ended:
        free_attempt(svc, before)
    if after["state"] == QUEUED and before["state"] != QUEUED:
        lanes.publish_job(svc.messaging, after)
    if attempt_ended or after["state"] == QUEUED:
        lanes.signal(svc.messaging, after["cluster"], after["clusterPk"])
    # Job events: publish the event(s) the write put in the job's outbox (shared/events.py).
    events.flush(svc, after)
    return after


def requeue_holder(svc: Services, node: dict[str, Any], code: str, message: str, failure: bool = False) -> None:
    """The attempt holding this node ends (the node is lost or leaving): its job queues again. A
    `failure` (not a resize or an eviction) spends one retry; with none left the job fails."""

    def end(job: dict[str, Any]) -> None:
        now = svc.clock.now()
        if job["state"] == TERMINATING:  # it was being stopped anyway: it ends as terminated
            fail(job, now, TERMINATED, TERMINATED_MESSAGE)
            return
        job.setdefault("history", []).append({"attempt": job["attempt"], "code": code, "message": message})
        if failure:
            job["retries"] = job.get("retries", 0) + 1
            if job["retries"] > svc.settings.job_retry_budget:
                fail(job, now, "RetryBudgetSpent", f"The job's nodes failed {job['retries']} times; the last: "
                                                   f"{message}")
                failures = [h for h in job["history"] if h["code"] not in ("NodeDeallocated",)]
                job["resource"]["properties"]["executionInfo"]["errors"] += [
                    {"code": h["code"], "message": f"Attempt {h['attempt']}: {h['message']}"} for h in failures]
                return
        requeue(job, now)

    _end_holder(svc, node, end)


def fail_holder(svc: Services, node: dict[str, Any], code: str, message: str) -> None:
    """The attempt holding this node ends and its job fails with the reason."""
    _end_holder(svc, node, lambda job: fail(job, svc.clock.now(), code, message))


def _end_holder(svc: Services, node: dict[str, Any], end: Callable[[dict[str, Any]], None]) -> None:
    """Apply `end` to the job whose attempt holds the node, if that attempt is still running."""
    if node.get("job") is None:
        return
    attempt = node["attempt"]

    def edit(job: dict[str, Any]) -> bool:
        if job["state"] not in ACTIVE or job["attempt"] != attempt:
            return False
        end(job)
        return True

    transition(svc, node["jobPk"], node["job"], edit)


def terminate_job(svc: Services, job: dict[str, Any]) -> dict[str, Any] | None:
    """The user's terminate: a queued job fails at once; a running one is terminating until its
    nodes have stopped its processes (see `record_stopped`; the watchdog ends it if they do not)."""

    def edit(doc: dict[str, Any]) -> bool:
        if doc["state"] == QUEUED:
            fail(doc, svc.clock.now(), TERMINATED, TERMINATED_MESSAGE)
        elif doc["state"] == RUNNING:
            terminate(doc, svc.clock.now())
        else:
            return False
        return True

    return transition(svc, job["pk"], job["id"], edit)


def fail_job(svc: Services, job: dict[str, Any], code: str, message: str) -> dict[str, Any] | None:
    """End a job that has not finished as failed, with the reason (its attempt, if any, stops)."""

    def edit(doc: dict[str, Any]) -> bool:
        if doc["state"] in FINAL:
            return False
        fail(doc, svc.clock.now(), code, message)
        return True

    return transition(svc, job["pk"], job["id"], edit)


def free_attempt(svc: Services, job: dict[str, Any]) -> None:
    """Give back every node the job's current attempt holds, and tell their agents at once."""
    now = svc.clock.now()
    for node_id in job.get("nodes") or []:
        nodes.release(svc.store, job["clusterUid"], node_id, job["id"], job["attempt"], now)
        svc.wakeups.notify(nodes.node_key(job["clusterUid"], node_id))


def _copy_json(value: Any) -> Any:
    """A deep copy of a JSON document (dicts, lists, scalars): several times cheaper than copy.deepcopy,
    which the write path of every transition would otherwise pay."""
    if isinstance(value, dict):
        return {k: _copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy_json(v) for v in value]
    return value


def _write(svc: Services, pk: str, job_key: str, edit: Edit) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(before, after) of one ETag-guarded edit, re-read and retried when another writer won."""
    for retry in retrying_on_etag():
        with retry:
            before = svc.store.read(R, pk, job_key)
            if before is None:
                return None
            doc = _copy_json(before)
            if not edit(doc):
                return None
            # Job events: the change's CloudEvent joins the job's outbox in this same ETag-guarded
            # write, so it is recorded exactly when the change is (shared/events.py).
            events.record_change(before, doc)
            try:
                return before, svc.store.replace(R, doc, etag=before["_etag"])
            except NotFound:
                return None
    return None
