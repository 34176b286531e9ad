"""The local host's AMQP door: the azure-servicebus SDK reaches the embedded SQLite queues by a
connection string, as it would reach Azure Service Bus; only the door's queues, only with its key.

Most cases run a door in-process over a SqliteMessaging in tmp_path and check both sides: what the
SDK sends is read through the port, and what the port holds is read with the SDK. The last case
starts the real local host. Every SDK client is closed at the end of its block; every wait is bounded.
"""

from __future__ import annotations

import stat
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusReceiveMode, ServiceBusSubQueue
from azure.servicebus.exceptions import ServiceBusError

from shared import lanes
from shared.adapters.local.sqlite_messaging import SqliteMessaging
from shared.localhost.amqp.door import ServiceBusDoor
from shared.localhost.amqp.sas import SasAuthorizer, sign
from shared.localhost.process import start_local_host
from shared.ports.messaging import OutgoingMessage, ReceivedMessage
from tests.e2e.polling import wait_until

SUBMISSIONS, REPLIES = lanes.JOB_SUBMISSIONS_QUEUE, lanes.SUBMISSION_REPLIES_QUEUE
WAIT = 5.0  # the most any single wait may take (seconds)


@pytest.fixture
def messaging(tmp_path: Path) -> Iterator[SqliteMessaging]:
    adapter = SqliteMessaging(tmp_path / "messages.sqlite3")
    for queue, options in lanes.STATIC_QUEUES.items():
        adapter.create_queue(queue, options)
    yield adapter
    adapter.close()


@pytest.fixture
def door(messaging: SqliteMessaging, tmp_path: Path) -> Iterator[ServiceBusDoor]:
    with ServiceBusDoor(messaging, tmp_path) as opened:
        yield opened


def client(connection_string: str, **options: Any) -> ServiceBusClient:
    """A short-lived SDK client: few, quick retries, so a failure shows at once."""
    return ServiceBusClient.from_connection_string(connection_string, retry_total=options.pop("retry_total", 1),
                                                   retry_backoff_factor=0.1, **options)


def send(door: ServiceBusDoor, queue: str, *messages: ServiceBusMessage) -> None:
    with client(door.connection_string) as sb, sb.get_queue_sender(queue) as sender:
        sender.send_messages(list(messages), timeout=WAIT)


def received_through_port(messaging: SqliteMessaging, queue: str, count: int = 1) -> list[ReceivedMessage]:
    got: list[ReceivedMessage] = []
    deadline = time.monotonic() + WAIT
    while len(got) < count and time.monotonic() < deadline:
        got += messaging.receive(queue, count - len(got), max_wait=0.5)
    return got


def test_the_connection_string_is_written_for_the_owner_only_while_the_door_is_open(
        messaging: SqliteMessaging, tmp_path: Path) -> None:
    with ServiceBusDoor(messaging, tmp_path) as door:
        written = (tmp_path / "servicebus").read_text().strip()
        assert written == door.connection_string
        assert written.startswith(f"Endpoint=sb://127.0.0.1:{door.port};SharedAccessKeyName=local;SharedAccessKey=")
        assert written.endswith(";UseDevelopmentEmulator=true;")
        assert stat.S_IMODE((tmp_path / "servicebus").stat().st_mode) == 0o600
        key = door.connection_string.split("SharedAccessKey=")[1].split(";")[0]
    assert not (tmp_path / "servicebus").exists()
    with ServiceBusDoor(messaging, tmp_path) as again:  # the key is kept across starts
        assert f"SharedAccessKey={key};" in again.connection_string


def test_a_message_sent_with_the_sdk_reads_through_the_port_with_every_field(
        door: ServiceBusDoor, messaging: SqliteMessaging) -> None:
    send(door, SUBMISSIONS, ServiceBusMessage(
        b'{"job": 1}', message_id="request-1", correlation_id="corr-1", subject="create",
        reply_to=REPLIES, session_id="session-a", reply_to_session_id="session-b",
        application_properties={"text": "x", "count": 7, "ratio": 1.5, "flag": True}))
    [message] = received_through_port(messaging, SUBMISSIONS)
    assert message.body == b'{"job": 1}'
    assert message.message_id == "request-1"
    assert message.correlation_id == "corr-1"
    assert message.subject == "create"
    assert message.reply_to == REPLIES
    assert message.session_id == "session-a"
    assert message.reply_to_session_id == "session-b"
    assert message.application_properties == {"text": "x", "count": 7, "ratio": 1.5, "flag": True}
    assert message.delivery_count == 1


def test_a_text_body_arrives_as_utf8(door: ServiceBusDoor, messaging: SqliteMessaging) -> None:
    send(door, SUBMISSIONS, ServiceBusMessage("héllo", message_id="text-1"))
    [message] = received_through_port(messaging, SUBMISSIONS)
    assert message.body == "héllo".encode()


def test_sent_through_the_port_received_with_the_sdk_renewed_completed_and_gone(
        door: ServiceBusDoor, messaging: SqliteMessaging) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    messaging.send(REPLIES, [OutgoingMessage(b"reply", message_id="reply-1", correlation_id="request-1",
                                             subject="done", session_id="session-b",
                                             application_properties={"status": "Succeeded", "code": 201})])
    with client(door.connection_string) as sb, sb.get_queue_receiver(REPLIES, max_wait_time=WAIT) as receiver:
        [message] = receiver.receive_messages(max_message_count=1, max_wait_time=WAIT)
        assert b"".join(message.body) == b"reply"
        assert message.message_id == "reply-1"
        assert message.correlation_id == "request-1"
        assert message.subject == "done"
        assert message.session_id == "session-b"
        assert message.application_properties == {b"status": b"Succeeded", b"code": 201}
        assert message.sequence_number >= 1
        assert message.enqueued_time_utc is not None and message.enqueued_time_utc >= before
        assert message.locked_until_utc is not None and message.locked_until_utc > datetime.now(UTC)
        assert not message.delivery_count  # the AMQP header counts earlier attempts: none
        renewed = receiver.renew_message_lock(message, timeout=WAIT)
        assert renewed >= message.locked_until_utc - timedelta(seconds=1)
        receiver.complete_message(message)
    assert messaging.count(REPLIES) == 0
    assert messaging.peek(REPLIES, 10) == []


def test_an_abandoned_message_comes_again_with_its_delivery_counted(
        door: ServiceBusDoor, messaging: SqliteMessaging) -> None:
    messaging.send(REPLIES, [OutgoingMessage(b"again", message_id="again-1")])
    with client(door.connection_string) as sb, sb.get_queue_receiver(REPLIES, max_wait_time=WAIT) as receiver:
        [first] = receiver.receive_messages(max_message_count=1, max_wait_time=WAIT)
        receiver.abandon_message(first)
        [second] = receiver.receive_messages(max_message_count=1, max_wait_time=WAIT)
        assert second.message_id == "again-1"
        assert second.delivery_count == 1  # one earlier attempt: this is delivery 2
        [peeked] = messaging.peek(REPLIES, 1)
        assert peeked.delivery_count == 2
        receiver.complete_message(second)
    assert messaging.count(REPLIES) == 0


def test_receive_and_delete_takes_the_message(door: ServiceBusDoor, messaging: SqliteMessaging) -> None:
    messaging.send(REPLIES, [OutgoingMessage(b"once", message_id="once-1")])
    with client(door.connection_string) as sb, sb.get_queue_receiver(
            REPLIES, receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE, max_wait_time=WAIT) as receiver:
        [message] = receiver.receive_messages(max_message_count=1, max_wait_time=WAIT)
        assert b"".join(message.body) == b"once"
    assert messaging.count(REPLIES) == 0


def test_dead_lettered_through_the_port_read_from_the_dead_letter_queue_with_the_sdk(
        door: ServiceBusDoor, messaging: SqliteMessaging) -> None:
    messaging.send(SUBMISSIONS, [OutgoingMessage(b"bad", message_id="bad-1")])
    [locked] = messaging.receive(SUBMISSIONS, 1, max_wait=WAIT)
    messaging.dead_letter(SUBMISSIONS, locked, "InvalidRequest", "the body is not a job")
    with client(door.connection_string) as sb, sb.get_queue_receiver(
            SUBMISSIONS, sub_queue=ServiceBusSubQueue.DEAD_LETTER, max_wait_time=WAIT) as receiver:
        [message] = receiver.receive_messages(max_message_count=1, max_wait_time=WAIT)
        assert message.message_id == "bad-1"
        assert message.dead_letter_reason == "InvalidRequest"
        assert message.dead_letter_error_description == "the body is not a job"
        receiver.complete_message(message)
    assert messaging.count(SUBMISSIONS + "/$deadletterqueue") == 0


def test_a_batch_of_three_arrives_in_order(door: ServiceBusDoor, messaging: SqliteMessaging) -> None:
    with client(door.connection_string) as sb, sb.get_queue_sender(SUBMISSIONS) as sender:
        batch = sender.create_message_batch()
        for n in range(3):
            batch.add_message(ServiceBusMessage(f"item {n}".encode(), message_id=f"batch-{n}",
                                                application_properties={"n": n}))
        sender.send_messages(batch, timeout=WAIT)
    received = received_through_port(messaging, SUBMISSIONS, 3)
    assert [m.body for m in received] == [b"item 0", b"item 1", b"item 2"]
    assert [m.message_id for m in received] == ["batch-0", "batch-1", "batch-2"]
    assert [m.application_properties["n"] for m in received] == [0, 1, 2]


def test_a_duplicate_message_id_is_dropped(door: ServiceBusDoor, messaging: SqliteMessaging) -> None:
    send(door, SUBMISSIONS, ServiceBusMessage(b"first", message_id="request-7"))
    send(door, SUBMISSIONS, ServiceBusMessage(b"second", message_id="request-7"))
    assert messaging.count(SUBMISSIONS) == 1
    assert [m.body for m in messaging.peek(SUBMISSIONS, 10)] == [b"first"]


def test_peek_shows_messages_in_order_without_taking_them(door: ServiceBusDoor, messaging: SqliteMessaging) -> None:
    messaging.send(REPLIES, [OutgoingMessage(f"p{n}".encode(), message_id=f"peek-{n}") for n in range(3)])
    with client(door.connection_string) as sb, sb.get_queue_receiver(REPLIES) as receiver:
        first = receiver.peek_messages(max_message_count=2, timeout=WAIT)
        rest = receiver.peek_messages(max_message_count=5, timeout=WAIT)  # goes on after the last one seen
    assert [m.message_id for m in first] == ["peek-0", "peek-1"]
    assert [m.message_id for m in rest] == ["peek-2"]
    assert messaging.count(REPLIES) == 3


@pytest.mark.parametrize("queue", [lanes.CLUSTER_WORK_QUEUE, "no-such-queue"])
def test_queues_outside_the_door_cannot_be_reached(door: ServiceBusDoor, messaging: SqliteMessaging,
                                                   queue: str) -> None:
    with pytest.raises(ServiceBusError):
        with client(door.connection_string, retry_total=0) as sb, sb.get_queue_sender(queue) as sender:
            sender.send_messages(ServiceBusMessage(b"sneaky"), timeout=WAIT)
    with pytest.raises(ServiceBusError):
        with client(door.connection_string, retry_total=0) as sb, sb.get_queue_receiver(queue) as receiver:
            receiver.receive_messages(max_message_count=1, max_wait_time=1)
    assert messaging.count(lanes.CLUSTER_WORK_QUEUE) == 0


def test_a_wrong_key_cannot_send(door: ServiceBusDoor, messaging: SqliteMessaging) -> None:
    key = door.connection_string.split("SharedAccessKey=")[1].split(";")[0]
    wrong = door.connection_string.replace(f"SharedAccessKey={key};", "SharedAccessKey=not-the-key;")
    with pytest.raises(ServiceBusError):
        with client(wrong, retry_total=0) as sb, sb.get_queue_sender(SUBMISSIONS) as sender:
            sender.send_messages(ServiceBusMessage(b"intruder"), timeout=WAIT)
    assert messaging.count(SUBMISSIONS) == 0


def test_tokens_are_checked_for_key_name_expiry_and_resource() -> None:
    authorize = SasAuthorizer("secret", clock=lambda: 1_000)
    audience = "sb://127.0.0.1:5671/job-submissions"
    assert authorize(sign(audience, 2_000, "secret"), audience)
    assert authorize(sign("sb://127.0.0.1:5671", 2_000, "secret"), audience)  # the namespace covers its queues
    assert authorize(sign(audience, 2_000, "secret"), audience + "/$deadletterqueue")
    assert not authorize(sign(audience, 2_000, "other"), audience)
    assert not authorize(sign(audience, 999, "secret"), audience)  # expired
    assert not authorize(sign(audience, 2_000, "secret", key_name="RootManageSharedAccessKey"), audience)
    assert not authorize(sign("sb://127.0.0.1:5671/cluster-resizes", 2_000, "secret"), audience)
    assert not authorize(sign(audience, 2_000, "secret").replace("se=2000", "se=3000"), audience)
    assert not authorize("Bearer whatever", audience)


def test_the_local_host_opens_the_door(tmp_path: Path) -> None:
    data = tmp_path / "state"
    host = start_local_host(data)
    try:
        connection_string = host.servicebus_connection_string
        assert connection_string is not None, host.output[-20:]
        assert stat.S_IMODE((data / "servicebus").stat().st_mode) == 0o600
        port = connection_string.split("sb://127.0.0.1:")[1].split(";")[0]
        wait_until("the host to announce its door",  # its output is read as it comes
                   lambda: f"Service Bus door at sb://127.0.0.1:{port}" in host.output, timeout=10)
        with client(connection_string) as sb:
            with sb.get_queue_sender(REPLIES) as sender:
                sender.send_messages(ServiceBusMessage(b"hello door", message_id="host-1"), timeout=WAIT)
            with sb.get_queue_receiver(REPLIES, max_wait_time=WAIT) as receiver:
                [message] = receiver.receive_messages(max_message_count=1, max_wait_time=WAIT)
                assert (b"".join(message.body), message.message_id) == (b"hello door", "host-1")
                receiver.complete_message(message)
    finally:
        assert host.stop() == 0, host.output[-20:]
    assert host.servicebus_connection_string is None
    assert host.output[-1] == "Batch AI local host stopped"
