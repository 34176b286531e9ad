"""Job events: a CloudEvents 1.0 event for every change of a job's state, published exactly once.

Exactly once, through an outbox on the job document:
1. The ETag-guarded write that changes the state (job_runs._write) also appends the change's event,
   with a fresh id, to doc["outbox"] (`record_change`). Either both are stored or neither.
2. After the write, `flush` sends the outbox to the job-events topic with message_id = event id,
   then removes what it sent with another ETag edit.
3. A crash between 1 and 2, or a failed send, leaves the events in the outbox; the outbox timer
   (`sweep`) sends them again. A repeat of a send that did arrive carries the same message_id, and
   the topic's duplicate detection drops it.

A job's creation is its first change (nothing -> queued): the create writes the job with that
event in its outbox (`creation_fields`) and flushes it. A job stored without one (by an older
version) gets it from its first transition.

The job document also keeps its last HISTORY_LIMIT events in doc["eventHistory"] (written by the
same edits as the outbox, never emptied by a send, never part of the job's GET answer), which
GET .../jobs/{job}/events serves (shared/api/job_events.py) for the web page's timeline.

Types, one per state entered: Microsoft.BatchAI.Job{Queued,Running,Terminating,Succeeded,Failed}. A requeue is a
JobQueued event with previousState "running" and the requeue's reason in data.errors. Events carry
no job properties (they may hold secrets), only the state, attempt, exit code and errors.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import timedelta
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from shared.models.event_subscription import JobEventType
from shared.ports.messaging import EntityOptions, OutgoingMessage
from shared.ports.state_store import NotFound, PreconditionFailed, Query
from shared.resources import R, edit_stored

if TYPE_CHECKING:
    from shared.composition import Services

log = logging.getLogger(__name__)

JOB_EVENTS_TOPIC = "job-events"
# The topic's subscription that feeds webhook delivery; users may add subscriptions of their own.
WEBHOOKS_SUBSCRIPTION = "webhooks"
# One message per (event, event subscription) and attempt (shared/event_delivery.py).
DELIVERIES_QUEUE = "event-deliveries"
TOPIC_OPTIONS = EntityOptions(duplicate_detection_window=timedelta(minutes=10))
# Locks short enough that a message held by a host that crashed comes back in seconds, long enough
# for one webhook POST (BATCHAI_EVENT_DELIVERY_TIMEOUT_SECONDS, 5 s by default) and its bookkeeping.
FANOUT_OPTIONS = EntityOptions(lock_duration=timedelta(seconds=15), max_delivery_count=10)
DELIVERY_OPTIONS = EntityOptions(lock_duration=timedelta(seconds=15), max_delivery_count=10,
                                 duplicate_detection_window=timedelta(minutes=10))

TYPES = {"queued": JobEventType.JOB_QUEUED.value, "running": JobEventType.JOB_RUNNING.value,
         "terminating": JobEventType.JOB_TERMINATING.value,
         "succeeded": JobEventType.JOB_SUCCEEDED.value, "failed": JobEventType.JOB_FAILED.value}
SEQ = "eventSeq"  # how many events the job has recorded; absent: not even its creation yet
HISTORY = "eventHistory"  # the job's last HISTORY_LIMIT events, oldest first
HISTORY_LIMIT = 200


def record_change(before: dict[str, Any], doc: dict[str, Any]) -> None:
    """Append to the outbox of `doc` (about to replace `before`) the events of what changed."""
    if SEQ not in doc:
        doc[SEQ] = 0
        if before["state"] == "queued" and before.get("attempt", 0) == 0:
            _append(doc, build(before, None, 1, time=before["resource"]["properties"].get("creationTime")))
    if doc["state"] != before["state"]:
        _append(doc, build(doc, before["state"], doc[SEQ] + 1, errors=_requeue_reason(before, doc)))


def creation_fields(resource: dict[str, Any]) -> dict[str, Any]:
    """What a new job's document starts with: its creation event already in the outbox, so the
    create itself records it (the job's creator then flushes it)."""
    event = build({"resource": resource, "state": "queued", "attempt": 0}, None, 1,
                  time=resource["properties"].get("creationTime"))
    return {SEQ: 1, "outbox": [event], "outboxPending": True, HISTORY: [event]}


def build(doc: dict[str, Any], previous: str | None, sequence: int, *, time: str | None = None,
          errors: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """The CloudEvent of `doc` having entered its state (at `time`, else its transition time)."""
    props = doc["resource"]["properties"]
    info = props.get("executionInfo") or {}
    state = doc["state"]
    ended = state in ("succeeded", "failed")
    source = doc["resource"]["id"]
    return {
        "specversion": "1.0",
        "id": uuid.uuid4().hex,
        "source": source,
        "type": TYPES[state],
        "subject": source[source.index("/experiments/") + 1:],  # experiments/{e}/jobs/{j}
        "time": time or props.get("executionStateTransitionTime"),
        "datacontenttype": "application/json",
        "sequence": str(sequence),  # CloudEvents' sequence extension: the job's events in order
        "data": {"state": state, "previousState": previous, "exitCode": info.get("exitCode") if ended else None,
                 "attempt": doc.get("attempt", 0),
                 "errors": errors if errors is not None else list(info.get("errors") or []) if ended else []},
    }


def _requeue_reason(before: dict[str, Any], doc: dict[str, Any]) -> list[dict[str, str]] | None:
    """Why a running job queued again (the last entry of its history, written by the same edit)."""
    if not (before["state"] == "running" and doc["state"] == "queued"):
        return None
    last = (doc.get("history") or [{}])[-1]
    if last.get("attempt") != before.get("attempt") or "code" not in last:
        return None
    return [{"code": last["code"], "message": last["message"]}]


def _append(doc: dict[str, Any], event: dict[str, Any]) -> None:
    doc[SEQ] = int(event["sequence"])
    doc.setdefault("outbox", []).append(event)
    doc["outboxPending"] = True
    doc[HISTORY] = [*(doc.get(HISTORY) or []), event][-HISTORY_LIMIT:]


def flush(svc: Services, doc: dict[str, Any]) -> None:
    """Publish the job's outbox and empty it. Never raises: what is left is sent by `sweep`."""
    outbox = doc.get("outbox") or []
    if not outbox:
        return
    try:
        svc.messaging.send(JOB_EVENTS_TOPIC, [message(e) for e in outbox])
    except Exception as exc:
        log.warning("job events of %s not published yet (%s: %s); the outbox timer retries",
                    doc["id"], type(exc).__name__, exc)
        return
    sent = {e["id"] for e in outbox}

    def remove(current: dict[str, Any]) -> bool:
        left = [e for e in current.get("outbox") or [] if e["id"] not in sent]
        if len(left) == len(current.get("outbox") or []):
            return False
        if left:
            current["outbox"] = left
        else:
            current.pop("outbox", None)
            current.pop("outboxPending", None)
        return True

    try:
        if not _remove_unchanged(svc, doc, remove):
            edit_stored(svc.store, R, doc["pk"], doc["id"], remove)
    except Exception:  # sent but not removed: the timer sends it again and the topic drops the repeat
        log.exception("could not empty the job events outbox of %s", doc["id"])


def _remove_unchanged(svc: Services, doc: dict[str, Any], remove: Callable[[dict[str, Any]], bool]) -> bool:
    """Empty the outbox of `doc` as it was written (no re-read), if nobody has changed it since."""
    etag = doc.get("_etag")
    if etag is None:
        return False
    current = {k: v for k, v in doc.items() if k not in ("outbox", "outboxPending")}
    current["outbox"] = doc.get("outbox")
    if not remove(current):
        return True
    try:
        svc.store.replace(R, current, etag=etag)
    except PreconditionFailed:
        return False  # changed meanwhile: from a fresh read
    except NotFound:
        pass  # deleted: nothing left to empty
    return True


def message(event: dict[str, Any]) -> OutgoingMessage:
    return OutgoingMessage(json.dumps(event, separators=(",", ":")).encode(), message_id=event["id"],
                           subject=event["type"], application_properties={"source": event["source"]})


def sweep(svc: Services) -> None:
    """The outbox timer's round: publish every outbox a crash or a failed send left behind."""
    for job in svc.store.query(R, Query(where={"kind": "job", "outboxPending": True})):
        flush(svc, job)
