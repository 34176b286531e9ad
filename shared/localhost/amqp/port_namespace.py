"""`PortNamespace`: the AMQP server's namespace over the Messaging port (the local host's SQLite queues).

Only the queues it is given are reachable (by default `lanes.DOOR_QUEUES`, the queues users send
requests to and read replies from) with their dead-letter sub-queues; every other path is "not
found", so a Service Bus client cannot read or fill the scheduler's internal queues. No topics.

Messages are translated both ways between AMQP (what the client sent, decoded by proton) and the
port's `OutgoingMessage` / `ReceivedMessage`. The port keeps Service Bus's semantics itself (lock
expiry, max delivery count, duplicate detection), so this keeps only a map from the lock tokens it
hands out to the port's received messages, to settle them through the port. Scheduling by the
management operation (which answers sequence numbers) is not offered; a message sent with a
scheduled enqueue time is scheduled.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from proton import Message, timestamp

from shared import lanes
from shared.localhost.amqp.namespace import Envelope, LockLost, NotFound, NotSupported
from shared.ports import messaging as port
from shared.ports.messaging import Messaging, OutgoingMessage, PropertyValue, ReceivedMessage

_DLQ = port.DEAD_LETTER_SUFFIX.lower()
_PRUNE_EVERY = 1.0  # seconds between sweeps of the lock map for locks that have expired
_SCHEDULED = "x-opt-scheduled-enqueue-time"


@dataclass(frozen=True)
class PortMessage:
    """A port message as the AMQP server delivers it (namespace.StoredMessage)."""

    raw: bytes
    seq: int
    deliveries: int
    enqueued_at: float
    visible_at: float
    dead_letter: tuple[str, str] | None

    @classmethod
    def of(cls, received: ReceivedMessage) -> PortMessage:
        enqueued = received.enqueued_time.timestamp()
        dead = None
        if received.dead_letter_reason is not None:
            dead = (received.dead_letter_reason, received.dead_letter_description or "")
        return cls(to_amqp(received), received.sequence_number, received.delivery_count, enqueued, enqueued, dead)


@dataclass(frozen=True)
class PortAcquired:
    """A message locked through the port, under the lock token handed to the client."""

    message: PortMessage
    lock_token: uuid.UUID
    locked_until: float | None


class PortNamespace:
    """The AMQP server's namespace (namespace.AmqpNamespace) over a Messaging port."""

    def __init__(self, messaging: Messaging, queues: Iterable[str] = lanes.DOOR_QUEUES,
                 clock: Callable[[], float] = time.time) -> None:
        self.messaging = messaging
        self.queues = frozenset(q.lower() for q in queues)
        self._clock = clock
        self._locks: dict[uuid.UUID, tuple[str, ReceivedMessage]] = {}  # token -> (port path, message)
        self._mutex = threading.Lock()
        self._pruned_at = 0.0

    # -- entities --------------------------------------------------------------------------------------
    def _path(self, path: str) -> str:
        """The port's path for an AMQP path: an exposed queue or its dead-letter sub-queue; else NotFound."""
        key = path.strip("/").lower()
        queue = key[: -len(_DLQ)] if key.endswith(_DLQ) else key
        if queue not in self.queues:
            raise NotFound(path)
        return key

    def exists(self, path: str) -> bool:
        try:
            key = self._path(path)
        except NotFound:
            return False
        return self.messaging.entity_exists(key)

    def is_topic(self, path: str) -> bool:
        return False

    def tick(self) -> None:
        """Forget lock tokens whose lock has expired (the port unlocked them already)."""
        now = self._clock()
        if now - self._pruned_at < _PRUNE_EVERY:
            return
        self._pruned_at = now
        with self._mutex:
            for token, (_, message) in list(self._locks.items()):
                if message.locked_until is None or message.locked_until.timestamp() <= now:
                    del self._locks[token]

    # -- sending ---------------------------------------------------------------------------------------
    def send(self, path: str, batch: list[Envelope]) -> None:
        key = self._path(path)
        if key.endswith(_DLQ):
            raise NotFound(path)  # dead-letter sub-queues are received from only
        messages = [from_amqp(raw, annotations) for _, raw, annotations in batch]
        try:
            self.messaging.send(key, messages)
        except port.EntityNotFound as exc:
            raise NotFound(path) from exc

    def schedule(self, path: str, batch: list[Envelope]) -> list[int]:
        raise NotSupported("scheduling by sequence number is not supported by the local host; send the "
                           "message with a scheduled enqueue time instead")

    def cancel_scheduled(self, path: str, seqs: list[int]) -> None:
        raise NotSupported("cancelling scheduled messages is not supported by the local host")

    # -- receiving -------------------------------------------------------------------------------------
    def acquire(self, path: str) -> PortAcquired | None:
        acquired = self.acquire_many(path, 1)
        return acquired[0] if acquired else None

    def acquire_many(self, path: str, count: int) -> list[PortAcquired]:
        """One receive of the port for them all (one write on the embedded queues)."""
        key = self._path(path)
        try:
            received = self.messaging.receive(key, max(1, count), 0.0)
        except port.EntityNotFound as exc:
            raise NotFound(path) from exc
        acquired = []
        for message in received:
            token = uuid.uuid4()
            with self._mutex:
                self._locks[token] = (key, message)
            until = message.locked_until.timestamp() if message.locked_until is not None else None
            acquired.append(PortAcquired(PortMessage.of(message), token, until))
        return acquired

    def take(self, path: str) -> PortMessage | None:
        acquired = self.acquire(path)
        if acquired is None:
            return None
        self.complete(acquired.lock_token)
        return acquired.message

    def peek(self, path: str, from_seq: int, count: int) -> Sequence[PortMessage]:
        """The port peeks from the head only: peek further until count messages from from_seq are seen."""
        key = self._path(path)
        count = max(1, count)
        wanted = count
        while True:
            try:
                seen = self.messaging.peek(key, wanted)
            except port.EntityNotFound as exc:
                raise NotFound(path) from exc
            found = [m for m in seen if m.sequence_number >= from_seq]
            if len(found) >= count or len(seen) < wanted:
                return [PortMessage.of(m) for m in found[:count]]
            wanted *= 2

    # -- settling --------------------------------------------------------------------------------------
    def complete(self, token: uuid.UUID) -> None:
        self._settle(token, self.messaging.complete)

    def abandon(self, token: uuid.UUID, *, counted: bool = True) -> None:
        """The port always counts the delivery: a release is an abandon here."""
        self._settle(token, self.messaging.abandon)

    def dead_letter(self, token: uuid.UUID, reason: str | None, description: str | None) -> None:
        self._settle(token, lambda key, message: self.messaging.dead_letter(
            key, message, str(reason or ""), str(description or "")))

    def renew(self, token: uuid.UUID) -> float:
        key, message = self._held(token)
        try:
            until = self.messaging.renew_lock(key, message)
        except (port.LockLost, port.EntityNotFound) as exc:
            self._forget(token)
            raise LockLost(str(token)) from exc
        with self._mutex:
            if token in self._locks:
                self._locks[token] = (key, replace(message, locked_until=until))
        return until.timestamp()

    def _settle(self, token: uuid.UUID, action: Callable[[str, ReceivedMessage], None]) -> None:
        key, message = self._held(token)
        try:
            action(key, message)
        except (port.LockLost, port.EntityNotFound) as exc:
            raise LockLost(str(token)) from exc
        finally:
            self._forget(token)

    def _held(self, token: uuid.UUID) -> tuple[str, ReceivedMessage]:
        with self._mutex:
            held = self._locks.get(token)
        if held is None:
            raise LockLost(str(token))
        return held

    def _forget(self, token: uuid.UUID) -> None:
        with self._mutex:
            self._locks.pop(token, None)


# -- translation ---------------------------------------------------------------------------------------
def from_amqp(raw: bytes, annotations: dict[str, Any]) -> OutgoingMessage:
    """The port's message for an AMQP message a client sent."""
    message = Message()
    message.decode(raw)
    scheduled = annotations.get(_SCHEDULED)
    properties: dict[str, str | int | float | bool] = {}
    received: Mapping[Any, Any] = message.properties or {}
    for name, value in received.items():
        converted = _property(value)
        if converted is not None:
            properties[str(name)] = converted
    return OutgoingMessage(
        body=_body(message.body),
        message_id=_text(message.id),
        application_properties=properties,
        correlation_id=_text(message.correlation_id),
        subject=_text(message.subject),
        reply_to=_text(message.reply_to),
        scheduled_enqueue_time=_moment(scheduled) if scheduled is not None else None,
        session_id=_text(message.group_id),
        reply_to_session_id=_text(message.reply_to_group_id),
    )


def to_amqp(received: ReceivedMessage) -> bytes:
    """A port message encoded as the AMQP message a Service Bus client reads (the body as one data section)."""
    message = Message(body=bytes(received.body))
    message.inferred = True  # bytes go in a data section, as Service Bus clients send them
    message.id = received.message_id
    message.correlation_id = received.correlation_id
    # proton's setters take text only; a new message's fields are None already.
    if received.subject is not None:
        message.subject = received.subject
    if received.reply_to is not None:
        message.reply_to = received.reply_to
    if received.session_id is not None:
        message.group_id = received.session_id
    if received.reply_to_session_id is not None:
        message.reply_to_group_id = received.reply_to_session_id
    if received.application_properties:
        # proton's Message.__init__ sets properties = None unannotated: mypy infers the type None.
        message.properties = dict(received.application_properties)  # type: ignore[assignment]
    return bytes(message.encode())


def _body(value: Any) -> bytes:
    """A data section's bytes as they are; a text value as UTF-8; any other value as JSON."""
    if value is None:
        return b""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode()
    return json.dumps(value, default=str, ensure_ascii=False).encode()


def _property(value: Any) -> PropertyValue | None:
    """What the port can carry: str, int, float and bool kept; None dropped; anything else as text."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, timestamp):  # an int subclass: its moment reads better than its milliseconds
        return _moment(value).isoformat()
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _moment(value: Any) -> datetime:
    """An AMQP timestamp (milliseconds; the SDK may also hand a datetime) as an aware datetime."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return datetime.fromtimestamp(int(value) / 1000.0, UTC)
