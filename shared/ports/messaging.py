"""Messaging port: Service Bus semantics (queues, topics with subscriptions, peek-lock).

Service Bus on Azure; an embedded SQLite adapter on one machine. Messages are signals that may
be lost, repeated or reordered; the state store stays the single source of truth.

Entity paths, as Service Bus names them:
    "<queue>"                                   a queue
    "<topic>"                                   a topic (send only)
    "<topic>/subscriptions/<subscription>"      a subscription of a topic (receive only)
    "<queue or subscription path>/$deadletterqueue"   its dead-letter sub-queue (receive only)

Semantics every adapter keeps (the contract suite checks each):
- FIFO by enqueue order within an entity, for messages that are available (not locked, not scheduled).
- `receive` locks each message for the entity's lock duration and raises its delivery count by one.
  `complete` removes it; `abandon` unlocks it at once; a lock that expires unlocks it too.
  When a message is abandoned (or its lock expires) with delivery count == max delivery count,
  it moves to the dead-letter sub-queue with reason "MaxDeliveryCountExceeded".
- `dead_letter` moves it with the given reason and description (read back as application
  properties "DeadLetterReason" / "DeadLetterErrorDescription", and as the fields below).
- A message with `scheduled_enqueue_time` is invisible until then.
- Duplicate detection: within the entity's window, a second message with the same message_id
  sent to the same queue/topic is accepted and dropped.
- A topic copies each message to every subscription it has at send time.
- Operations on a missing entity raise EntityNotFound; settling with a lost lock raises LockLost.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

PropertyValue = str | int | float | bool
DEAD_LETTER_SUFFIX = "/$deadletterqueue"


class MessagingError(Exception):
    """Base class of messaging errors."""


class EntityNotFound(MessagingError):
    """The queue, topic or subscription does not exist."""


class LockLost(MessagingError):
    """The message's lock expired or it was already settled: another receiver may have it now."""


class PoisonMessage(Exception):
    """Raised by a queue-triggered function for a message that can never succeed: its trigger
    dead-letters it at once with this reason and description instead of retrying it."""

    def __init__(self, reason: str, description: str) -> None:
        super().__init__(f"{reason}: {description}")
        self.reason = reason
        self.description = description


def subscription_path(topic: str, subscription: str) -> str:
    return f"{topic}/subscriptions/{subscription}"


def dead_letter_path(entity: str) -> str:
    return entity + DEAD_LETTER_SUFFIX


@dataclass(frozen=True)
class EntityOptions:
    """Settings of a queue or subscription (a topic uses only the duplicate-detection window)."""

    lock_duration: timedelta = timedelta(seconds=30)
    max_delivery_count: int = 10
    duplicate_detection_window: timedelta | None = timedelta(minutes=10)  # None: no detection


MAX_MESSAGE_ID = 128  # Service Bus refuses longer message ids
# Integer properties are sent as AMQP 32-bit ints (what azure-servicebus's public API encodes a Python
# int as); a wider one goes as text, which every Service Bus client reads.
INT32_RANGE = (-(2**31), 2**31 - 1)


def bounded_message_id(message_id: str) -> str:
    """The id itself when Service Bus takes it, else a readable prefix and a hash of the whole: the same
    text gives the same id (duplicate detection still works), different texts different ids."""
    if len(message_id) <= MAX_MESSAGE_ID:
        return message_id
    digest = hashlib.sha256(message_id.encode()).hexdigest()
    return f"{message_id[:MAX_MESSAGE_ID - len(digest) - 1]}~{digest}"


@dataclass(frozen=True)
class OutgoingMessage:
    """A message to send. Its id is bounded here, for every sender: a job key with its attempt, an
    event with its subscription and attempt... can exceed Service Bus's 128 characters."""

    body: bytes
    message_id: str | None = None  # the adapter makes one when None
    application_properties: Mapping[str, PropertyValue] = field(default_factory=dict)
    correlation_id: str | None = None
    subject: str | None = None
    reply_to: str | None = None
    scheduled_enqueue_time: datetime | None = None  # timezone-aware
    session_id: str | None = None  # carried, not enforced: the adapters have no session receivers
    reply_to_session_id: str | None = None

    def __post_init__(self) -> None:
        if self.message_id is not None:
            object.__setattr__(self, "message_id", bounded_message_id(self.message_id))
        for key, value in self.application_properties.items():
            if isinstance(value, int) and not isinstance(value, bool) and not INT32_RANGE[0] <= value <= INT32_RANGE[1]:
                raise ValueError(f"application property {key!r}: {value} does not fit in 32 bits; send it as text")


@dataclass(frozen=True)
class ReceivedMessage:
    body: bytes
    message_id: str
    lock_token: str  # empty for peeked messages
    delivery_count: int  # 1 on the first delivery
    sequence_number: int
    enqueued_time: datetime
    locked_until: datetime | None
    application_properties: Mapping[str, PropertyValue] = field(default_factory=dict)
    correlation_id: str | None = None
    subject: str | None = None
    reply_to: str | None = None
    session_id: str | None = None
    reply_to_session_id: str | None = None
    dead_letter_reason: str | None = None
    dead_letter_description: str | None = None


class Messaging(ABC):
    """The port. Implementations must be safe to share between threads."""

    # -- entities (idempotent) -------------------------------------------------------------------
    @abstractmethod
    def create_queue(self, name: str, options: EntityOptions = EntityOptions()) -> None:
        """Create the queue if it does not exist (an existing one keeps its settings)."""

    @abstractmethod
    def delete_queue(self, name: str) -> None:
        """Delete the queue and its messages; nothing happens if it does not exist."""

    @abstractmethod
    def create_topic(self, name: str, options: EntityOptions = EntityOptions()) -> None:
        """Create the topic if it does not exist."""

    @abstractmethod
    def delete_topic(self, name: str) -> None:
        """Delete the topic with its subscriptions; nothing happens if it does not exist."""

    @abstractmethod
    def create_subscription(self, topic: str, name: str, options: EntityOptions = EntityOptions()) -> None:
        """Create the subscription if it does not exist; EntityNotFound if the topic does not."""

    @abstractmethod
    def delete_subscription(self, topic: str, name: str) -> None:
        """Delete the subscription; nothing happens if it does not exist."""

    @abstractmethod
    def entity_exists(self, path: str) -> bool:
        """Whether the queue, topic or subscription path exists."""

    # -- messages ----------------------------------------------------------------------------------
    @abstractmethod
    def send(self, entity: str, messages: Sequence[OutgoingMessage]) -> None:
        """Send to a queue or topic, all or nothing."""

    def send_each(self, batches: Sequence[tuple[str, Sequence[OutgoingMessage]]]) -> None:
        """Several sends, each to its own entity, as one write where the adapter can (the embedded
        queues: one transaction). Service Bus has no such call for this SDK: they are sent in turn,
        so a failure may leave the earlier ones sent (send ids that make a retry harmless)."""
        for entity, messages in batches:
            self.send(entity, messages)

    @abstractmethod
    def receive(self, entity: str, max_messages: int = 1, max_wait: float = 0.0) -> list[ReceivedMessage]:
        """Peek-lock up to max_messages available messages in order; waits up to max_wait seconds
        for the first one to arrive, then returns what is there (possibly nothing)."""

    @abstractmethod
    def peek(self, entity: str, max_messages: int = 1) -> list[ReceivedMessage]:
        """The first active messages in sequence order, as Service Bus's peek shows them: available,
        locked (by any receiver) and scheduled ones alike, but not dead-lettered ones. Peeking
        neither locks a message nor counts a delivery; peeked messages have an empty lock_token
        and no locked_until, so they cannot be settled."""

    @abstractmethod
    def complete(self, entity: str, message: ReceivedMessage) -> None:
        """Remove a locked message. LockLost if its lock is no longer held."""

    def complete_all(self, entity: str, messages: Sequence[ReceivedMessage]) -> list[ReceivedMessage]:
        """Complete several locked messages of one entity, as one write where the adapter can;
        returns those whose lock was no longer held (the others are gone)."""
        lost = []
        for message in messages:
            try:
                self.complete(entity, message)
            except LockLost:
                lost.append(message)
        return lost

    @abstractmethod
    def abandon(self, entity: str, message: ReceivedMessage) -> None:
        """Unlock a locked message now (dead-lettered if its delivery count is spent)."""

    @abstractmethod
    def dead_letter(self, entity: str, message: ReceivedMessage, reason: str, description: str = "") -> None:
        """Move a locked message to the dead-letter sub-queue with a reason."""

    @abstractmethod
    def renew_lock(self, entity: str, message: ReceivedMessage) -> datetime:
        """Extend the lock by the lock duration from now; returns the new locked-until time."""

    @abstractmethod
    def count(self, entity: str) -> int:
        """Active messages in the entity (available, locked or scheduled; not dead-lettered)."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""
