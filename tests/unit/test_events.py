"""Job events without I/O: which events a change records, their CloudEvents shape, the backoff,
the signature, subscription filters and the subscription model's checks."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from shared import event_delivery, events, job_runs
from shared.documents.resources import AttemptEnd, EventFilterPart, JobDocument
from shared.models.event_subscription import EventSubscriptionCreateParameters
from shared.ports.clock import ManualClock
from shared.settings import Settings

JOB_ID = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.BatchAI/workspaces/ws/experiments/e/jobs/j"


def new_job() -> JobDocument:
    """A job document as an older release's jobs.create wrote it (no events recorded yet)."""
    properties = {"creationTime": "2026-01-01T00:00:00.000Z", "executionState": "queued",
                  "executionStateTransitionTime": "2026-01-01T00:00:00.000Z",
                  "jobPreparation": {"commandLine": "echo secret-value"}}
    spec = {"cluster": {"id": "c"}, "nodeCount": 1, "stdOutErrPathPrefix": "/tmp",
            "customToolkitSettings": {"commandLine": "true"}, "secrets": [{"name": "S", "value": "hidden"}]}
    return JobDocument.load({
        "id": "job|rg|ws|e|j", "pk": "s", "kind": "job", "parent": "experiment|rg|ws|e", "state": "queued",
        "attempt": 0, "nodes": [], "cluster": "cluster|rg|ws|c", "clusterPk": "s", "clusterUid": "u",
        "priority": "normal", "resource": {"id": JOB_ID, "name": "j", "type": "t", "properties": properties},
        "spec": spec})


def change(doc: JobDocument, edit: Callable[[JobDocument], Any]) -> JobDocument:
    """What job_runs._write does: edit a copy, record its events."""
    after = doc.copy_for_edit()
    edit(after)
    events.record_change(doc, after)
    return after


def wire(events_: list[Any]) -> list[dict[str, Any]]:
    """Events as the topic carries them."""
    return [e.model_dump(mode="json", by_alias=True) for e in events_]


def test_a_run_records_creation_start_and_end_in_order_once_each() -> None:
    clock = ManualClock()
    doc = new_job()
    doc = change(doc, lambda d: job_runs.start(d, ["n1"], clock.advance(1)))
    doc = change(doc, lambda d: job_runs.finish(d, 0, clock.advance(1)))
    outbox = wire(doc.outbox)
    assert [e["data"]["state"] for e in outbox] == ["queued", "running", "succeeded"]
    assert [e["data"]["previousState"] for e in outbox] == [None, "queued", "running"]
    assert [e["sequence"] for e in outbox] == ["1", "2", "3"]
    assert len({e["id"] for e in outbox}) == 3
    assert [e["type"] for e in outbox] == ["Microsoft.BatchAI.JobQueued", "Microsoft.BatchAI.JobRunning",
                                           "Microsoft.BatchAI.JobSucceeded"]
    assert doc.outbox_pending is True
    created, _, done = outbox
    assert created["time"] == "2026-01-01T00:00:00.000Z"
    assert done["data"] == {"state": "succeeded", "previousState": "running", "exitCode": 0, "attempt": 1,
                            "errors": []}
    assert done["source"] == JOB_ID and done["subject"] == "experiments/e/jobs/j"
    assert done["specversion"] == "1.0" and done["datacontenttype"] == "application/json"
    assert "hidden" not in str(outbox) and "echo" not in str(outbox), "no job properties in events"


def test_a_requeue_is_running_to_queued_with_its_reason_and_a_new_attempt_follows() -> None:
    clock = ManualClock()
    doc = change(new_job(), lambda d: job_runs.start(d, ["n1"], clock.now()))

    def lost(d: JobDocument) -> None:
        d.history.append(AttemptEnd(attempt=1, code="NodeLost", message="gone"))
        job_runs.requeue(d, clock.advance(1))

    doc = change(doc, lost)
    doc = change(doc, lambda d: job_runs.start(d, ["n2"], clock.advance(1)))
    doc = change(doc, lambda d: job_runs.finish(d, 3, clock.advance(1)))
    outbox = wire(doc.outbox)
    states = [(e["data"]["previousState"], e["data"]["state"], e["data"]["attempt"]) for e in outbox]
    assert states == [(None, "queued", 0), ("queued", "running", 1), ("running", "queued", 1),
                      ("queued", "running", 2), ("running", "failed", 2)]
    assert outbox[2]["data"]["errors"] == [{"code": "NodeLost", "message": "gone"}]
    failed = outbox[-1]["data"]
    assert failed["exitCode"] == 3 and failed["errors"][0]["code"] == "JobFailed"


def test_an_edit_that_changes_no_state_records_nothing_new() -> None:
    doc = change(new_job(), lambda d: setattr(d, "retries", 1))
    assert len(doc.outbox) == 1  # only the creation, recorded by the first write
    doc = change(doc, lambda d: setattr(d, "retries", 2))
    assert len(doc.outbox) == 1


def test_the_creation_event_is_recorded_once() -> None:
    doc = new_job()
    events.record_creation(doc)  # as jobs.create writes it
    edited = doc.copy_for_edit()
    events.record_change(doc, edited)  # a later write that changes no state
    assert [e.data.state for e in edited.outbox] == ["queued"]


def test_backoff_doubles_from_the_base_up_to_the_cap() -> None:
    settings = Settings(event_delivery_backoff_seconds=1, event_delivery_backoff_max_seconds=10)
    assert [event_delivery.backoff(settings, n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


def test_the_signature_is_the_hmac_sha256_of_the_body() -> None:
    body = b'{"id":"x"}'
    expected = hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert event_delivery.sign("k", body) == f"sha256={expected}"


@pytest.mark.parametrize(("rules", "experiment", "type_", "wanted"), [
    ({}, "e", "Microsoft.BatchAI.JobFailed", True),
    ({"experiments": ["E"]}, "e", "Microsoft.BatchAI.JobFailed", True),
    ({"experiments": ["other"]}, "e", "Microsoft.BatchAI.JobFailed", False),
    ({"eventTypes": ["Microsoft.BatchAI.JobSucceeded"]}, "e", "Microsoft.BatchAI.JobFailed", False),
    ({"experiments": [], "eventTypes": []}, "e", "Microsoft.BatchAI.JobQueued", True),
])
def test_filters(rules: dict[str, Any], experiment: str, type_: str, wanted: bool) -> None:
    assert event_delivery.matches(EventFilterPart.model_validate(rules), {"type": type_}, experiment) is wanted


@pytest.mark.parametrize(("properties", "target"), [
    ({}, "properties.destination"),
    ({"destination": {"endpointUrl": "ftp://x/"}}, "properties.destination.endpointUrl"),
    ({"destination": {"endpointUrl": "http://u:p@x/"}}, "properties.destination.endpointUrl"),
    ({"destination": {"endpointUrl": "http://x/"}, "filter": {"eventTypes": ["JobDone"]}},
     "properties.filter.eventTypes[0]"),
    ({"destination": {"endpointUrl": "http://x/"}, "filter": {"experiments": ["a b"]}},
     "properties.filter.experiments[0]"),
    ({"destination": {"endpointUrl": "http://x/"}, "secret": ""}, "properties.secret"),
    ({"destination": {"endpointUrl": "http://x/"}, "colour": "red"}, "properties.colour"),
])
def test_bad_subscriptions_name_the_field(properties: dict[str, Any], target: str) -> None:
    from shared.api.request import validation_error

    with pytest.raises(ValidationError) as caught:
        EventSubscriptionCreateParameters.model_validate({"properties": properties})
    assert validation_error(caught.value).target == target


def test_the_secret_is_never_dumped() -> None:
    params = EventSubscriptionCreateParameters.model_validate(
        {"properties": {"destination": {"endpointUrl": "https://x/hook"}, "secret": "s3cret"}})
    assert "s3cret" not in str(params.to_wire()) and "s3cret" not in repr(params)
