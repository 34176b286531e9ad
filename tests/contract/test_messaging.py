"""The Messaging contract: one body per case, run against every adapter (SQLite and Service Bus).

Both adapters must behave alike so the host's triggers and the core work the same locally and on
Azure. The Service Bus adapter runs against a real broker with the real clock, so every case here
uses real time with short durations (locks of 1-2 s, schedules 1-1.5 s ahead) and bounds every wait;
cases that need a controllable clock belong to the adapter's own tests.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.ports.messaging import (
    EntityNotFound,
    EntityOptions,
    LockLost,
    Messaging,
    OutgoingMessage,
    ReceivedMessage,
    dead_letter_path,
    subscription_path,
)

MAX_DELIVERY_REASON = "MaxDeliveryCountExceeded"
SHORT_LOCK = EntityOptions(lock_duration=timedelta(seconds=1))
NO_DEDUP = EntityOptions(duplicate_detection_window=None)
WAIT = 4.0  # the most any single wait in a case may take (seconds)


@pytest.fixture(params=["sqlite", pytest.param("servicebus", marks=pytest.mark.servicebus)])
def messaging(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Messaging]:
    """A messaging adapter of each kind; the Service Bus one is owned by its own fixture."""
    if request.param == "sqlite":
        from shared.adapters.local.sqlite_messaging import SqliteMessaging

        adapter = SqliteMessaging(tmp_path / "bus" / "messaging.db")  # "bus/" does not exist yet
        yield adapter
        adapter.close()
    else:
        yield request.getfixturevalue("servicebus_messaging")


class Entities:
    """Makes entities with unique names (cases never see each other's) and deletes them afterwards."""

    def __init__(self, messaging: Messaging) -> None:
        self.messaging = messaging
        self.queues: list[str] = []
        self.topics: list[str] = []

    def queue(self, options: EntityOptions = EntityOptions()) -> str:
        name = unique("q")
        self.messaging.create_queue(name, options)
        self.queues.append(name)
        return name

    def topic(self, options: EntityOptions = EntityOptions()) -> str:
        name = unique("t")
        self.messaging.create_topic(name, options)
        self.topics.append(name)
        return name

    def subscription(self, topic: str, options: EntityOptions = EntityOptions()) -> str:
        name = unique("s")
        self.messaging.create_subscription(topic, name, options)
        return subscription_path(topic, name)

    def delete_all(self) -> None:
        for name in self.queues:
            self.messaging.delete_queue(name)
        for name in self.topics:
            self.messaging.delete_topic(name)


@pytest.fixture
def entities(messaging: Messaging) -> Iterator[Entities]:
    made = Entities(messaging)
    yield made
    made.delete_all()


# -- helpers: real time, bounded waits ------------------------------------------------------------


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def msg(body: bytes | str, **fields: object) -> OutgoingMessage:
    return OutgoingMessage(body=body.encode() if isinstance(body, str) else body, **fields)  # type: ignore[arg-type]


def receive_one(m: Messaging, entity: str, timeout: float = WAIT) -> ReceivedMessage:
    """The next message, waiting at most `timeout` seconds for one to become available."""
    got = m.receive(entity, max_messages=1, max_wait=timeout)
    assert got, f"nothing arrived on {entity} within {timeout} s"
    return got[0]


def receive_n(m: Messaging, entity: str, n: int, timeout: float = WAIT) -> list[ReceivedMessage]:
    """Exactly n messages, in the order received; an adapter may hand them over in several batches."""
    deadline = time.monotonic() + timeout
    out: list[ReceivedMessage] = []
    while len(out) < n:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"only {len(out)} of {n} messages arrived on {entity} within {timeout} s"
        out += m.receive(entity, max_messages=n - len(out), max_wait=remaining)
    return out


def eventually(check: Callable[[], bool], timeout: float = WAIT) -> None:
    """Wait until check() holds; brokers may apply a settlement a moment after acknowledging it."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def nothing_available(m: Messaging, entity: str, wait: float = 0.3) -> bool:
    return m.receive(entity, max_messages=10, max_wait=wait) == []


def utcnow() -> datetime:
    return datetime.now(UTC)


# -- entities -------------------------------------------------------------------------------------


def test_queue_create_exists_delete_are_idempotent(messaging: Messaging) -> None:
    name = unique("q")
    assert not messaging.entity_exists(name)
    messaging.create_queue(name)
    messaging.create_queue(name)
    assert messaging.entity_exists(name)
    messaging.delete_queue(name)
    messaging.delete_queue(name)
    assert not messaging.entity_exists(name)


def test_deleting_a_queue_deletes_its_messages(messaging: Messaging, entities: Entities) -> None:
    q = entities.queue()
    messaging.send(q, [msg("a")])
    messaging.delete_queue(q)
    messaging.create_queue(q)
    assert messaging.count(q) == 0
    assert nothing_available(messaging, q)


def test_creating_an_existing_queue_keeps_its_settings(messaging: Messaging, entities: Entities) -> None:
    q = entities.queue(SHORT_LOCK)
    messaging.create_queue(q, EntityOptions(lock_duration=timedelta(seconds=60)))
    messaging.send(q, [msg("a")])
    received = receive_one(messaging, q)
    assert received.locked_until is not None
    assert received.locked_until - utcnow() < timedelta(seconds=10)


def test_topic_and_subscription_create_exists_delete(messaging: Messaging) -> None:
    topic, sub = unique("t"), unique("s")
    messaging.create_topic(topic)
    messaging.create_topic(topic)
    messaging.create_subscription(topic, sub)
    messaging.create_subscription(topic, sub)
    assert messaging.entity_exists(topic)
    assert messaging.entity_exists(subscription_path(topic, sub))
    messaging.delete_subscription(topic, sub)
    messaging.delete_subscription(topic, sub)
    assert not messaging.entity_exists(subscription_path(topic, sub))
    assert messaging.entity_exists(topic)
    messaging.delete_topic(topic)
    messaging.delete_topic(topic)
    assert not messaging.entity_exists(topic)


def test_deleting_a_topic_deletes_its_subscriptions(messaging: Messaging) -> None:
    topic, sub = unique("t"), unique("s")
    messaging.create_topic(topic)
    messaging.create_subscription(topic, sub)
    messaging.delete_topic(topic)
    assert not messaging.entity_exists(subscription_path(topic, sub))
    messaging.create_topic(topic)
    try:
        assert not messaging.entity_exists(subscription_path(topic, sub))
    finally:
        messaging.delete_topic(topic)


# -- send, receive, peek ----------------------------------------------------------------------------


def test_messages_come_back_in_fifo_order(messaging: Messaging, entities: Entities) -> None:
    q = entities.queue(NO_DEDUP)
    messaging.send(q, [msg(f"m{i}") for i in range(5)])
    for i in range(5, 10):
        messaging.send(q, [msg(f"m{i}")])
    received = receive_n(messaging, q, 10)
    assert [r.body for r in received] == [f"m{i}".encode() for i in range(10)]
    numbers = [r.sequence_number for r in received]
    assert numbers == sorted(numbers) and len(set(numbers)) == 10


def test_an_integer_property_wider_than_32_bits_is_refused_before_sending() -> None:
    """azure-servicebus's public API sends a Python int as an AMQP 32-bit int: a wider one would fail
    only on Azure, so the port refuses it for every adapter (send it as text)."""
    with pytest.raises(ValueError, match="32 bits"):
        OutgoingMessage(b"x", application_properties={"big": 2**40})


def test_body_and_every_property_round_trip(messaging: Messaging, entities: Entities) -> None:
    q = entities.queue(EntityOptions(lock_duration=timedelta(seconds=5)))
    body = bytes(range(256))  # not valid UTF-8
    props = {"text": "héllo", "empty": "", "int": 42, "negative": -(2**31), "big": 2**31 - 1, "float": 1.25,
             "true": True, "false": False}
    before = utcnow()
    messaging.send(q, [OutgoingMessage(body=body, message_id="id-1", application_properties=props,
                                       correlation_id="corr-1", subject="job.started", reply_to="replies",
                                       session_id="s-1", reply_to_session_id="back-7")])
    received = receive_one(messaging, q)
    after = utcnow()
    assert received.body == body
    assert received.message_id == "id-1"
    assert received.correlation_id == "corr-1"
    assert received.subject == "job.started"
    assert received.reply_to == "replies"
    assert (received.session_id, received.reply_to_session_id) == ("s-1", "back-7")
    assert received.delivery_count == 1
    assert received.lock_token
    assert received.dead_letter_reason is None
    for key, value in props.items():
        assert received.application_properties[key] == value
        assert type(received.application_properties[key]) is type(value), key
    skew = timedelta(seconds=5)
    assert received.enqueued_time.tzinfo is not None
    assert before - skew <= received.enqueued_time <= after + skew
    assert received.locked_until is not None
    assert before + timedelta(seconds=2) < received.locked_until < after + timedelta(seconds=8)


def test_message_ids_are_made_when_not_given(messaging: Messaging, entities: Entities) -> None:
    q = entities.queue()
    messaging.send(q, [msg("a"), msg("b")])
    received = receive_n(messaging, q, 2)
    assert all(r.message_id for r in received)
    assert received[0].message_id != received[1].message_id


def test_sequence_numbers_increase_per_entity(messaging: Messaging, entities: Entities) -> None:
    q = entities.queue()
    for i in range(3):
        messaging.send(q, [msg(str(i))])
    numbers = [r.sequence_number for r in receive_n(messaging, q, 3)]
    assert numbers[0] < numbers[1] < numbers[2]


def test_peek_neither_locks_nor_counts_a_delivery(messaging: Messaging, entities: Entities) -> None:
    q = entities.queue()
    messaging.send(q, [msg("a", message_id="a")])
    for _ in range(2):
        peeked = messaging.peek(q)
        assert [p.message_id for p in peeked] == ["a"]
        assert peeked[0].lock_token == ""
        assert peeked[0].body == b"a"
    received = receive_one(messaging, q, timeout=1)  # not locked by the peeks
    assert received.delivery_count == 1


def test_peek_shows_locked_and_scheduled_messages_in_order(messaging: Messaging, entities: Entities) -> None:
    q = entities.queue()
    messaging.send(q, [msg("locked", message_id="locked")])
    receive_one(messaging, q)
    messaging.send(q, [msg("later", message_id="later", scheduled_enqueue_time=utcnow() + timedelta(minutes=5))])
    messaging.send(q, [msg("ready", message_id="ready")])
    assert [p.message_id for p in messaging.peek(q, max_messages=10)] == ["locked", "later", "ready"]
    assert [p.message_id for p in messaging.peek(q, max_messages=2)] == ["locked", "later"]


def test_receive_of_an_empty_queue_returns_nothing(messaging: Messaging, entities: Entities) -> None:
    q = entities.queue()
    started = time.monotonic()
    assert messaging.receive(q) == []
    assert messaging.receive(q, max_messages=5, max_wait=0.3) == []
    assert time.monotonic() - started < 2


def test_receive_waits_for_a_message_sent_by_another_thread(messaging: Messaging, entities: Entities) -> None:
    q = entities.queue()
    sender = threading.Timer(0.3, lambda: messaging.send(q, [msg("late")]))
    started = time.monotonic()
    sender.start()
    try:
        got = messaging.receive(q, max_messages=10, max_wait=WAIT)
    finally:
        sender.join()
    elapsed = time.monotonic() - started
    assert [r.body for r in got] == [b"late"]
    assert 0.25 <= elapsed < 2.0  # returned when the message came, not at max_wait


# -- settlement -------------------------------------------------------------------------------------


def test_complete_removes_the_message(messaging: Messaging, entities: Entities) -> None:
    q = entities.queue()
    messaging.send(q, [msg("a")])
    messaging.complete(q, receive_one(messaging, q))
    eventually(lambda: messaging.count(q) == 0)
    assert messaging.peek(q) == []
    assert nothing_available(messaging, q)


def test_complete_all_removes_them_and_names_those_whose_lock_was_lost(messaging: Messaging,
                                                                        entities: Entities) -> None:
    q = entities.queue()
    messaging.send(q, [msg(str(n), message_id=f"m{n}") for n in range(3)])
    first, second, third = receive_n(messaging, q, 3)
    messaging.complete(q, second)  # settled already: its lock is gone
    lost = messaging.complete_all(q, [first, second, third])
    assert [m.message_id for m in lost] == ["m1"]
    eventually(lambda: messaging.count(q) == 0)
    assert messaging.complete_all(q, []) == []


def test_send_each_sends_every_batch_to_its_own_entity(messaging: Messaging, entities: Entities) -> None:
    q, topic = entities.queue(), entities.topic()
    sub = entities.subscription(topic)
    messaging.send_each([(topic, [msg("event", message_id="ev-1")]), (q, [msg("a"), msg("b")])])
    assert [m.body for m in receive_n(messaging, q, 2)] == [b"a", b"b"]
    assert receive_one(messaging, sub).message_id == "ev-1"
    with pytest.raises(EntityNotFound):
        messaging.send_each([(unique("missing"), [msg("x")])])


def test_abandon_redelivers_with_a_higher_delivery_count(messaging: Messaging, entities: Entities) -> None:
    q = entities.queue()
    messaging.send(q, [msg("a", message_id="a")])
    first = receive_one(messaging, q)
    messaging.abandon(q, first)
    second = receive_one(messaging, q)
    assert (second.message_id, second.sequence_number, second.body) == ("a", first.sequence_number, b"a")
    assert second.delivery_count == first.delivery_count + 1 == 2
    assert second.lock_token


def test_an_expired_lock_redelivers(messaging: Messaging, entities: Entities) -> None:
    q = entities.queue(SHORT_LOCK)
    messaging.send(q, [msg("a", message_id="a")])
    first = receive_one(messaging, q)
    assert messaging.receive(q) == []  # locked
    started = time.monotonic()
    second = receive_one(messaging, q)
    assert time.monotonic() - started > 0.5
    assert second.message_id == "a" and second.delivery_count == 2
    with pytest.raises(LockLost):
        messaging.complete(q, first)
    messaging.complete(q, second)
    eventually(lambda: messaging.count(q) == 0)


def test_renew_lock_extends_it(messaging: Messaging, entities: Entities) -> None:
    q = entities.queue(EntityOptions(lock_duration=timedelta(seconds=2)))
    messaging.send(q, [msg("a")])
    received = receive_one(messaging, q)
    assert received.locked_until is not None
    time.sleep(1.0)
    renewed = messaging.renew_lock(q, received)
    assert renewed > received.locked_until
    time.sleep(1.5)  # past the original lock, within the renewed one
    assert messaging.receive(q) == []
    messaging.complete(q, received)


def test_abandoning_past_max_delivery_count_dead_letters(messaging: Messaging, entities: Entities) -> None:
    q = entities.queue(EntityOptions(max_delivery_count=2))
    messaging.send(q, [msg("poison", message_id="poison")])
    for attempt in (1, 2):
        received = receive_one(messaging, q)
        assert received.delivery_count == attempt
        messaging.abandon(q, received)
    dead = receive_one(messaging, dead_letter_path(q))
    assert dead.message_id == "poison" and dead.body == b"poison"
    assert dead.dead_letter_reason == MAX_DELIVERY_REASON
    assert dead.application_properties["DeadLetterReason"] == MAX_DELIVERY_REASON
    eventually(lambda: messaging.count(q) == 0)
    assert nothing_available(messaging, q)


def test_a_lock_expiring_at_max_delivery_count_dead_letters(messaging: Messaging, entities: Entities) -> None:
    q = entities.queue(EntityOptions(lock_duration=timedelta(seconds=1), max_delivery_count=1))
    messaging.send(q, [msg("slow", message_id="slow")])
    receive_one(messaging, q)  # and never settled
    dead = receive_one(messaging, dead_letter_path(q))
    assert dead.message_id == "slow"
    assert dead.dead_letter_reason == MAX_DELIVERY_REASON
    assert messaging.count(q) == 0


def test_dead_letter_keeps_reason_description_and_message(messaging: Messaging, entities: Entities) -> None:
    q = entities.queue()
    messaging.send(q, [msg("bad", message_id="bad", application_properties={"kind": "job"}, subject="s")])
    messaging.dead_letter(q, receive_one(messaging, q), reason="MalformedMessage", description="no jobId field")
    eventually(lambda: messaging.count(q) == 0)
    dlq = dead_letter_path(q)
    assert [p.message_id for p in messaging.peek(dlq)] == ["bad"]
    dead = receive_one(messaging, dlq)
    assert (dead.body, dead.message_id, dead.subject) == (b"bad", "bad", "s")
    assert dead.dead_letter_reason == "MalformedMessage"
    assert dead.dead_letter_description == "no jobId field"
    assert dead.application_properties["DeadLetterReason"] == "MalformedMessage"
    assert dead.application_properties["DeadLetterErrorDescription"] == "no jobId field"
    assert dead.application_properties["kind"] == "job"
    messaging.complete(dlq, dead)
    eventually(lambda: messaging.count(dlq) == 0)
    assert messaging.peek(dlq) == []


def test_a_subscription_has_its_own_dead_letter_queue(messaging: Messaging, entities: Entities) -> None:
    topic = entities.topic()
    sub = entities.subscription(topic)
    messaging.send(topic, [msg("e", message_id="e")])
    messaging.dead_letter(sub, receive_one(messaging, sub), reason="Unwanted")
    dead = receive_one(messaging, dead_letter_path(sub))
    assert (dead.message_id, dead.dead_letter_reason) == ("e", "Unwanted")


# -- scheduling, duplicates, topics, counts --------------------------------------------------------


def test_a_scheduled_message_is_invisible_until_its_time(messaging: Messaging, entities: Entities) -> None:
    q = entities.queue()
    at = utcnow() + timedelta(seconds=1.5)
    messaging.send(q, [msg("later", message_id="later", scheduled_enqueue_time=at)])
    assert messaging.receive(q) == []
    assert messaging.count(q) == 1
    received = receive_one(messaging, q)
    assert received.message_id == "later"
    assert utcnow() >= at - timedelta(seconds=0.3)


def test_duplicate_detection_drops_a_resend(messaging: Messaging, entities: Entities) -> None:
    q = entities.queue()
    messaging.send(q, [msg("first", message_id="same")])
    messaging.send(q, [msg("resent", message_id="same")])
    messaging.send(q, [msg("other", message_id="other")])
    received = receive_n(messaging, q, 2)
    assert [r.body for r in received] == [b"first", b"other"]
    assert nothing_available(messaging, q)


def test_long_message_ids_are_bounded_and_still_deduplicated(messaging: Messaging, entities: Entities) -> None:
    """Service Bus refuses ids over 128 characters: a long id (a job key and its attempt, say) is hashed
    to a stable one, so that it is sent at all and a resend is still dropped."""
    q = entities.queue()
    long_id = "job|" + "r" * 90 + "|ws|" + "e" * 64 + "|" + "j" * 64 + "#1"
    messaging.send(q, [msg("first", message_id=long_id)])
    messaging.send(q, [msg("resent", message_id=long_id)])
    messaging.send(q, [msg("other", message_id=long_id[:-1] + "2")])
    received = receive_n(messaging, q, 2)
    assert [r.body for r in received] == [b"first", b"other"]
    assert all(len(r.message_id) <= 128 for r in received)
    assert received[0].message_id != received[1].message_id
    assert received[0].message_id.startswith("job|rrr")


def test_without_duplicate_detection_a_resend_is_kept(messaging: Messaging, entities: Entities) -> None:
    q = entities.queue(NO_DEDUP)
    messaging.send(q, [msg("first", message_id="same")])
    messaging.send(q, [msg("resent", message_id="same")])
    assert [r.body for r in receive_n(messaging, q, 2)] == [b"first", b"resent"]


def test_a_topic_copies_each_message_to_every_subscription(messaging: Messaging, entities: Entities) -> None:
    topic = entities.topic()
    one, two = entities.subscription(topic), entities.subscription(topic)
    messaging.send(topic, [msg("event", message_id="ev-1", application_properties={"n": 1})])
    messaging.send(topic, [msg("event again", message_id="ev-1")])  # a duplicate at the topic
    late = entities.subscription(topic)
    for sub in (one, two):
        received = receive_one(messaging, sub)
        assert (received.body, received.message_id) == (b"event", "ev-1")
        assert received.application_properties["n"] == 1
        messaging.complete(sub, received)
        assert nothing_available(messaging, sub)
    assert messaging.count(late) == 0
    assert nothing_available(messaging, late)
    messaging.send(topic, [msg("next", message_id="ev-2")])
    assert receive_one(messaging, late).message_id == "ev-2"


def test_count_is_available_plus_locked_plus_scheduled(messaging: Messaging, entities: Entities) -> None:
    q = entities.queue()
    messaging.send(q, [msg("a"), msg("b"), msg("c", scheduled_enqueue_time=utcnow() + timedelta(minutes=5))])
    assert messaging.count(q) == 3
    first = receive_one(messaging, q)
    assert messaging.count(q) == 3
    messaging.complete(q, first)
    eventually(lambda: messaging.count(q) == 2)
    messaging.dead_letter(q, receive_one(messaging, q), reason="test")
    eventually(lambda: messaging.count(q) == 1)
    assert messaging.count(dead_letter_path(q)) == 1


# -- errors -----------------------------------------------------------------------------------------


def test_missing_entities_raise_entity_not_found(messaging: Messaging, entities: Entities) -> None:
    missing = unique("missing")
    with pytest.raises(EntityNotFound):
        messaging.send(missing, [msg("a")])
    with pytest.raises(EntityNotFound):
        messaging.receive(missing)
    with pytest.raises(EntityNotFound):
        messaging.peek(missing)
    with pytest.raises(EntityNotFound):
        messaging.count(missing)
    with pytest.raises(EntityNotFound):
        messaging.create_subscription(missing, "s")
    topic = entities.topic()
    with pytest.raises(EntityNotFound):
        messaging.receive(subscription_path(topic, "nope"))
    assert not messaging.entity_exists(missing)


def test_settling_without_the_lock_raises_lock_lost(messaging: Messaging, entities: Entities) -> None:
    q = entities.queue()
    messaging.send(q, [msg("a"), msg("b")])
    a, b = receive_n(messaging, q, 2)
    messaging.complete(q, a)
    with pytest.raises(LockLost):
        messaging.complete(q, a)
    with pytest.raises(LockLost):
        messaging.abandon(q, a)
    with pytest.raises(LockLost):
        messaging.renew_lock(q, a)
    with pytest.raises(LockLost):
        messaging.dead_letter(q, a, reason="late")
    messaging.abandon(q, b)
    with pytest.raises(LockLost):
        messaging.complete(q, b)
    messaging.complete(q, receive_one(messaging, q))  # the redelivery holds a new lock


# -- concurrency ------------------------------------------------------------------------------------


def test_concurrent_receivers_never_get_the_same_message(messaging: Messaging, entities: Entities) -> None:
    q = entities.queue(NO_DEDUP)
    total = 200
    for start in range(0, total, 50):
        messaging.send(q, [msg(str(i), message_id=f"m{i}") for i in range(start, start + 50)])
    seen: list[str] = []
    seen_lock = threading.Lock()
    errors: list[BaseException] = []
    deadline = time.monotonic() + 10

    def work() -> None:
        try:
            while time.monotonic() < deadline:
                with seen_lock:
                    if len(seen) >= total:
                        return
                for received in messaging.receive(q, max_messages=10, max_wait=0.2):
                    messaging.complete(q, received)
                    with seen_lock:
                        seen.append(received.message_id)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    workers = [threading.Thread(target=work) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=15)
    assert not errors, errors
    assert sorted(seen) == sorted(f"m{i}" for i in range(total))  # every message exactly once
    eventually(lambda: messaging.count(q) == 0)
