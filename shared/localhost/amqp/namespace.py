"""What the AMQP server needs from the namespace it serves: the entities and their messages.

The server (server.py) speaks Service Bus's AMQP dialect; a namespace holds the state and keeps
Service Bus's semantics. Two implement this: the tests' in-memory broker (tests/servicebus_broker)
and `PortNamespace` (port_namespace.py), the local host's SQLite queues through the Messaging port.

The server calls every method on its reactor thread; a namespace shared with other threads locks
itself. Times are `time.time()` seconds. Lock tokens are UUIDs (the delivery tags of peek-lock).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, Protocol

# One message as a client sent it: (message id as sent, the encoded AMQP message, its annotations).
Envelope = tuple[Any, bytes, dict[str, Any]]


class NotFound(Exception):
    """The addressed entity does not exist (or may not be reached through this server)."""


class LockLost(Exception):
    """The lock token is unknown, settled, or expired."""


class NotSupported(Exception):
    """The namespace does not offer this operation (the client is answered 501)."""


class StoredMessage(Protocol):
    """What `wire.encode_for_delivery` reads of a stored message."""

    @property
    def raw(self) -> bytes:
        """The message as encoded by its sender (or rebuilt from what the namespace keeps)."""

    @property
    def seq(self) -> int:
        """The sequence number."""

    @property
    def deliveries(self) -> int:
        """Times delivered under a lock so far (the AMQP header carries one less on a delivery)."""

    @property
    def enqueued_at(self) -> float:
        """When it was enqueued."""

    @property
    def visible_at(self) -> float:
        """When it is (was) due: later than enqueued_at for a scheduled message."""

    @property
    def dead_letter(self) -> tuple[str, str] | None:
        """(reason, description) once dead-lettered."""


class Acquired(Protocol):
    """A message locked for one delivery."""

    @property
    def message(self) -> StoredMessage: ...

    @property
    def lock_token(self) -> uuid.UUID | None: ...

    @property
    def locked_until(self) -> float | None: ...


class AmqpNamespace(Protocol):
    """The entities a server serves, by Service Bus entity path (see shared/ports/messaging.py)."""

    def tick(self) -> None:
        """Housekeeping (lock expiry, due scheduled messages); called many times a second."""

    def exists(self, path: str) -> bool:
        """Whether a link may attach to this path (a queue, topic, subscription or dead-letter queue)."""

    def is_topic(self, path: str) -> bool:
        """Whether the path is a topic (sent to, never received from)."""

    def send(self, path: str, batch: list[Envelope]) -> Any:
        """Enqueue to a queue or topic, all or nothing; duplicates within the window are dropped.
        NotFound if it is not a queue or topic."""

    def schedule(self, path: str, batch: list[Envelope]) -> list[int]:
        """As send, for messages with a scheduled enqueue time; their sequence numbers (the
        management operation schedule-message answers them). NotSupported if not offered."""

    def acquire(self, path: str) -> Acquired | None:
        """Lock the first available message of a queue, subscription or dead-letter queue."""

    def acquire_many(self, path: str, count: int) -> Sequence[Acquired]:
        """Lock up to `count` available messages at once, first first (fewer when fewer wait)."""

    def take(self, path: str) -> StoredMessage | None:
        """Receive-and-delete the first available message."""

    def complete(self, token: uuid.UUID) -> None:
        """Remove a locked message. LockLost if the lock is no longer held."""

    def abandon(self, token: uuid.UUID, *, counted: bool = True) -> None:
        """Unlock now; counted=False (a release) may give the delivery back."""

    def dead_letter(self, token: uuid.UUID, reason: str | None, description: str | None) -> None:
        """Move a locked message to its dead-letter sub-queue."""

    def renew(self, token: uuid.UUID) -> float:
        """Extend the lock; the new locked-until time."""

    def peek(self, path: str, from_seq: int, count: int) -> Sequence[StoredMessage]:
        """Up to count messages from a sequence number on, locked and scheduled ones included."""

    def cancel_scheduled(self, path: str, seqs: list[int]) -> None:
        """Drop scheduled messages that are not yet due. NotSupported if not offered."""
