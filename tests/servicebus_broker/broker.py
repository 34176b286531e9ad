"""The test broker's AMQP 1.0 side, in Service Bus's dialect, on python-qpid-proton.

One TCP port serves both sides of the namespace, as one connection string names one endpoint:
a small accept loop peeks at the first bytes of each connection; "AMQP" (a protocol header) goes
to the proton reactor, anything else is an HTTP request for the ATOM management API (atom.py).

Proton is single-threaded: every AMQP object is touched only on the reactor thread. Sockets
accepted by the accept loop reach it through an EventInjector. The Namespace (store.py) is the
only state shared with the HTTP side, and it locks itself.

What a Service Bus client (azure-servicebus 7.x, pyamqp) needs and this side answers:
- `$cbs` put-token: always accepted (status-code 202, correlation-id = the request's message-id);
- sender links to a queue or topic: a plain message, or a batch (message format 0x80013700, whose
  data sections each hold one encoded message: split here, since proton does not expose the format);
- receiver links from a queue, a subscription or a `$deadletterqueue`: peek-lock (the lock token
  is the delivery tag, a GUID in .NET's little-endian byte layout) or receive-and-delete (sender-settle-mode settled); the client settles in
  receiver-settle-mode *second*, so a disposition is applied, echoed with its outcome, then settled;
- `<entity>/$management` request/response: renew-lock, peek, schedule, cancel, update-disposition.
Unknown entities get their attach refused with amqp:not-found.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from proton import (
    UNDESCRIBED,
    Array,
    Condition,
    Data,
    Delivery,
    Endpoint,
    Link,
    Message,
    Transport,
    symbol,
    timestamp,
)
from proton._events import Event
from proton._handler import Handler
from proton._handlers import IOHandler
from proton._reactor import ApplicationEvent, Container, EventInjector

from .atom import AtomServer
from .store import DEAD_LETTER_DESCRIPTION, DEAD_LETTER_REASON, LockLost, Namespace, NotFound

_LOG = logging.getLogger(__name__)

CBS_NODE = "$cbs"
MANAGEMENT_SUFFIX = "/$management"
TICK_SECONDS = 0.02  # how often lock expiry and scheduled messages are looked at
RECEIVE_CREDIT = 100  # credit kept open on links that clients send on

LOCK_LOST = symbol("com.microsoft:message-lock-lost")
NOT_FOUND = symbol("amqp:not-found")
_DATA = 0x75  # descriptor code of a data section
_SECTION_CODES = range(0x70, 0x79)  # header .. footer


def _entity_path(address: str | None) -> str:
    """The entity part of a link address: clients may send 'amqp://host:port/queue' or 'queue'."""
    if not address:
        return ""
    if "://" in address:
        address = address.split("://", 1)[1]
        address = address.split("/", 1)[1] if "/" in address else ""
    return address.strip("/")


def _ms(seconds: float) -> timestamp:
    return timestamp(int(seconds * 1000))


def _get(mapping: Any, key: str) -> Any:
    """A value of an AMQP map whose keys may be strings or symbols."""
    if not isinstance(mapping, dict):
        return None
    for candidate, value in mapping.items():
        if str(candidate) == key:
            return value
    return None


def split_batch(raw: bytes) -> list[bytes]:
    """The messages in what a client sent: a batch's inner messages, or the message itself.

    A batch is a message whose body is data sections that each hold an encoded message (format
    0x80013700; it may also carry the first message's properties). A plain message's data section
    is opaque bytes and is not mistaken for one unless it is itself a whole encoded AMQP message,
    which a client would only send inside a batch.
    """
    inner: list[bytes] = []
    rest = memoryview(raw)
    while rest:
        section = Data()
        used = section.decode(bytes(rest))
        rest = rest[used:]
        section.rewind()
        if not section.next() or section.type() != Data.DESCRIBED:
            return [raw]
        value = section.get_object()
        if value.descriptor != _DATA:
            continue  # a batch may carry the first message's properties too
        body = bytes(value.value)
        if not _is_encoded_message(body):
            return [raw]  # opaque bytes: a plain message
        inner.append(body)
    return inner or [raw]


def _is_encoded_message(value: bytes) -> bool:
    if len(value) < 3 or value[0] != 0x00 or value[1] != 0x53 or value[2] not in _SECTION_CODES:
        return False
    try:
        Message().decode(value)
    except Exception:  # noqa: BLE001 - not a message: opaque bytes
        return False
    return True


@dataclass
class LinkInfo:
    """What a link is for, stored on the proton link (its attributes live as long as it does)."""

    kind: str  # "cbs" | "management" | "entity"
    path: str  # the entity path ("" for $cbs)
    receive_and_delete: bool = False


class AmqpHandler(Handler):  # type: ignore[misc]
    """Reactor-thread handler for every connection."""

    def __init__(self, namespace: Namespace) -> None:
        super().__init__()
        self.namespace = namespace
        self.consumers: set[Link] = set()  # sender links that deliver messages to clients
        self.adoptions: queue.SimpleQueue[socket.socket] = queue.SimpleQueue()  # filled by the accept loop
        self.container: Container | None = None

    # -- reactor ---------------------------------------------------------------------------------------
    def on_reactor_init(self, event: Event) -> None:
        self.container = event.container
        event.container.schedule(TICK_SECONDS, self)

    def on_timer_task(self, event: Event) -> None:
        try:
            self.namespace.tick()
            self.pump_all()
        finally:
            event.container.schedule(TICK_SECONDS, self)

    def on_adopt(self, event: ApplicationEvent) -> None:
        """Take over the sockets the accept loop found speaking AMQP (as proton's Acceptor would)."""
        assert self.container is not None
        while not self.adoptions.empty():
            self._adopt(self.container, self.adoptions.get())

    def _adopt(self, container: Container, sock: socket.socket) -> None:
        sock.setblocking(False)
        connection = container.connection(self)
        connection._acceptor = self  # "a socket is already assigned": proton must not dial out for it
        transport = Transport(Transport.SERVER)
        sasl = transport.sasl()
        sasl.allow_insecure_mechs = True
        sasl.allowed_mechs("ANONYMOUS PLAIN")
        transport.bind(connection)
        selectable = container.selectable(delegate=sock)
        selectable._transport = transport
        transport._selectable = selectable
        IOHandler.update(transport, selectable, container.now)

    def on_stop(self, event: ApplicationEvent) -> None:
        assert self.container is not None
        self.container.stop()

    # -- endpoints -------------------------------------------------------------------------------------
    def on_connection_remote_open(self, event: Event) -> None:
        if event.connection.state & Endpoint.LOCAL_UNINIT:
            event.connection.open()

    def on_session_remote_open(self, event: Event) -> None:
        if event.session.state & Endpoint.LOCAL_UNINIT:
            event.session.open()

    def on_link_remote_open(self, event: Event) -> None:
        link: Link = event.link
        if not link.state & Endpoint.LOCAL_UNINIT:
            return
        address = link.remote_target.address if link.is_receiver else link.remote_source.address
        path = _entity_path(address)
        if path == CBS_NODE:
            info = LinkInfo("cbs", "")
        elif path.lower().endswith(MANAGEMENT_SUFFIX):
            info = LinkInfo("management", path[: -len(MANAGEMENT_SUFFIX)])
        else:
            info = LinkInfo("entity", path, receive_and_delete=link.is_sender
                            and link.remote_snd_settle_mode == Link.SND_SETTLED)
        if info.kind != "cbs" and not self._attachable(info, link):
            link.open()  # with no local terminus: the attach is refused
            link.condition = Condition(NOT_FOUND, f"The messaging entity '{info.path}' could not be found.")
            link.close()
            return
        link.sb = info
        link.source.copy(link.remote_source)
        link.target.copy(link.remote_target)
        link.snd_settle_mode = link.remote_snd_settle_mode
        link.rcv_settle_mode = link.remote_rcv_settle_mode
        link.open()
        if link.is_receiver:
            link.flow(RECEIVE_CREDIT)
        elif info.kind == "entity":
            self.consumers.add(link)

    def _attachable(self, info: LinkInfo, link: Link) -> bool:
        if not self.namespace.exists(info.path):
            return False
        if info.kind == "entity":
            # Clients send to queues and topics, and receive from queues and subscriptions.
            is_topic = self.namespace.is_topic(info.path)
            sends_to_subscription = link.is_receiver and "/" in info.path.strip("/")
            return not (link.is_sender and is_topic) and not sends_to_subscription
        return True

    def on_link_remote_close(self, event: Event) -> None:
        self.consumers.discard(event.link)
        if event.link.state & Endpoint.LOCAL_ACTIVE:
            event.link.close()

    def on_session_remote_close(self, event: Event) -> None:
        if event.session.state & Endpoint.LOCAL_ACTIVE:
            event.session.close()

    def on_connection_remote_close(self, event: Event) -> None:
        self._forget(event.connection)
        if event.connection.state & Endpoint.LOCAL_ACTIVE:
            event.connection.close()

    def on_transport_closed(self, event: Event) -> None:
        if event.connection is not None:
            self._forget(event.connection)
            event.connection.free()

    def _forget(self, connection: Any) -> None:
        self.consumers = {link for link in self.consumers if link.connection != connection}

    def on_link_flow(self, event: Event) -> None:
        link: Link = event.link
        if link.is_sender and link in self.consumers:
            self.pump(link)
        if link.is_sender and link.drain_mode:
            link.drained()

    # -- deliveries ------------------------------------------------------------------------------------
    def on_delivery(self, event: Event) -> None:
        delivery: Delivery = event.delivery
        link: Link = delivery.link
        info: LinkInfo | None = getattr(link, "sb", None) if "sb" in link._attrs else None
        if info is None:
            return
        if link.is_receiver:
            self._incoming(link, delivery, info)
        elif delivery.updated and not delivery.settled:
            self._settle(link, delivery, info)

    def _incoming(self, link: Link, delivery: Delivery, info: LinkInfo) -> None:
        if delivery.partial:
            return
        raw = bytes(link.recv(delivery.pending) or b"")
        link.advance()
        if info.kind == "entity":
            try:
                self.namespace.send(info.path, [_envelope(m) for m in split_batch(raw)])
                delivery.update(Delivery.ACCEPTED)
                self.pump_all()
            except NotFound:
                delivery.local.condition = Condition(NOT_FOUND, f"'{info.path}' does not exist")
                delivery.update(Delivery.REJECTED)
        else:
            request = Message()
            request.decode(raw)
            reply = self._cbs(request) if info.kind == "cbs" else self._management(info.path, request)
            delivery.update(Delivery.ACCEPTED)
            self._reply(link, info, request, reply)
        delivery.settle()
        if link.credit < RECEIVE_CREDIT // 2:
            link.flow(RECEIVE_CREDIT - link.credit)

    def _settle(self, link: Link, delivery: Delivery, info: LinkInfo) -> None:
        """Apply a client's disposition, echo the outcome applied, then settle (rcv-settle-mode second)."""
        if info.receive_and_delete:
            delivery.settle()
            return
        state = delivery.remote_state
        try:
            token: uuid.UUID = delivery.lock_token
            if state == Delivery.ACCEPTED:
                self.namespace.complete(token)
            elif state == Delivery.REJECTED:
                condition = delivery.remote.condition
                details = condition.info if condition is not None else None
                reason = _get(details, DEAD_LETTER_REASON)
                description = _get(details, DEAD_LETTER_DESCRIPTION)
                if reason is None and condition is not None:
                    reason, description = str(condition.name), condition.description
                self.namespace.dead_letter(token, reason, description)
            elif state == Delivery.RELEASED:
                self.namespace.abandon(token, counted=False)
            elif state == Delivery.MODIFIED:
                # delivery-failed: an abandon; undeliverable-here (defer) is not supported: also abandoned.
                self.namespace.abandon(token, counted=bool(delivery.remote.failed))
                delivery.local.failed = bool(delivery.remote.failed)
            else:
                return  # a non-terminal state: wait for the outcome
            delivery.update(state)
        except LockLost:
            delivery.local.condition = Condition(LOCK_LOST, "The lock supplied is invalid. Either the lock "
                                                 "expired, or the message has already been removed from the queue.")
            delivery.update(Delivery.REJECTED)
        delivery.settle()
        self.pump_all()

    def pump_all(self) -> None:
        for link in list(self.consumers):
            self.pump(link)

    def pump(self, link: Link) -> None:
        """Deliver available messages while the client has credit on this link."""
        info: LinkInfo = link.sb
        if not link.state & Endpoint.LOCAL_ACTIVE or not link.state & Endpoint.REMOTE_ACTIVE:
            self.consumers.discard(link)
            return
        while link.credit > 0:
            try:
                if info.receive_and_delete:
                    message = self.namespace.take(info.path)
                    if message is None:
                        return
                    delivery = link.delivery(uuid.uuid4().bytes)
                    link.send(encode_for_delivery(message, None))
                    link.advance()
                    delivery.settle()
                    continue
                acquired = self.namespace.acquire(info.path)
            except NotFound:  # deleted under the link
                link.condition = Condition(NOT_FOUND, f"'{info.path}' was deleted")
                link.close()
                self.consumers.discard(link)
                return
            if acquired is None:
                return
            assert acquired.lock_token is not None
            # Service Bus lock tokens are .NET GUIDs: the tag holds them in that (little-endian) layout.
            delivery = link.delivery(acquired.lock_token.bytes_le)
            delivery.lock_token = acquired.lock_token  # proton reads tags back as UTF-8 text: keep it here
            link.send(encode_for_delivery(acquired.message, acquired.locked_until))
            link.advance()

    # -- request/response nodes ------------------------------------------------------------------------
    def _reply(self, link: Link, info: LinkInfo, request: Message, reply: Message) -> None:
        """Send the response on the client's receiver link of the same node and connection."""
        reply.correlation_id = request.id
        reply.address = request.reply_to
        node = CBS_NODE if info.kind == "cbs" else info.path + MANAGEMENT_SUFFIX
        fallback = None
        for candidate in _links(link.connection):
            if not candidate.is_sender or "sb" not in candidate._attrs:
                continue
            if _entity_path(candidate.source.address) != node:
                continue
            if candidate.target.address == request.reply_to:
                fallback = candidate
                break
            fallback = fallback or candidate
        if fallback is None:
            _LOG.warning("no reply link for %s on this connection", node)
            return
        delivery = fallback.delivery(uuid.uuid4().bytes)
        fallback.send(reply.encode())
        fallback.advance()
        delivery.settle()

    @staticmethod
    def _cbs(request: Message) -> Message:
        return Message(properties={"status-code": 202, "status-description": "Accepted"})

    def _management(self, path: str, request: Message) -> Message:
        operation = str(_get(request.properties, "operation") or "")
        body = request.body if isinstance(request.body, dict) else {}
        try:
            if operation == "com.microsoft:renew-lock":
                tokens = [_uuid(t) for t in _items(_get(body, "lock-tokens"))]
                until = [self.namespace.renew(t) for t in tokens]
                return _ok({symbol("expirations"): Array(UNDESCRIBED, Data.TIMESTAMP, *[_ms(u) for u in until])})
            if operation == "com.microsoft:peek-message":
                start = int(_get(body, "from-sequence-number") or 0)
                count = int(_get(body, "message-count") or 1)
                found = self.namespace.peek(path, start, count)
                if not found:
                    return _status(204, "No messages")
                return _ok({symbol("messages"): [{symbol("message"): encode_for_delivery(m, None, peeked=True)}
                                                 for m in found]})
            if operation == "com.microsoft:schedule-message":
                entries = _items(_get(body, "messages"))
                numbers = self.namespace.send(path, [_envelope(bytes(_get(e, "message"))) for e in entries])
                return _ok({symbol("sequence-numbers"): Array(UNDESCRIBED, Data.LONG, *numbers)})
            if operation == "com.microsoft:cancel-scheduled-message":
                self.namespace.cancel_scheduled(path, [int(n) for n in _items(_get(body, "sequence-numbers"))])
                return _ok({})
            if operation == "com.microsoft:update-disposition":
                return self._update_disposition(body)
            return _status(501, f"operation {operation!r} is not supported by the test broker",
                           "com.microsoft:not-implemented")
        except NotFound:
            return _status(404, f"'{path}' does not exist", "amqp:not-found")
        except LockLost:
            return _status(410, "The lock supplied is invalid.", str(LOCK_LOST))

    def _update_disposition(self, body: Any) -> Message:
        status = str(_get(body, "disposition-status") or "")
        for token in [_uuid(t) for t in _items(_get(body, "lock-tokens"))]:
            if status == "completed":
                self.namespace.complete(token)
            elif status == "abandoned":
                self.namespace.abandon(token)
            elif status == "suspended":
                self.namespace.dead_letter(token, _get(body, "deadletter-reason"),
                                           _get(body, "deadletter-description"))
            else:
                return _status(501, f"disposition {status!r} is not supported", "com.microsoft:not-implemented")
        self.pump_all()
        return _ok({})


def _links(connection: Any) -> list[Link]:
    found = []
    link = connection.link_head(Endpoint.LOCAL_ACTIVE)
    while link is not None:
        found.append(link)
        link = link.next(Endpoint.LOCAL_ACTIVE)
    return found


def _ok(body: dict[Any, Any]) -> Message:
    return Message(body=body, properties={"statusCode": 200, "statusDescription": "OK"})


def _status(code: int, description: str, condition: str | None = None) -> Message:
    properties: dict[str, Any] = {"statusCode": code, "statusDescription": description}
    if condition:
        properties["errorCondition"] = symbol(condition)
    return Message(properties=properties)


def _items(value: Any) -> list[Any]:
    """The elements of an AMQP array or list (None: none)."""
    if value is None:
        return []
    return list(value.elements) if isinstance(value, Array) else list(value)


def _uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(bytes=bytes(value))


def _envelope(raw: bytes) -> tuple[Any, bytes, dict[Any, Any]]:
    """(message id, encoded message, message annotations) of one message a client sent."""
    message = Message()
    message.decode(raw)
    annotations = {str(k): v for k, v in (message.annotations or {}).items()}
    return message.id, raw, annotations


def encode_for_delivery(stored: Any, locked_until: float | None, *, peeked: bool = False) -> bytes:
    """The stored message with what the broker adds: header delivery count and x-opt-* annotations."""
    message = Message()
    message.decode(stored.raw)
    # The AMQP header counts earlier failed attempts; a peek shows the count so far.
    message.delivery_count = stored.deliveries if peeked else max(0, stored.deliveries - 1)
    annotations = dict(message.annotations or {})
    annotations[symbol("x-opt-sequence-number")] = int(stored.seq)
    annotations[symbol("x-opt-enqueued-time")] = _ms(stored.enqueued_at)
    if stored.visible_at > stored.enqueued_at + 0.001:
        annotations[symbol("x-opt-scheduled-enqueue-time")] = _ms(stored.visible_at)
    if locked_until is not None:
        annotations[symbol("x-opt-locked-until")] = _ms(locked_until)
    if stored.dead_letter is not None:
        annotations[symbol("x-opt-deadletter-source")] = "queue"
    message.annotations = annotations
    if stored.dead_letter is not None:
        reason, description = stored.dead_letter
        properties = dict(message.properties or {})
        properties[DEAD_LETTER_REASON] = reason
        properties[DEAD_LETTER_DESCRIPTION] = description
        message.properties = properties
    return message.encode()


class Broker:
    """The whole test namespace on one port: AMQP (proton) and the ATOM management API (HTTP)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.namespace = Namespace()
        self.host = host
        self._listener = socket.create_server((host, port))
        self.port: int = self._listener.getsockname()[1]
        self._handler = AmqpHandler(self.namespace)
        self._container = Container(self._handler)
        self._injector = EventInjector()
        self._container.selectable(self._injector)
        self._atom = AtomServer(self.namespace, f"{host}:{self.port}")
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()

    @property
    def connection_string(self) -> str:
        """What a client needs: plain AMQP and HTTP (the emulator flag) to this host and port."""
        return (f"Endpoint=sb://{self.host}:{self.port};SharedAccessKeyName=RootManageSharedAccessKey;"
                "SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;")

    def start(self) -> Broker:
        for target, name in ((self._container.run, "amqp-reactor"), (self._accept_loop, "accept")):
            thread = threading.Thread(target=target, name=f"servicebus-broker-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stopping.set()
        try:
            self._listener.close()
        finally:
            self._injector.trigger(ApplicationEvent("stop"))
            for thread in self._threads:
                thread.join(timeout=5)
            self._atom.server_close()

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, peer = self._listener.accept()
            except OSError:
                return  # the listener was closed
            threading.Thread(target=self._route, args=(sock, peer), daemon=True).start()

    def _route(self, sock: socket.socket, peer: Any) -> None:
        """Hand a new connection to the AMQP reactor or the HTTP server, by its first bytes."""
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(10)
        head = b""
        deadline = time.monotonic() + 10
        try:
            while len(head) < 4 and time.monotonic() < deadline:
                head = sock.recv(4, socket.MSG_PEEK)
                if not head:
                    break
                if len(head) < 4:
                    time.sleep(0.001)
        except OSError:
            head = b""
        if not head:
            sock.close()
            return
        if head == b"AMQP":
            sock.settimeout(None)
            self._handler.adoptions.put(sock)
            self._injector.trigger(ApplicationEvent("adopt"))
        else:
            sock.settimeout(None)
            self._atom.process_request(sock, peer)
