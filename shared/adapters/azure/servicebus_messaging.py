"""Messaging on Azure Service Bus (azure-servicebus 7.x): the Azure adapter of the Messaging port.

Data goes over AMQP through one `ServiceBusClient`; entities are created, deleted and counted
through `ServiceBusAdministrationClient` (the ATOM/XML management API).

Opening an AMQP link costs several round trips (connection, claims-based auth, attach), so
senders and receivers are cached per entity and reused. The SDK's handlers are not thread-safe:
each cached handler has its own lock, and an entity keeps a small pool of receivers so that
threads receiving from the same entity do not queue behind each other's waits. A received
message can only be settled on the receiver that received it (its link holds the delivery), so
the port's lock token maps to that receiver and the SDK's message object until it is settled.

The SDK's failure modes tend to hang rather than raise, so every call carries a time bound:
per-attempt timeouts and few, short retries on the AMQP side, connect/read timeouts over HTTP.
SDK errors become the port's `EntityNotFound` and `LockLost`; anything else surfaces as a
`MessagingError` carrying the SDK's exception as its cause.

Keyless on Azure: given a token credential (the Functions app's managed identity, with the role
Azure Service Bus Data Owner on the namespace), `connection` is the namespace's host name
(`<namespace>.servicebus.windows.net`) instead of a connection string.

A connection string with `UseDevelopmentEmulator=true` (a local emulator or the test broker)
turns TLS off for AMQP, and here the management calls go over plain HTTP to the same host and
port as well, since the SDK would otherwise always use https for them.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.core.pipeline.transport import RequestsTransport
from azure.servicebus import (
    ServiceBusClient,
    ServiceBusMessage,
    ServiceBusReceivedMessage,
    ServiceBusReceiver,
    ServiceBusSender,
    ServiceBusSubQueue,
)
from azure.servicebus.exceptions import (
    MessageAlreadySettled,
    MessageLockLostError,
    MessagingEntityNotFoundError,
    ServiceBusError,
)
from azure.servicebus.management import ServiceBusAdministrationClient

from shared.ports.messaging import (
    DEAD_LETTER_SUFFIX,
    EntityNotFound,
    EntityOptions,
    LockLost,
    Messaging,
    MessagingError,
    OutgoingMessage,
    PropertyValue,
    ReceivedMessage,
)

T = TypeVar("T")

OPERATION_TIMEOUT = 10.0  # seconds one SDK attempt may take (send, settle, renew, peek, HTTP read)
MIN_RECEIVE_WAIT = 0.05  # the SDK answers a zero wait without asking the broker at all
# How long the SDK blocks on one socket read: it polls at this pace inside waits and closes, so
# the default (0.2 s) adds up to that much to every short receive and every link close.
SOCKET_TIMEOUT = 0.05
RECEIVERS_PER_ENTITY = 8  # beyond this, receivers of an entity are shared (waiting for a free one)
_SUBSCRIPTIONS = "/subscriptions/"
_DEAD_LETTER_REASON = "DeadLetterReason"
_DEAD_LETTER_DESCRIPTION = "DeadLetterErrorDescription"


@dataclass(frozen=True)
class _Path:
    """A port entity path split the way the SDK addresses it."""

    entity: str  # queue or topic name
    subscription: str | None = None
    dead_letter: bool = False

    @classmethod
    def parse(cls, path: str) -> _Path:
        text = path.strip("/")
        dead_letter = text.lower().endswith(DEAD_LETTER_SUFFIX.lower())
        if dead_letter:
            text = text[: -len(DEAD_LETTER_SUFFIX)]
        lowered = text.lower()
        if _SUBSCRIPTIONS in lowered:
            at = lowered.rindex(_SUBSCRIPTIONS)
            return cls(text[:at], text[at + len(_SUBSCRIPTIONS):], dead_letter)
        return cls(text, None, dead_letter)

    @property
    def key(self) -> str:
        """Cache key: Service Bus names are case-insensitive."""
        sub = f"{_SUBSCRIPTIONS}{self.subscription}" if self.subscription else ""
        return (self.entity + sub + (DEAD_LETTER_SUFFIX if self.dead_letter else "")).lower()

    @property
    def parent_key(self) -> str:
        """The key of the queue or topic this path belongs to (deleting it drops all of these)."""
        return self.entity.lower()


# azure-core exports RequestsTransport through a module __getattr__, which mypy reads as Any.
class _PlainHttpTransport(RequestsTransport):  # type: ignore[misc]
    """The management client always builds https:// URLs; an emulator answers plain HTTP."""

    def send(self, request: Any, **kwargs: Any) -> Any:
        if request.url.startswith("https://"):
            request.url = "http://" + request.url[len("https://"):]
        return super().send(request, **kwargs)


class _Handler:
    """One cached SDK sender or receiver with the lock that serialises its use."""

    def __init__(self, sdk: ServiceBusSender | ServiceBusReceiver) -> None:
        self.sdk = sdk
        self.lock = threading.Lock()
        self.closed = False

    def close(self) -> None:
        with self.lock:
            self.closed = True
            try:
                self.sdk.close()
            except Exception:  # noqa: BLE001 - closing a broken link must not mask the caller's work
                pass


@dataclass
class _Held:
    """A locked message: the receiver whose link holds it, and the SDK's message to settle."""

    receiver: _Handler
    message: ServiceBusReceivedMessage
    locked_until: datetime | None


class ServiceBusMessaging(Messaging):
    """Messaging on a Service Bus namespace, from its connection string (or its host name and a token
    credential); safe to share between threads."""

    def __init__(self, connection_string: str, *, credential: TokenCredential | None = None,
                 operation_timeout: float = OPERATION_TIMEOUT) -> None:
        self._timeout = operation_timeout
        emulator = "usedevelopmentemulator=true" in connection_string.replace(" ", "").lower()
        client_options: dict[str, Any] = dict(retry_total=2, retry_backoff_factor=0.1, retry_backoff_max=1,
                                              try_timeout=operation_timeout, timeout=operation_timeout,
                                              socket_timeout=SOCKET_TIMEOUT)
        transport_type = _PlainHttpTransport if emulator else RequestsTransport
        admin_options: dict[str, Any] = dict(retry_total=1, retry_backoff_factor=0.1, transport=transport_type(
            connection_timeout=operation_timeout, read_timeout=operation_timeout))
        if credential is not None:
            self._client = ServiceBusClient(connection_string, credential, **client_options)
            self._admin = ServiceBusAdministrationClient(connection_string, credential, **admin_options)
        else:
            self._client = ServiceBusClient.from_connection_string(connection_string, **client_options)
            self._admin = ServiceBusAdministrationClient.from_connection_string(connection_string, **admin_options)
        self._lock = threading.Lock()  # guards the caches below, never held during I/O
        self._senders: dict[str, _Handler] = {}
        self._receivers: dict[str, list[_Handler]] = {}
        self._held: dict[str, _Held] = {}
        self._preferred = threading.local()  # the receiver each thread used last, per entity
        self._closing: list[threading.Thread] = []  # background closes of handlers no longer cached
        self._closed = False

    # -- entities -----------------------------------------------------------------------------------

    def create_queue(self, name: str, options: EntityOptions = EntityOptions()) -> None:
        window = options.duplicate_detection_window
        try:
            self._admin_call(lambda: self._admin.create_queue(
                name, lock_duration=options.lock_duration, max_delivery_count=options.max_delivery_count,
                requires_duplicate_detection=window is not None,
                duplicate_detection_history_time_window=window))
        except ResourceExistsError:
            pass  # idempotent: an existing queue keeps its settings

    def delete_queue(self, name: str) -> None:
        self._forget(name)
        try:
            self._admin_call(lambda: self._admin.delete_queue(name))
        except ResourceNotFoundError:
            pass

    def create_topic(self, name: str, options: EntityOptions = EntityOptions()) -> None:
        window = options.duplicate_detection_window
        try:
            self._admin_call(lambda: self._admin.create_topic(
                name, requires_duplicate_detection=window is not None,
                duplicate_detection_history_time_window=window))
        except ResourceExistsError:
            pass

    def delete_topic(self, name: str) -> None:
        self._forget(name)
        try:
            self._admin_call(lambda: self._admin.delete_topic(name))
        except ResourceNotFoundError:
            pass

    def create_subscription(self, topic: str, name: str, options: EntityOptions = EntityOptions()) -> None:
        try:
            self._admin_call(lambda: self._admin.create_subscription(
                topic, name, lock_duration=options.lock_duration, max_delivery_count=options.max_delivery_count))
        except ResourceExistsError:
            pass
        except ResourceNotFoundError as exc:
            raise EntityNotFound(f"topic {topic!r} does not exist") from exc

    def delete_subscription(self, topic: str, name: str) -> None:
        self._forget(f"{topic}{_SUBSCRIPTIONS}{name}")
        try:
            self._admin_call(lambda: self._admin.delete_subscription(topic, name))
        except ResourceNotFoundError:
            pass

    def entity_exists(self, path: str) -> bool:
        try:
            self._runtime(_Path.parse(path))
        except ResourceNotFoundError:
            return False
        return True

    def count(self, entity: str) -> int:
        path = _Path.parse(entity)
        try:
            runtime = self._runtime(path)
        except ResourceNotFoundError as exc:
            raise EntityNotFound(f"{entity!r} does not exist") from exc
        if path.dead_letter:
            return int(runtime.dead_letter_message_count or 0)
        # A subscription reports no scheduled count: its scheduled messages wait in the topic.
        scheduled = getattr(runtime, "scheduled_message_count", 0)
        return int(runtime.active_message_count or 0) + int(scheduled or 0)

    def _runtime(self, path: _Path) -> Any:
        """Runtime properties of a queue, topic or subscription (a topic reads as a queue: counts zero)."""
        if (subscription := path.subscription) is not None:
            return self._admin_call(lambda: self._admin.get_subscription_runtime_properties(path.entity, subscription))
        return self._admin_call(lambda: self._admin.get_queue_runtime_properties(path.entity))

    def _admin_call(self, call: Callable[[], T]) -> T:
        """A management call; not-found and exists pass through for callers to decide."""
        try:
            return call()
        except (ResourceNotFoundError, ResourceExistsError):
            raise
        except AzureError as exc:
            raise MessagingError(f"Service Bus management call failed: {exc}") from exc

    # -- messages -----------------------------------------------------------------------------------

    def send(self, entity: str, messages: Sequence[OutgoingMessage]) -> None:
        path = _Path.parse(entity)
        if path.subscription is not None or path.dead_letter:
            raise EntityNotFound(f"{entity!r} cannot be sent to: send to a queue or topic")
        outgoing = [_to_sdk(m) for m in messages]  # validate before any I/O
        if not outgoing:
            return
        with self._errors(entity):
            sender = self._sender(path)
            try:
                with sender.lock:
                    sdk: ServiceBusSender = sender.sdk  # type: ignore[assignment]
                    # A list goes as one batch transfer: all or nothing.
                    sdk.send_messages(outgoing[0] if len(outgoing) == 1 else outgoing, timeout=self._timeout)
            except (ServiceBusError, AzureError):
                self._drop_sender(path, sender)  # a broken link: the next send opens a fresh one
                raise

    def receive(self, entity: str, max_messages: int = 1, max_wait: float = 0.0) -> list[ReceivedMessage]:
        if max_messages < 1:
            raise ValueError("max_messages must be at least 1")
        path = _Path.parse(entity)
        deadline = time.monotonic() + max(max_wait, MIN_RECEIVE_WAIT)
        out: list[ReceivedMessage] = []
        with self._errors(entity), self._checkout(path) as receiver:
            sdk: ServiceBusReceiver = receiver.sdk  # type: ignore[assignment]
            while not out:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                # One message per call whatever max_messages asks ("up to"): a receive of several leaves
                # link credit open, and what the broker sends afterwards waits in this receiver's buffer
                # while its lock runs (test_all_azure_adapters.py lost a job event that way).
                got = sdk.receive_messages(max_message_count=1, max_wait_time=max(remaining, MIN_RECEIVE_WAIT))
                now = datetime.now(UTC)
                for message in got:
                    received = _from_sdk(message, locked=True)
                    if received.locked_until is not None and received.locked_until <= now:
                        continue  # its lock ran out while buffered: the broker has it again
                    with self._lock:
                        self._held[received.lock_token] = _Held(receiver, message, received.locked_until)
                    out.append(received)
                if not got:
                    break  # the SDK waited the whole remaining time
        self._prune_held()
        return out

    def peek(self, entity: str, max_messages: int = 1) -> list[ReceivedMessage]:
        if max_messages < 1:
            raise ValueError("max_messages must be at least 1")
        path = _Path.parse(entity)
        with self._errors(entity), self._checkout(path) as receiver:
            sdk: ServiceBusReceiver = receiver.sdk  # type: ignore[assignment]
            # From the first sequence number: without one the SDK continues after its last peek.
            got = sdk.peek_messages(max_message_count=max_messages, sequence_number=1, timeout=self._timeout)
        return [_from_sdk(m, locked=False) for m in got]

    def complete(self, entity: str, message: ReceivedMessage) -> None:
        self._settle(entity, message, lambda r, m: r.complete_message(m))

    def abandon(self, entity: str, message: ReceivedMessage) -> None:
        self._settle(entity, message, lambda r, m: r.abandon_message(m))

    def dead_letter(self, entity: str, message: ReceivedMessage, reason: str, description: str = "") -> None:
        self._settle(entity, message, lambda r, m: r.dead_letter_message(
            m, reason=reason, error_description=description))

    def renew_lock(self, entity: str, message: ReceivedMessage) -> datetime:
        held = self._holding(message)
        with self._errors(entity, message), held.receiver.lock:
            sdk: ServiceBusReceiver = held.receiver.sdk  # type: ignore[assignment]
            until = sdk.renew_message_lock(held.message, timeout=self._timeout)
        held.locked_until = until
        return until

    def _settle(self, entity: str, message: ReceivedMessage,
                action: Callable[[ServiceBusReceiver, ServiceBusReceivedMessage], None]) -> None:
        held = self._holding(message)
        try:
            with self._errors(entity, message), held.receiver.lock:
                action(held.receiver.sdk, held.message)  # type: ignore[arg-type]
        finally:
            with self._lock:
                self._held.pop(message.lock_token, None)

    def _holding(self, message: ReceivedMessage) -> _Held:
        with self._lock:
            held = self._held.get(message.lock_token) if message.lock_token else None
        if held is None or held.receiver.closed:
            raise _lock_lost(message)
        return held

    def _prune_held(self) -> None:
        """Forget locks that ran out long ago (messages received but never settled)."""
        horizon = datetime.now(UTC) - timedelta(minutes=5)
        with self._lock:
            stale = [token for token, held in self._held.items()
                     if held.locked_until is not None and held.locked_until < horizon]
            for token in stale:
                del self._held[token]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            handlers = list(self._senders.values()) + [r for rs in self._receivers.values() for r in rs]
            self._senders.clear()
            self._receivers.clear()
            self._held.clear()
            closing = list(self._closing)
        _close_all(handlers)
        for thread in closing:  # the client's own close would close those handlers a second time
            thread.join(timeout=self._timeout)
        self._client.close()
        self._admin.close()

    # -- cached handlers ----------------------------------------------------------------------------

    def _sender(self, path: _Path) -> _Handler:
        with self._lock:
            self._check_open()
            sender = self._senders.get(path.key)
        if sender is None:
            self._require(path)
            # A topic's sender is the same link as a queue's. Opened outside the cache lock.
            made = _Handler(self._client.get_queue_sender(path.entity).__enter__())
            with self._lock:
                sender = self._senders.setdefault(path.key, made)
            if sender is not made:
                made.close()  # another thread was first
        return sender

    def _close_later(self, handlers: Sequence[_Handler]) -> None:
        """Close handlers nobody needs any more in the background (close() waits for them)."""
        if not handlers:
            return
        thread = threading.Thread(target=_close_all, args=(list(handlers),), daemon=True)
        with self._lock:
            self._closing = [t for t in self._closing if t.is_alive()] + [thread]
        thread.start()

    def _drop_sender(self, path: _Path, sender: _Handler) -> None:
        with self._lock:
            if self._senders.get(path.key) is sender:
                del self._senders[path.key]
        self._close_later([sender])

    @contextmanager
    def _checkout(self, path: _Path) -> Iterator[_Handler]:
        """A receiver of the entity for this thread's exclusive use: its last one if free, else any
        free one, else a new one (up to RECEIVERS_PER_ENTITY, then wait for the preferred one)."""
        preferred: dict[str, _Handler] = self._preferred.__dict__.setdefault("receivers", {})
        with self._lock:
            self._check_open()
            pool = self._receivers.setdefault(path.key, [])
            candidates = [r for r in [preferred.get(path.key)] if r is not None and r in pool]
            candidates += [r for r in pool if r not in candidates]
            chosen = next((r for r in candidates if r.lock.acquire(blocking=False)), None)
            make_new = chosen is None and len(pool) < RECEIVERS_PER_ENTITY
        if make_new:  # opened outside the cache lock: it takes round trips
            chosen = _Handler(self._new_receiver(path))
            chosen.lock.acquire()
            with self._lock:
                self._receivers.setdefault(path.key, []).append(chosen)
        elif chosen is None:
            chosen = candidates[0]
            if not chosen.lock.acquire(timeout=self._timeout):
                raise MessagingError(f"no receiver of {path.key!r} became free in {self._timeout} s")
        preferred[path.key] = chosen
        try:
            yield chosen
        except (ServiceBusError, AzureError):
            self._discard(path, chosen)  # a broken link: the next call opens a fresh one
            raise
        finally:
            chosen.lock.release()

    def _new_receiver(self, path: _Path) -> ServiceBusReceiver:
        """An opened receiver: opening inside a receive would count against (and often exceed) its
        short wait, so the link is opened here with the full operation timeout."""
        self._require(path)
        sub_queue = ServiceBusSubQueue.DEAD_LETTER if path.dead_letter else None
        if path.subscription is not None:
            receiver = self._client.get_subscription_receiver(path.entity, path.subscription, sub_queue=sub_queue,
                                                              prefetch_count=0)
        else:
            receiver = self._client.get_queue_receiver(path.entity, sub_queue=sub_queue, prefetch_count=0)
        return receiver.__enter__()

    def _discard(self, path: _Path, receiver: _Handler) -> None:
        with self._lock:
            pool = self._receivers.get(path.key, [])
            if receiver in pool:
                pool.remove(receiver)
        receiver.closed = True
        self._close_later([receiver])

    def _forget(self, entity: str) -> None:
        """Close the cached handlers of a queue or topic (and its subscriptions) being deleted."""
        parent = _Path.parse(entity)
        prefix = parent.key
        with self._lock:
            gone: list[_Handler] = []
            for key in [k for k in self._senders if _belongs(k, prefix)]:
                gone.append(self._senders.pop(key))
            for key in [k for k in self._receivers if _belongs(k, prefix)]:
                gone += self._receivers.pop(key)
            for token in [t for t, h in self._held.items() if h.receiver in gone]:
                del self._held[token]
        # In the background: the entity is gone, nothing waits on these links, and a close takes
        # several round trips (the SDK polls every 50 ms for each).
        self._close_later(gone)

    def _require(self, path: _Path) -> None:
        """EntityNotFound unless the entity exists. Checked before opening a link: a refused attach
        reaches the SDK after it has reported the link open, and then surfaces as a vague error
        on a later call (a receive even returns nothing), never as "not found"."""
        try:
            self._runtime(path)
        except ResourceNotFoundError as exc:
            raise EntityNotFound(f"{path.key!r} does not exist") from exc

    def _check_open(self) -> None:
        if self._closed:
            raise MessagingError("the messaging adapter is closed")

    @contextmanager
    def _errors(self, entity: str, message: ReceivedMessage | None = None) -> Iterator[None]:
        """Translate the SDK's exceptions into the port's."""
        try:
            yield
        except (MessageLockLostError, MessageAlreadySettled) as exc:
            raise _lock_lost(message) from exc
        except MessagingEntityNotFoundError as exc:
            raise EntityNotFound(f"{entity!r} does not exist") from exc
        except (ServiceBusError, AzureError) as exc:
            if _looks_not_found(exc) or not self._exists_quietly(entity):
                raise EntityNotFound(f"{entity!r} does not exist") from exc
            raise MessagingError(f"Service Bus call on {entity!r} failed: {exc}") from exc

    def _exists_quietly(self, entity: str) -> bool:
        """Whether the entity exists, for telling "deleted meanwhile" from other failures."""
        try:
            return self.entity_exists(entity)
        except MessagingError:
            return True  # unknown: report the original failure


# -- conversions -------------------------------------------------------------------------------------


def _to_sdk(message: OutgoingMessage) -> ServiceBusMessage:
    if not isinstance(message.body, (bytes, bytearray, memoryview)):
        raise TypeError(f"a message body must be bytes, not {type(message.body).__name__}")
    properties: dict[str | bytes, Any] = {}
    for key, value in message.application_properties.items():
        if not isinstance(key, str) or not isinstance(value, (str, int, float, bool)):
            raise TypeError(f"application property {key!r}: values must be str, int, float or bool")
        properties[key] = value  # ints fit in 32 bits (OutgoingMessage checks): the SDK's AMQP int
    scheduled = message.scheduled_enqueue_time
    if scheduled is not None and scheduled.tzinfo is None:
        raise ValueError("scheduled_enqueue_time must be timezone-aware")
    return ServiceBusMessage(
        bytes(message.body), message_id=message.message_id or uuid.uuid4().hex,
        application_properties=properties or None, correlation_id=message.correlation_id,
        subject=message.subject, reply_to=message.reply_to, scheduled_enqueue_time_utc=scheduled,
        session_id=message.session_id, reply_to_session_id=message.reply_to_session_id)


def _from_sdk(message: ServiceBusReceivedMessage, *, locked: bool) -> ReceivedMessage:
    properties = _properties(message.application_properties or {})
    reason = properties.get(_DEAD_LETTER_REASON)
    description = properties.get(_DEAD_LETTER_DESCRIPTION)
    enqueued = message.enqueued_time_utc or datetime.now(UTC)
    return ReceivedMessage(
        body=b"".join(message.body) if not isinstance(message.body, bytes) else message.body,
        message_id=str(message.message_id or ""),
        lock_token=str(message.lock_token) if locked and message.lock_token else "",
        # The AMQP header counts earlier attempts (absent on a first delivery); the port counts this one.
        delivery_count=(message.delivery_count or 0) + 1 if locked else (message.delivery_count or 0),
        sequence_number=int(message.sequence_number or 0),
        enqueued_time=_aware(enqueued),
        locked_until=_aware(message.locked_until_utc) if locked and message.locked_until_utc else None,
        application_properties=properties,
        correlation_id=_text(message.correlation_id),
        subject=_text(message.subject),
        reply_to=_text(message.reply_to),
        session_id=_text(message.session_id),
        reply_to_session_id=_text(message.reply_to_session_id),
        dead_letter_reason=str(reason) if reason is not None else None,
        dead_letter_description=str(description) if description is not None else None,
    )


def _properties(raw: Mapping[Any, Any]) -> dict[str, PropertyValue]:
    """Received application properties come back with bytes keys and bytes for strings."""
    out: dict[str, PropertyValue] = {}
    for key, value in raw.items():
        name = key.decode() if isinstance(key, bytes) else str(key)
        out[name] = value.decode() if isinstance(value, bytes) else value
    return out


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _lock_lost(message: ReceivedMessage | None) -> LockLost:
    if message is not None and not message.lock_token:
        return LockLost(f"message {message.message_id!r} was peeked, not received: it holds no lock")
    name = repr(message.message_id) if message is not None else ""
    return LockLost(f"the lock on message {name} expired or the message was settled")


def _looks_not_found(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "not-found" in text or "could not be found" in text or "not found" in text


def _belongs(key: str, prefix: str) -> bool:
    return key == prefix or key.startswith(prefix + "/")


def _close_all(handlers: Sequence[_Handler]) -> None:
    """Close handlers side by side: closing a receiver drains its link, which takes a few idle
    socket reads, so one after the other would add up."""
    threads = [threading.Thread(target=h.close, daemon=True) for h in handlers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=OPERATION_TIMEOUT)


__all__ = ["ServiceBusMessaging"]
