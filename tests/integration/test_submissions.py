"""Requests by queue message over the real embedded store and queues, fed by the local host's
queue pump running the real functions: validation, authorisation, idempotence, replies, events and
dead letters, decided in a second without processes (tests/e2e/test_submissions.py runs them on
the local host through its Service Bus door)."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared import events, lanes, submissions
from shared.api import role_assignments
from shared.auth import local_token
from shared.composition import Services, use_services
from shared.localhost.functions_index import IndexedFunction, index, load_app
from shared.localhost.queue_pump import QueuePump
from shared.ports.messaging import EntityOptions, OutgoingMessage, ReceivedMessage, dead_letter_path, subscription_path
from shared.ports.state_store import Query
from shared.resources import R
from shared.settings import Settings
from tests.e2e.polling import wait_until
from tests.integration.test_dispatch_and_scaling import RG, SUB, WS, call, make_cluster, make_services

JOBS, RESIZES, REPLIES = lanes.JOB_SUBMISSIONS_QUEUE, lanes.CLUSTER_RESIZES_QUEUE, "my-replies"
WATCH = "watch"  # a subscription of the job-events topic, to read what was announced
PATH = {"subscriptionId": SUB, "resourceGroupName": RG, "workspaceName": "ws", "experimentName": "e"}
CLUSTER_PATH = {"subscriptionId": SUB, "resourceGroupName": RG, "workspaceName": "ws", "clusterName": "c"}
PROPERTIES = {"cluster": {"id": f"{WS}/clusters/c"}, "nodeCount": 1, "stdOutErrPathPrefix": "/tmp",
              "customToolkitSettings": {"commandLine": "true"}}


@functools.cache
def door_functions() -> list[IndexedFunction]:
    """The two queue-triggered functions of the real app (an app can be indexed only once)."""
    return [f for f in index(load_app("function_app")) if f.name in ("JobSubmissions", "ClusterResizes")]


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Services]:
    local_token.ensure(Settings(data_dir=tmp_path).token_path)  # before the services read it
    services = make_services(tmp_path)
    services.messaging.create_queue(REPLIES, EntityOptions(duplicate_detection_window=None))
    services.messaging.create_topic(events.JOB_EVENTS_TOPIC, events.TOPIC_OPTIONS)
    services.messaging.create_subscription(events.JOB_EVENTS_TOPIC, WATCH)
    make_cluster(services, {"manual": {"targetNodeCount": 1}})
    use_services(services)  # what the functions' services() answers
    pump = QueuePump(services.messaging, door_functions(), concurrency=1, clock=services.clock)
    pump.start()
    yield services
    pump.stop()
    use_services(None)
    services.close()


def owner(svc: Services) -> dict[str, str]:
    return {submissions.AUTHORIZATION: f"Bearer {local_token.read(svc.settings.token_path)}"}


def envelope(job: str = "j", properties: Any = None, **more: Any) -> bytes:
    document = {"path": {**PATH, "jobName": job}, "body": {"properties": PROPERTIES if properties is None else properties}}
    return json.dumps(document | more).encode()


def send(svc: Services, body: bytes, message_id: str, queue: str = JOBS, props: dict[str, Any] | None = None,
         reply: bool = True, **fields: Any) -> None:
    svc.messaging.send(queue, [OutgoingMessage(body, message_id=message_id,
                                               application_properties=owner(svc) if props is None else props,
                                               reply_to=REPLIES if reply else None, **fields)])


def reply_to(svc: Services, correlation: str) -> dict[str, Any]:
    def found() -> ReceivedMessage | None:
        for message in svc.messaging.receive(REPLIES, 10, max_wait=0.05):
            svc.messaging.complete(REPLIES, message)
            if message.correlation_id == correlation:
                return message
        return None

    message = wait_until(f"the reply to {correlation}", found, timeout=10, every=0.01)
    return {"subject": message.subject, "session": message.session_id, **json.loads(message.body)}


def dead_letter(svc: Services, message_id: str, queue: str = JOBS) -> ReceivedMessage:
    def found() -> ReceivedMessage | None:
        return next((m for m in svc.messaging.peek(dead_letter_path(queue), 100) if m.message_id == message_id), None)

    return wait_until(f"{message_id} in the dead letters", found, timeout=10, every=0.01)


def announced(svc: Services) -> list[dict[str, Any]]:
    entity = subscription_path(events.JOB_EVENTS_TOPIC, WATCH)
    out = []
    for message in svc.messaging.receive(entity, 100):
        svc.messaging.complete(entity, message)
        out.append(json.loads(message.body))
    return out


def jobs_stored(svc: Services) -> list[str]:
    return sorted(d["id"] for d in svc.store.query(R, Query(where={"kind": "job"})))


def test_a_job_by_message_is_made_announced_and_answered(svc: Services) -> None:
    send(svc, envelope("by-message"), "m-1", correlation_id="corr-1", reply_to_session_id="caller-7")
    reply = reply_to(svc, "corr-1")
    assert reply["status"] == 200 and reply["messageId"] == "m-1"
    assert reply["subject"] == "Microsoft.BatchAI.JobSubmissionAccepted" and reply["session"] == "caller-7"
    assert reply["resource"]["properties"]["executionState"] == "queued"
    assert reply["id"].endswith("/experiments/e/jobs/by-message")
    job = svc.store.read(R, SUB, f"job|{RG}|ws|e|by-message")
    assert job is not None and job["submissionId"] == "m-1"
    types = {e["type"]: e for e in announced(svc)}
    assert types["Microsoft.BatchAI.JobSubmissionAccepted"]["data"]["correlationId"] == "corr-1"
    assert types["Microsoft.BatchAI.JobSubmissionAccepted"]["source"] == reply["id"]
    assert "Microsoft.BatchAI.JobQueued" in types
    assert svc.messaging.count(dead_letter_path(JOBS)) == 0


def test_the_same_message_twice_makes_one_job(svc: Services) -> None:
    send(svc, envelope("once"), "m-2", correlation_id="first")
    reply_to(svc, "first")
    send(svc, envelope("once"), "m-2", correlation_id="second")  # a resend: the queue drops it
    message = submissions.RequestMessage(envelope("once"), "m-2", owner(svc))  # a redelivery after a crash
    again = submissions.handle(svc, submissions.JOB_SUBMISSIONS, message)
    assert again.status == 200
    job = svc.store.read(R, SUB, f"job|{RG}|ws|e|once")
    assert job is not None and job["eventSeq"] == 1, "made once, queued once"
    assert jobs_stored(svc) == [f"job|{RG}|ws|e|once"]
    accepted = [e for e in announced(svc) if e["type"] == "Microsoft.BatchAI.JobSubmissionAccepted"]
    assert len({e["id"] for e in accepted}) == 1, "announced again with the same event id"


def bad_job_messages(path: dict[str, str], cluster_id: str, limit: int) -> dict[str, tuple[bytes, Any, str, str]]:
    """Kinds of bad job message: (body, application properties — None: the owner's token —, the
    dead-letter reason, what its description names). `path` names an existing experiment."""
    properties = {**PROPERTIES, "cluster": {"id": cluster_id}}

    def job(name: str = "j", props: Any = properties, **more: Any) -> bytes:
        return json.dumps({"path": {**path, "jobName": name}, "body": {"properties": props}} | more).encode()

    padding = [{"name": "X", "value": "x" * limit}]
    return {
        "not JSON": (b"run my job please", None, "MessageNotJson", "not JSON"),
        "not UTF-8": (b"\xff\xfe\x00", None, "MessageNotJson", "not JSON"),
        "a JSON list": (b"[1, 2]", None, "InvalidMessage", "JSON list"),
        "too large": (job("big", properties | {"environmentVariables": padding}), None, "MessageTooLarge", "bytes"),
        "an unknown envelope field": (job(priority="high"), None, "InvalidMessage", "'priority'"),
        "no jobName": (json.dumps({"path": path, "body": {"properties": properties}}).encode(), None,
                       "InvalidMessage", "path.jobName"),
        "a path part not a string": (json.dumps({"path": {**path, "jobName": 7}, "body": {}}).encode(), None,
                                     "InvalidMessage", "path.jobName"),
        "no body": (json.dumps({"path": {**path, "jobName": "j"}}).encode(), None, "InvalidMessage", "'body'"),
        "a job name the API refuses": (job("no/slashes"), None, "InvalidParameter", "jobName"),
        "an unknown property": (job(props=properties | {"nodeCountt": 2}), None, "InvalidRequestContent",
                                "properties.nodeCountt"),
        "a missing cluster": (job(props={k: v for k, v in properties.items() if k != "cluster"}), None,
                              "InvalidRequestContent", "properties.cluster"),
        "a wrongly typed node count": (job(props=properties | {"nodeCount": "two"}), None, "InvalidRequestContent",
                                       "properties.nodeCount"),
        "properties not an object": (job(props=3), None, "InvalidRequestContent", "properties"),
        "a cluster that does not exist": (job(props=properties | {"cluster": {"id": cluster_id + "-nope"}}), None,
                                          "InvalidParameter", "-nope'"),
        "an experiment that does not exist": (json.dumps({"path": {**path, "experimentName": "nope", "jobName": "j"},
                                                          "body": {"properties": properties}}).encode(), None,
                                              "ResourceNotFound", "nope"),
        "an API version the service does not speak": (job(apiVersion="2017-09-01-preview"), None,
                                                      "InvalidApiVersionParameter", "2017-09-01-preview"),
        "a workspace the sender may not use": (job(), {}, "AuthorizationFailed", "servicebus:job-submissions"),
        "a credential that is not valid": (job(), {submissions.AUTHORIZATION: "Bearer forged"},
                                           "AuthenticationFailed", ""),
    }


BAD = bad_job_messages(PATH, f"{WS}/clusters/c", Settings().max_request_bytes)


@pytest.mark.parametrize("kind", list(BAD))
def test_a_bad_job_message_is_dead_lettered_at_once_and_answered_with_its_cloud_error(svc: Services,
                                                                                    kind: str) -> None:
    body, props, reason, named = BAD[kind]
    cluster_before = svc.store.read(R, SUB, f"cluster|{RG}|ws|c")["spec"]
    send(svc, body, f"bad-{kind}", props=props, correlation_id=kind)
    letter = dead_letter(svc, f"bad-{kind}")
    assert letter.dead_letter_reason == reason, letter.dead_letter_description
    assert named in (letter.dead_letter_description or "")
    assert letter.delivery_count == 1, "never retried"
    reply = reply_to(svc, kind)
    assert reply["status"] in (400, 401, 403, 404, 413) and reply["error"]["code"] == reason
    assert reply["subject"] == "Microsoft.BatchAI.JobSubmissionRejected"
    [event] = [e for e in announced(svc) if e["type"] == "Microsoft.BatchAI.JobSubmissionRejected"]
    assert event["data"]["error"]["code"] == reason and event["data"]["messageId"] == f"bad-{kind}"
    assert "forged" not in json.dumps(event) + json.dumps(reply) + (letter.dead_letter_description or "")
    assert jobs_stored(svc) == [], "nothing else changes"
    assert svc.store.read(R, SUB, f"cluster|{RG}|ws|c")["spec"] == cluster_before


def test_a_job_that_exists_with_another_spec_is_a_conflict(svc: Services) -> None:
    send(svc, envelope("taken"), "first", correlation_id="first")
    reply_to(svc, "first")
    send(svc, envelope("taken", PROPERTIES | {"nodeCount": 1, "jobPreparation": {"commandLine": "true"}}),
         "second", correlation_id="second")
    assert dead_letter(svc, "second").dead_letter_reason == "Conflict"
    assert reply_to(svc, "second")["status"] == 409


def test_the_queue_principal_uses_the_workspaces_it_was_granted(svc: Services) -> None:
    call(role_assignments.create_in_workspace, svc, {"roleAssignmentName": "queue"}, {"properties": {
        "principalId": "servicebus:job-submissions", "role": "contributor"}})
    send(svc, envelope("granted"), "granted", props={}, correlation_id="granted")
    assert reply_to(svc, "granted")["status"] == 200


def test_a_cluster_resize_by_message_changes_the_scale_settings(svc: Services) -> None:
    resize = {"path": CLUSTER_PATH, "body": {"properties": {"scaleSettings": {"manual": {"targetNodeCount": 2}}}}}
    send(svc, json.dumps(resize).encode(), "grow", queue=RESIZES, correlation_id="grow")
    reply = reply_to(svc, "grow")
    assert reply["status"] == 200 and reply["subject"] == "Microsoft.BatchAI.ClusterResizeAccepted"
    spec = svc.store.read(R, SUB, f"cluster|{RG}|ws|c")["spec"]
    assert spec["scaleSettings"]["manual"]["targetNodeCount"] == 2
    assert any(e["type"] == "Microsoft.BatchAI.ClusterResizeAccepted" and e["subject"] == "clusters/c"
               for e in announced(svc))


@pytest.mark.parametrize("kind, body, reason, named", [
    ("no scaleSettings", {"path": CLUSTER_PATH, "body": {"properties": {}}}, "InvalidMessage", "scaleSettings"),
    ("a job path", {"path": {**PATH, "jobName": "j"}, "body": {"properties": {"scaleSettings": {}}}},
     "InvalidMessage", "path.clusterName"),
    ("more nodes than the local pool runs", {"path": CLUSTER_PATH, "body": {"properties": {
        "scaleSettings": {"manual": {"targetNodeCount": 65}}}}}, "InvalidParameter", "targetNodeCount"),
    ("a cluster that does not exist", {"path": {**CLUSTER_PATH, "clusterName": "nope"}, "body": {"properties": {
        "scaleSettings": {"manual": {"targetNodeCount": 1}}}}}, "ResourceNotFound", "nope"),
])
def test_a_bad_resize_is_dead_lettered_and_changes_nothing(svc: Services, kind: str, body: dict[str, Any],
                                                           reason: str, named: str) -> None:
    before = svc.store.read(R, SUB, f"cluster|{RG}|ws|c")["spec"]
    send(svc, json.dumps(body).encode(), kind, queue=RESIZES, correlation_id=kind)
    letter = dead_letter(svc, kind, RESIZES)
    assert letter.dead_letter_reason == reason and named in (letter.dead_letter_description or "")
    assert reply_to(svc, kind)["subject"] == "Microsoft.BatchAI.ClusterResizeRejected"
    assert svc.store.read(R, SUB, f"cluster|{RG}|ws|c")["spec"] == before


def test_under_a_functions_host_a_refused_request_raises_and_its_redeliveries_announce_it_once(
        svc: Services) -> None:
    """A Functions host abandons the message of a function that raised and retries it until Service
    Bus dead-letters it (MaxDeliveryCountExceeded): the function settles nothing itself, and each
    redelivery announces the same outcome under the same ids, which the topic and the replies queue
    (both with duplicate detection) drop."""
    from azure.functions.servicebus import ServiceBusMessage as TriggerMessage

    from functions.submissions import job_submission
    from shared.ports.messaging import PoisonMessage

    replies = "deduplicated-replies"
    svc.messaging.create_queue(replies, lanes.REPLY_OPTIONS)
    for delivery in (1, 2, 3):
        trigger = TriggerMessage(body=b"not json", message_id="refused-on-azure", correlation_id="c-9",
                                 reply_to=replies, delivery_count=delivery, application_properties=owner(svc),
                                 user_properties={})
        with pytest.raises(PoisonMessage) as refused:
            job_submission(trigger)
        assert refused.value.reason == "MessageNotJson"
    rejected = [e for e in announced(svc) if e["type"] == "Microsoft.BatchAI.JobSubmissionRejected"]
    assert len(rejected) == 1 and rejected[0]["data"]["error"]["code"] == "MessageNotJson"
    got = svc.messaging.receive(replies, 10, max_wait=0.1)
    assert [m.correlation_id for m in got] == ["c-9"]
    assert json.loads(got[0].body)["error"]["code"] == "MessageNotJson"
    assert jobs_stored(svc) == []