"""Service Bus semantics of the test broker: entities, messages, peek-lock; no I/O.

The AMQP side (the product's server, on its reactor thread) and the HTTP management side (atom.py)
run in different threads and both call in here, so every public method of `Namespace` holds its
lock for its whole run.
Time is plain `time.time()` seconds; callers never pass a clock.

A message is kept as the encoded AMQP message the sender sent (bytes, immutable, so copies for
subscriptions share it), so whatever types the sender used travel back unchanged. What the broker
itself adds (header, the x-opt-* annotations, dead-letter properties) is applied by the product's
AMQP server (shared/localhost/amqp/wire.py) when a copy is delivered. `Namespace` is what that
server calls (the `AmqpNamespace` interface of shared/localhost/amqp/namespace.py).

Deliberate simplifications: no sessions, no deferral, no TTL/expiry, no filters on
subscriptions (every subscription takes every message), no size quotas. A message that is
released (not accepted by the client's code at all) does not count as a delivery.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import wraps
from typing import Any, TypeVar

from shared.localhost.amqp.namespace import LockLost, NotFound

MAX_DELIVERY_REASON = "MaxDeliveryCountExceeded"
_DLQ = "$deadletterqueue"
_SUBSCRIPTIONS = "subscriptions"


@dataclass
class Settings:
    """What the ATOM API sets on a queue, topic or subscription (seconds, counts)."""

    lock_duration: float = 60.0
    max_delivery_count: int = 10
    duplicate_detection: bool = False
    duplicate_window: float = 600.0


@dataclass
class Message:
    """One copy of a message in one (sub-)queue."""

    seq: int
    message_id: Any  # as sent: str, uuid, int or bytes; None if the sender gave none
    raw: bytes  # the message as encoded by the sender
    annotations: dict[Any, Any]  # message annotations as sent
    enqueued_at: float
    visible_at: float  # scheduled messages are invisible until then
    deliveries: int = 0  # times delivered under a lock (the AMQP header carries deliveries - 1)
    lock_token: uuid.UUID | None = None
    locked_until: float = 0.0
    dead_letter: tuple[str, str] | None = None  # (reason, description) once dead-lettered

    def copy_for(self, seq: int) -> Message:
        """A fresh copy for a subscription (each keeps its own delivery state)."""
        return Message(seq, self.message_id, self.raw, dict(self.annotations), self.enqueued_at, self.visible_at)


@dataclass
class Queue:
    """A queue or a subscription: its active messages and its dead-letter sub-queue."""

    name: str
    settings: Settings
    active: dict[int, Message] = field(default_factory=dict)
    dead: dict[int, Message] = field(default_factory=dict)
    seq: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    dedup: dict[Any, float] = field(default_factory=dict)  # message id -> forget after (queues only)
    created_at: float = field(default_factory=time.time)


@dataclass
class Topic:
    name: str
    settings: Settings
    subscriptions: dict[str, Queue] = field(default_factory=dict)
    scheduled: list[Message] = field(default_factory=list)  # held here until due, then fanned out
    seq: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    dedup: dict[Any, float] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class Address:
    """A parsed entity path: queue "q", topic "t", subscription "t/subscriptions/s", plus "/$deadletterqueue"."""

    entity: str  # lower-cased queue or topic name
    subscription: str | None = None
    dead_letter: bool = False

    @classmethod
    def parse(cls, path: str) -> Address:
        parts = [p for p in path.strip("/").lower().split("/") if p]
        dead = bool(parts) and parts[-1] == _DLQ
        if dead:
            parts = parts[:-1]
        if len(parts) >= 3 and parts[-2] == _SUBSCRIPTIONS:
            return cls("/".join(parts[:-2]), parts[-1], dead)
        return cls("/".join(parts), None, dead)


@dataclass(frozen=True)
class Delivery:
    """What the broker must put on the wire for one message."""

    message: Message
    lock_token: uuid.UUID | None
    locked_until: float | None


F = TypeVar("F", bound=Callable[..., Any])


def _locked(method: F) -> F:
    @wraps(method)
    def run(self: Namespace, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            return method(self, *args, **kwargs)

    return run  # type: ignore[return-value]


class Namespace:
    """Every queue and topic of the broker (names are case-insensitive, as in Service Bus)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.queues: dict[str, Queue] = {}
        self.topics: dict[str, Topic] = {}
        self.locks: dict[uuid.UUID, tuple[Queue, Message]] = {}

    # -- entities ------------------------------------------------------------------------------------
    @_locked
    def create_queue(self, name: str, settings: Settings) -> Queue | None:
        """The new queue, or None if the name is taken by a queue or a topic."""
        key = name.lower()
        if key in self.queues or key in self.topics:
            return None
        self.queues[key] = Queue(name, settings)
        return self.queues[key]

    @_locked
    def create_topic(self, name: str, settings: Settings) -> Topic | None:
        key = name.lower()
        if key in self.queues or key in self.topics:
            return None
        self.topics[key] = Topic(name, settings)
        return self.topics[key]

    @_locked
    def create_subscription(self, topic: str, name: str, settings: Settings) -> Queue | None:
        """The new subscription, None if it exists; NotFound if the topic does not."""
        parent = self._topic(topic.lower())
        if name.lower() in parent.subscriptions:
            return None
        parent.subscriptions[name.lower()] = Queue(name, settings)
        return parent.subscriptions[name.lower()]

    @_locked
    def delete(self, path: str) -> bool:
        """Delete a queue, topic or subscription; False if there was none."""
        address = Address.parse(path)
        if address.subscription is not None:
            topic = self.topics.get(address.entity)
            gone = topic.subscriptions.pop(address.subscription, None) if topic else None
        else:
            gone = self.queues.pop(address.entity, None) or self.topics.pop(address.entity, None)
        if gone is None:
            return False
        queues = list(gone.subscriptions.values()) if isinstance(gone, Topic) else [gone]
        for token, (queue, _) in list(self.locks.items()):
            if any(queue is q for q in queues):
                del self.locks[token]
        return True

    @_locked
    def get(self, path: str) -> Queue | Topic | None:
        address = Address.parse(path)
        if address.subscription is not None:
            topic = self.topics.get(address.entity)
            return topic.subscriptions.get(address.subscription) if topic else None
        return self.queues.get(address.entity) or self.topics.get(address.entity)

    @_locked
    def counts(self, path: str) -> dict[str, int]:
        """Runtime counts, as the ATOM API reports them: active (incl. locked), scheduled, dead-letter."""
        now = time.time()
        self._tick(now)
        entity = self.get(path)
        if entity is None:
            raise NotFound(path)
        if isinstance(entity, Topic):
            return {"active": 0, "scheduled": len(entity.scheduled), "dead": 0}
        scheduled = sum(1 for m in entity.active.values() if m.visible_at > now and not m.deliveries)
        return {"active": len(entity.active) - scheduled, "scheduled": scheduled, "dead": len(entity.dead)}

    @_locked
    def exists(self, path: str) -> bool:
        """Whether a link may attach to this address (a queue, topic, subscription or dead-letter queue)."""
        address = Address.parse(path)
        entity = self.get(path)
        return entity is not None and not (address.dead_letter and isinstance(entity, Topic))

    @_locked
    def is_topic(self, path: str) -> bool:
        return isinstance(self.get(path), Topic) and not Address.parse(path).dead_letter

    # -- sending ---------------------------------------------------------------------------------------
    @_locked
    def send(self, path: str, batch: list[tuple[Any, bytes, dict[Any, Any]]]) -> list[int]:
        """Enqueue (message id, encoded message, annotations) triples to a queue or topic, all or nothing.

        Returns the sequence numbers given (a dropped duplicate gets none)."""
        now = time.time()
        address = Address.parse(path)
        entity = self.get(path)
        if entity is None or address.dead_letter or address.subscription is not None:
            raise NotFound(path)
        numbers: list[int] = []
        for message_id, raw, notes in batch:
            if self._is_duplicate(entity, message_id, now):
                continue
            scheduled = notes.get("x-opt-scheduled-enqueue-time")
            visible_at = max(now, int(scheduled) / 1000.0) if scheduled is not None else now
            message = Message(next(entity.seq), message_id, raw, dict(notes), now, visible_at)
            numbers.append(message.seq)
            if isinstance(entity, Topic):
                if visible_at > now:
                    entity.scheduled.append(message)
                else:
                    self._fan_out(entity, message)
            else:
                entity.active[message.seq] = message
        return numbers

    @_locked
    def schedule(self, path: str, batch: list[tuple[Any, bytes, dict[Any, Any]]]) -> list[int]:
        """As send: a message's x-opt-scheduled-enqueue-time annotation makes it wait."""
        return self.send(path, batch)

    def _is_duplicate(self, entity: Queue | Topic, message_id: Any, now: float) -> bool:
        if not entity.settings.duplicate_detection or message_id is None:
            return False
        for known, until in list(entity.dedup.items()):
            if until <= now:
                del entity.dedup[known]
        if message_id in entity.dedup:
            return True
        entity.dedup[message_id] = now + entity.settings.duplicate_window
        return False

    @staticmethod
    def _fan_out(topic: Topic, message: Message) -> None:
        for subscription in topic.subscriptions.values():
            copy = message.copy_for(next(subscription.seq))
            subscription.active[copy.seq] = copy

    # -- peek-lock ------------------------------------------------------------------------------------
    @_locked
    def acquire(self, path: str) -> Delivery | None:
        """Lock the first available message of a queue, subscription or dead-letter queue."""
        now = time.time()
        self._tick(now)
        queue, dead_letter = self._queue(path)
        messages = queue.dead if dead_letter else queue.active
        for message in messages.values():
            if message.lock_token is None and message.visible_at <= now:
                message.deliveries += 1
                message.lock_token = uuid.uuid4()
                message.locked_until = now + queue.settings.lock_duration
                self.locks[message.lock_token] = (queue, message)
                return Delivery(message, message.lock_token, message.locked_until)
        return None

    @_locked
    def acquire_many(self, path: str, count: int) -> list[Delivery]:
        """Lock up to `count` available messages, first first."""
        acquired: list[Delivery] = []
        while len(acquired) < count and (delivery := self.acquire(path)) is not None:
            acquired.append(delivery)
        return acquired

    @_locked
    def take(self, path: str) -> Message | None:
        """Receive-and-delete: remove and return the first available message (it counts as a delivery)."""
        delivery = self.acquire(path)
        if delivery is None:
            return None
        assert delivery.lock_token is not None
        self.complete(delivery.lock_token)
        return delivery.message

    @_locked
    def complete(self, token: uuid.UUID) -> None:
        queue, message = self._held(token)
        self._unlock(message)
        messages = queue.active if message.dead_letter is None else queue.dead
        messages.pop(message.seq, None)

    @_locked
    def abandon(self, token: uuid.UUID, *, counted: bool = True) -> None:
        """Unlock now; a release (counted=False) gives the delivery back as if it never happened."""
        self._release(*self._held(token), counted=counted)

    @_locked
    def dead_letter(self, token: uuid.UUID, reason: str | None, description: str | None) -> None:
        queue, message = self._held(token)
        self._unlock(message)
        if message.dead_letter is None:  # dead-lettering from the dead-letter queue leaves it there
            self._move_to_dead_letter(queue, message, reason or "", description or "")

    @_locked
    def renew(self, token: uuid.UUID) -> float:
        queue, message = self._held(token)
        message.locked_until = time.time() + queue.settings.lock_duration
        return message.locked_until

    @_locked
    def peek(self, path: str, from_seq: int, count: int) -> list[Message]:
        """Messages from a sequence number on, locked and scheduled ones included."""
        self._tick(time.time())
        queue, dead_letter = self._queue(path)
        messages = queue.dead if dead_letter else queue.active
        return sorted((m for m in messages.values() if m.seq >= from_seq), key=lambda m: m.seq)[:count]

    @_locked
    def cancel_scheduled(self, path: str, seqs: list[int]) -> None:
        """Drop scheduled messages that are not yet due (unknown numbers are ignored, as Service Bus does)."""
        now = time.time()
        entity = self.get(path)
        if entity is None:
            raise NotFound(path)
        wanted = set(seqs)
        if isinstance(entity, Topic):
            entity.scheduled = [m for m in entity.scheduled if m.seq not in wanted]
            return
        for seq in wanted:
            message = entity.active.get(seq)
            if message is not None and message.visible_at > now and not message.deliveries:
                del entity.active[seq]

    @_locked
    def tick(self) -> None:
        """Expire locks and release due scheduled topic messages; the broker calls this often."""
        self._tick(time.time())

    # -- internals --------------------------------------------------------------------------------------
    def _tick(self, now: float) -> None:
        for queue, message in list(self.locks.values()):
            if message.locked_until <= now:
                self._release(queue, message, counted=True)
        for topic in self.topics.values():
            due = [m for m in topic.scheduled if m.visible_at <= now]
            if due:
                topic.scheduled = [m for m in topic.scheduled if m.visible_at > now]
                for message in due:
                    self._fan_out(topic, message)

    def _topic(self, name: str) -> Topic:
        topic = self.topics.get(name)
        if topic is None:
            raise NotFound(name)
        return topic

    def _queue(self, path: str) -> tuple[Queue, bool]:
        address = Address.parse(path)
        entity = self.get(path)
        if not isinstance(entity, Queue):
            raise NotFound(path)
        return entity, address.dead_letter

    def _held(self, token: uuid.UUID) -> tuple[Queue, Message]:
        held = self.locks.get(token)
        if held is None:
            raise LockLost(str(token))
        queue, message = held
        if message.locked_until <= time.time():
            self._release(queue, message, counted=True)  # the expiry the next tick would have applied
            raise LockLost(str(token))
        return queue, message

    def _release(self, queue: Queue, message: Message, *, counted: bool) -> None:
        """Unlock; past the max delivery count a counted delivery moves the message to dead-letter."""
        self._unlock(message)
        if not counted:
            message.deliveries -= 1
        elif message.dead_letter is None and message.deliveries >= queue.settings.max_delivery_count:
            self._move_to_dead_letter(queue, message, MAX_DELIVERY_REASON, "Message could not be consumed after "
                                      f"{queue.settings.max_delivery_count} delivery attempts.")

    def _unlock(self, message: Message) -> None:
        if message.lock_token is not None:
            self.locks.pop(message.lock_token, None)
        message.lock_token = None
        message.locked_until = 0.0

    @staticmethod
    def _move_to_dead_letter(queue: Queue, message: Message, reason: str, description: str) -> None:
        queue.active.pop(message.seq, None)
        message.dead_letter = (reason, description)
        queue.dead[message.seq] = message
