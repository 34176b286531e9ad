"""Job events: a CloudEvents 1.0 event for every change of a job's state, published exactly once.

Exactly once, through an outbox on the job document:
1. The ETag-guarded write that changes the state (job_runs._write) also appends the change's event,
   with a fresh id, to the job's `outbox` (`record_change`). Either both are stored or neither.
2. After the write, `flush` sends the outbox to the job-events topic with message_id = event id,
   then removes what it sent with another ETag edit.
3. A crash between 1 and 2, or a failed send, leaves the events in the outbox; the outbox timer
   (`sweep`) sends them again. A repeat of a send that did arrive carries the same message_id, and
   the topic's duplicate detection drops it.

A job's creation is its first change (nothing -> queued): the create writes the job with that
event in its outbox (`record_creation`) and flushes it. A job stored without one (by an older
version) gets it from its first transition.

The job document also keeps its last HISTORY_LIMIT events in its `event_history` (written by the
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
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from shared.documents.base import JsonObject, edit, query
from shared.documents.resources import JobDocument, JobState, SweepDocument
from shared.models.event_subscription import JobEventType
from shared.models.job_event import JobEvent, JobEventData, JobEventError
from shared.ports.messaging import EntityOptions, OutgoingMessage
from shared.ports.state_store import NotFound, PreconditionFailed, Query

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

TYPES: dict[JobState, str] = {
    "queued": JobEventType.JOB_QUEUED.value, "running": JobEventType.JOB_RUNNING.value,
    "terminating": JobEventType.JOB_TERMINATING.value,
    "succeeded": JobEventType.JOB_SUCCEEDED.value, "failed": JobEventType.JOB_FAILED.value}
SEQ = "eventSeq"  # stored name of JobDocument.event_seq: how many events the job has recorded
HISTORY = "eventHistory"  # stored name of JobDocument.event_history: its last HISTORY_LIMIT events
HISTORY_LIMIT = 200

# A document with an outbox of CloudEvents: a job's (JobEvent) or a sweep's (its own, as JSON).
Outboxed = JobDocument | SweepDocument


def record_change(before: JobDocument, job: JobDocument) -> None:
    """Append to the outbox of `job` (about to replace `before`) the events of what changed."""
    if job.event_seq is None:
        job.event_seq = 0
        if before.state == "queued" and before.attempt == 0:
            _append(job, build(before, None, 1, time=before.props.creation_time))
    if job.state != before.state:
        _append(job, build(job, before.state, job.event_seq + 1, errors=_requeue_reason(before, job)))


def record_creation(job: JobDocument) -> None:
    """A new job's creation event, already in its outbox, so the create itself records it (the
    job's creator then flushes it)."""
    job.event_seq = None
    job.outbox, job.event_history = [], []
    _append(job, build(job, None, 1, time=job.props.creation_time))


def build(job: JobDocument, previous: str | None, sequence: int, *, time: str | None = None,
          errors: list[JobEventError] | None = None) -> JobEvent:
    """The CloudEvent of `job` having entered its state (at `time`, else its transition time)."""
    props = job.props
    info = props.execution_info
    state = job.state
    ended = state in ("succeeded", "failed")
    source = job.resource.id
    if errors is None:
        errors = [JobEventError(code=e.code, message=e.message) for e in (info.errors or [])] \
            if ended and info is not None else []
    return JobEvent(
        specversion="1.0",
        id=uuid.uuid4().hex,
        source=source,
        type=TYPES[state],
        subject=source[source.index("/experiments/") + 1:],  # experiments/{e}/jobs/{j}
        time=time or props.execution_state_transition_time,
        datacontenttype="application/json",
        sequence=str(sequence),  # CloudEvents' sequence extension: the job's events in order
        data=JobEventData(state=state, previous_state=previous,
                          exit_code=info.exit_code if ended and info is not None else None,
                          attempt=job.attempt, errors=errors),
    )


def _requeue_reason(before: JobDocument, job: JobDocument) -> list[JobEventError] | None:
    """Why a running job queued again (the last entry of its history, written by the same edit)."""
    if not (before.state == "running" and job.state == "queued") or not job.history:
        return None
    last = job.history[-1]
    if last.attempt != before.attempt:
        return None
    return [JobEventError(code=last.code, message=last.message)]


def _append(job: JobDocument, event: JobEvent) -> None:
    job.event_seq = int(event.sequence)
    job.outbox.append(event)
    job.outbox_pending = True
    job.event_history = [*job.event_history, event][-HISTORY_LIMIT:]


def flush(svc: Services, doc: Outboxed, stored: JsonObject | None = None) -> None:
    """Publish the document's outbox and empty it. Never raises: what is left is sent by `sweep`.
    `stored`: the JSON `doc` was just written as, which spares dumping it again."""
    outbox = doc.outbox
    if not outbox:
        return
    try:
        svc.messaging.send(JOB_EVENTS_TOPIC, [message(e) for e in outbox])
    except Exception as exc:
        log.warning("job events of %s not published yet (%s: %s); the outbox timer retries",
                    doc.id, type(exc).__name__, exc)
        return
    _forget_sent(svc, doc, outbox, stored)


def send_with(svc: Services, doc: JobDocument, batches: Sequence[tuple[str, Sequence[OutgoingMessage]]]) -> None:
    """Send `batches` and the document's outbox together (`Messaging.send_each`: one write on the
    embedded queues), then empty the outbox. A failed send raises, as `send_each` does; a failure
    to empty the outbox is left to `sweep`, as in `flush`."""
    outbox = doc.outbox
    svc.messaging.send_each([*batches, (JOB_EVENTS_TOPIC, [message(e) for e in outbox])] if outbox else batches)
    if outbox:
        _forget_sent(svc, doc, outbox, None)


def _forget_sent(svc: Services, doc: Outboxed, outbox: Sequence[JobEvent | JsonObject],
                 stored: JsonObject | None) -> None:
    """Remove the events just sent from the stored outbox of `doc`. Never raises."""
    sent = {_event_id(e) for e in outbox}

    def remove(current: Outboxed) -> bool:
        return _keep_unsent(current, sent)

    try:
        if not _remove_unchanged(svc, doc, remove, stored):
            edit(svc.store, type(doc), doc.pk, doc.id, remove)
    except Exception:  # sent but not removed: the timer sends it again and the topic drops the repeat
        log.exception("could not empty the job events outbox of %s", doc.id)


def _event_id(event: JobEvent | JsonObject) -> str:
    return event.id if isinstance(event, JobEvent) else str(event["id"])


def _keep_unsent(current: Outboxed, sent: set[str]) -> bool:
    """Drop the sent events from the outbox of `current`; False when none of them is there."""
    before = len(current.outbox)
    if isinstance(current, JobDocument):
        current.outbox = [e for e in current.outbox if e.id not in sent]
    else:
        current.outbox = [e for e in current.outbox if _event_id(e) not in sent]
    if len(current.outbox) == before:
        return False
    if not current.outbox:
        current.outbox_pending = None
    return True


def _remove_unchanged(svc: Services, doc: Outboxed, remove: Callable[[Outboxed], bool],
                      stored: JsonObject | None) -> bool:
    """Empty the outbox of `doc` as it was written (no re-read), if nobody has changed it since."""
    if doc.etag is None:
        return False
    current = doc.model_copy()  # shallow: only the outbox (a new list) and its flag change
    if not remove(current):
        return True
    try:
        svc.store.replace(doc.container, _without_sent(stored, current) if stored else current.to_json(),
                          etag=doc.etag)
    except PreconditionFailed:
        return False  # changed meanwhile: from a fresh read
    except NotFound:
        pass  # deleted: nothing left to empty
    return True


def _without_sent(stored: JsonObject, current: Outboxed) -> JsonObject:
    """`stored` with only the outbox of `current` left in it (a shallow copy: no dump of the rest)."""
    kept = {_event_id(e) for e in current.outbox}
    out = {k: v for k, v in stored.items() if k not in ("outbox", "outboxPending")}
    if kept:
        out["outbox"] = [e for e in stored["outbox"] if e["id"] in kept]
        out["outboxPending"] = True
    return out


def message(event: JobEvent | JsonObject) -> OutgoingMessage:
    """An event as the job-events topic carries it (a sweep's and a submission's events are JSON)."""
    body = event.model_dump(mode="json", by_alias=True) if isinstance(event, JobEvent) else event
    return OutgoingMessage(json.dumps(body, separators=(",", ":")).encode(), message_id=body["id"],
                           subject=body["type"], application_properties={"source": body["source"]})


def sweep(svc: Services) -> None:
    """The outbox timer's round: publish every outbox a crash or a failed send left behind."""
    for job in query(svc.store, JobDocument, Query(where={"kind": "job", "outboxPending": True})):
        flush(svc, job)
