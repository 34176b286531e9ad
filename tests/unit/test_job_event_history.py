"""A job's event history (shared/events.py): every event its changes record, in order, the last
HISTORY_LIMIT of them, kept when the outbox is emptied."""

from __future__ import annotations

from shared import events, job_runs
from shared.api import access
from shared.documents.resources import JobDocument
from shared.models.role_assignment import Role
from shared.ports.clock import ManualClock
from tests.unit.test_events import change, new_job, wire


def test_the_history_holds_every_event_in_order_and_outlives_the_outbox() -> None:
    clock = ManualClock()
    created = new_job()
    events.record_creation(created)
    doc = change(created, lambda d: job_runs.start(d, ["n1"], clock.advance(1)))
    doc = change(doc, lambda d: job_runs.finish(d, 0, clock.advance(1)))
    assert [e["data"]["state"] for e in wire(doc.event_history)] == ["queued", "running", "succeeded"]
    assert doc.event_history == doc.outbox
    doc.outbox = []  # what flush does once the events are sent
    doc = change(doc, lambda d: setattr(d, "nodes", []))  # no state change: nothing new
    assert [e["sequence"] for e in wire(doc.event_history)] == ["1", "2", "3"]


def test_the_history_keeps_only_the_last_events() -> None:
    clock = ManualClock()
    doc = new_job()

    def requeue(d: JobDocument) -> None:
        job_runs.requeue(d, clock.advance(1))

    for _ in range(120):  # 1 + 240 events: created, then running and queued again, 120 times
        doc = change(doc, lambda d: job_runs.start(d, ["n1"], clock.advance(1)))
        doc = change(doc, requeue)
        doc.outbox = []
    history = wire(doc.event_history)
    assert len(history) == events.HISTORY_LIMIT == 200
    assert [int(e["sequence"]) for e in history] == list(range(42, 242))
    assert history[-1]["data"] | {"errors": []} == {"state": "queued", "previousState": "running", "exitCode": None,
                                                    "attempt": 120, "errors": []}


def test_reading_a_jobs_events_needs_the_reader_role() -> None:
    assert access.needed_role("JobEvents_List", "GET") == Role.READER
