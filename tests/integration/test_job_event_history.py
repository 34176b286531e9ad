"""GET .../jobs/{job}/events (shared/api/job_events.py): the job's CloudEvents in order, kept after
they were published, and never part of the job's own GET answer."""

from __future__ import annotations

import json

import pytest

from shared import events, lanes
from shared.api import job_events
from shared.models.job_event import JobEvent
from shared.api.generic import get_resource
from shared.api.request import ApiRequest
from shared.composition import Services
from shared.errors import ResourceNotFound
from shared.ids import JOB
from tests.integration.test_dispatch_and_scaling import Q, ROUTE, dispatch, finish, job, make_cluster, submit, svc

__all__ = ["svc"]


def get(handler, svc: Services, name: str, **query: str):  # type: ignore[no-untyped-def]
    req = ApiRequest("GET", "http://h/x", route={**ROUTE, "experimentName": "e", "jobName": name},
                     query={**Q, **query})
    return handler(svc, req)


def test_a_jobs_events_are_served_in_order_after_they_were_sent_and_not_in_the_job(svc: Services) -> None:
    for topic, (options, subscriptions) in lanes.STATIC_TOPICS.items():  # so that the outbox is sent and emptied
        svc.messaging.create_topic(topic, options)
        for name, sub_options in subscriptions.items():
            svc.messaging.create_subscription(topic, name, sub_options)
    make_cluster(svc, {"manual": {"targetNodeCount": 1}})
    submit(svc, "j")
    dispatch(svc)
    finish(svc, "j", exit_code=0)
    assert "outbox" not in job(svc, "j") and events.HISTORY in job(svc, "j")

    answer = get(job_events.list_events, svc, "j")
    assert answer.status == 200 and "nextLink" not in answer.body
    listed = answer.body["value"]
    assert [(e["data"]["previousState"], e["data"]["state"]) for e in listed] == [
        (None, "queued"), ("queued", "running"), ("running", "succeeded")]
    assert [e["sequence"] for e in listed] == ["1", "2", "3"]
    assert all(e["source"] == job(svc, "j")["resource"]["id"] for e in listed)
    assert [e["data"]["state"] for e in get(job_events.list_events, svc, "j", maxresults="2").body["value"]] == [
        "queued", "running"]
    JobEvent.model_validate(listed[-1], strict=False)  # what the OpenAPI document says it answers

    shown = get(lambda s, r: get_resource(JOB, s, r), svc, "j").body
    assert shown["properties"]["executionState"] == "succeeded"
    assert "eventHistory" not in json.dumps(shown) and "specversion" not in json.dumps(shown)


def test_the_events_of_a_job_that_does_not_exist_are_a_404(svc: Services) -> None:
    with pytest.raises(ResourceNotFound, match="'nope' was not found"):  # a 404 CloudError
        get(job_events.list_events, svc, "nope")
