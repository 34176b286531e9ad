"""An AMQP 1.0 server in Azure Service Bus's dialect, on python-qpid-proton, for one namespace.

One TCP port: a small accept loop peeks at the first bytes of each connection; "AMQP" (a protocol
header) goes to the proton reactor; anything else goes to the optional `other` callable (the
tests' broker serves its HTTP management API there) or is closed.

Proton is single-threaded: every AMQP object is touched only on the reactor thread. Sockets
accepted by the accept loop reach it through an EventInjector. The namespace (namespace.py) is
called on the reactor thread only.

What a Service Bus client (azure-servicebus 7.x, pyamqp) needs and this answers:
- `$cbs` put-token: accepted (202), or, when an `authorize(token, audience)` callable is given,
  checked: a refused token gets 401 and links to entities it does not cover are refused;
- sender links to a queue or topic, carrying plain messages or batches (wire.split_batch);
- receiver links from a queue, a subscription or a `$deadletterqueue`: peek-lock (the lock token
  is the delivery tag, a GUID in .NET's little-endian byte layout) or receive-and-delete
  (sender-settle-mode settled); the client settles in receiver-settle-mode *second*, so a
  disposition is applied, echoed with its outcome, then settled;
- `<entity>/$management` request/response (nodes.py).
Unknown entities get their attach refused with amqp:not-found.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from proton import Condition, Connection, Delivery, Endpoint, Link, Message, Session, Transport, symbol
from proton._events import Event
from proton._handler import Handler
from proton._handlers import IOHandler
from proton._reactor import ApplicationEvent, Container, EventInjector

from shared.localhost.amqp import nodes
from shared.localhost.amqp.namespace import Acquired, AmqpNamespace, LockLost, NotFound
from shared.localhost.amqp.paths import covers, entity_path
from shared.localhost.amqp.wire import (
    DEAD_LETTER_DESCRIPTION,
    DEAD_LETTER_REASON,
    encode_for_delivery,
    envelope,
    get,
    split_batch,
)

_LOG = logging.getLogger(__name__)

CBS_NODE = "$cbs"
MANAGEMENT_SUFFIX = "/$management"
TICK_SECONDS = 0.02  # how often the namespace's tick runs and consumers are served
RECEIVE_CREDIT = 100  # credit kept open on links that clients send on
DELIVERY_BATCH = 50  # messages locked for a receiver in one go (at most its credit): one write, not one each
ROUTE_TIMEOUT = 10.0  # how long a new connection may take to send its first bytes
ACCEPT_POLL = 1.0  # the accept loop looks at the stop flag at least this often

LOCK_LOST = symbol(nodes.LOCK_LOST)
NOT_FOUND = symbol("amqp:not-found")
UNAUTHORIZED = symbol("amqp:unauthorized-access")
INTERNAL_ERROR = symbol("amqp:internal-error")

OtherProtocol = Callable[[socket.socket, Any], None]  # (socket, peer address): serves a non-AMQP connection


@dataclass
class LinkInfo:
    """What a link is for, stored on the proton link (its attributes live as long as it does)."""

    kind: str  # "cbs" | "management" | "entity"
    path: str  # the entity path ("" for $cbs)
    receive_and_delete: bool = False


class AmqpHandler(Handler):
    """Reactor-thread handler for every connection."""

    def __init__(self, namespace: AmqpNamespace, authorize: nodes.Authorize | None = None) -> None:
        super().__init__()
        self.namespace = namespace
        self.authorize = authorize
        self.consumers: set[Link] = set()  # sender links that deliver messages to clients
        self.adoptions: queue.SimpleQueue[socket.socket] = queue.SimpleQueue()  # filled by the accept loop
        self.sockets: list[socket.socket] = []  # adopted, to close any still open at the end
        self.container: Container | None = None

    # -- reactor ---------------------------------------------------------------------------------------
    def on_reactor_init(self, event: Event) -> None:
        self.container = event.container
        event.container.schedule(TICK_SECONDS, self)

    def on_timer_task(self, event: Event) -> None:
        try:
            self.namespace.tick()
            self.pump_all()
        except Exception:  # noqa: BLE001 - the reactor must outlive a failing namespace
            _LOG.exception("AMQP server: housekeeping failed")
        finally:
            event.container.schedule(TICK_SECONDS, self)

    def on_adopt(self, event: ApplicationEvent) -> None:
        """Take over the sockets the accept loop found speaking AMQP (as proton's Acceptor would)."""
        assert self.container is not None
        self.sockets = [s for s in self.sockets if s.fileno() != -1]
        while not self.adoptions.empty():
            sock = self.adoptions.get()
            self.sockets.append(sock)
            self._adopt(self.container, sock)

    def _adopt(self, container: Container, sock: socket.socket) -> None:
        sock.setblocking(False)
        connection = container.connection(self)
        # "A socket is already assigned": proton must not dial out for it (a private field, typed None).
        connection._acceptor = self  # type: ignore[assignment]
        transport = Transport(Transport.SERVER)
        sasl = transport.sasl()
        sasl.allow_insecure_mechs = True
        sasl.allowed_mechs("ANONYMOUS PLAIN")
        transport.bind(connection)
        selectable = container.selectable(delegate=sock)
        selectable._transport = transport  # type: ignore[attr-defined]  # proton's Acceptor sets it so too
        transport._selectable = selectable
        IOHandler.update(transport, selectable, container.now)

    def on_stop(self, event: ApplicationEvent) -> None:
        assert self.container is not None
        self.container.stop()

    # -- endpoints -------------------------------------------------------------------------------------
    def on_connection_remote_open(self, event: Event) -> None:
        if _connection(event).state & Endpoint.LOCAL_UNINIT:
            _connection(event).grants = []  # entity paths its CBS tokens cover
            _connection(event).open()

    def on_session_remote_open(self, event: Event) -> None:
        if _session(event).state & Endpoint.LOCAL_UNINIT:
            _session(event).open()

    def on_link_remote_open(self, event: Event) -> None:
        link = _link(event)
        if not link.state & Endpoint.LOCAL_UNINIT:
            return
        address = link.remote_target.address if link.is_receiver else link.remote_source.address
        path = entity_path(address)
        if path == CBS_NODE:
            info = LinkInfo("cbs", "")
        elif path.lower().endswith(MANAGEMENT_SUFFIX):
            info = LinkInfo("management", path[: -len(MANAGEMENT_SUFFIX)])
        else:
            info = LinkInfo("entity", path, receive_and_delete=link.is_sender
                            and link.remote_snd_settle_mode == Link.SND_SETTLED)
        if info.kind != "cbs":
            if not self._granted(link.connection, info.path):
                self._refuse(link, UNAUTHORIZED, f"Unauthorized access to '{info.path}': put a valid token "
                             "on $cbs first.")
                return
            if not self._attachable(info, link):
                self._refuse(link, NOT_FOUND, f"The messaging entity '{info.path}' could not be found.")
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

    @staticmethod
    def _refuse(link: Link, name: symbol, description: str) -> None:
        """Attach, then detach at once with the reason, as Service Bus does: its clients take an attach
        without termini for a broken link and never read the reason."""
        link.source.copy(link.remote_source)
        link.target.copy(link.remote_target)
        link.open()
        link.condition = Condition(name, description)
        link.close()

    def _granted(self, connection: Any, path: str) -> bool:
        if self.authorize is None:
            return True
        grants: list[str] = connection.grants if "grants" in connection._attrs else []
        return any(covers(g, path) for g in grants)

    def _attachable(self, info: LinkInfo, link: Link) -> bool:
        try:
            if not self.namespace.exists(info.path):
                return False
            if info.kind == "entity":
                # Clients send to queues and topics, and receive from queues and subscriptions.
                is_topic = self.namespace.is_topic(info.path)
                sends_to_subscription = link.is_receiver and "/" in info.path.strip("/")
                return not (link.is_sender and is_topic) and not sends_to_subscription
        except Exception:  # noqa: BLE001 - refused rather than a dead reactor
            _LOG.exception("AMQP server: looking up %r failed", info.path)
            return False
        return True

    def on_link_remote_close(self, event: Event) -> None:
        self.consumers.discard(_link(event))
        if _link(event).state & Endpoint.LOCAL_ACTIVE:
            _link(event).close()

    def on_session_remote_close(self, event: Event) -> None:
        if _session(event).state & Endpoint.LOCAL_ACTIVE:
            _session(event).close()

    def on_connection_remote_close(self, event: Event) -> None:
        self._forget(event.connection)
        if _connection(event).state & Endpoint.LOCAL_ACTIVE:
            _connection(event).close()

    def on_transport_closed(self, event: Event) -> None:
        if event.connection is not None:
            self._forget(event.connection)
            _connection(event).free()

    def _forget(self, connection: Any) -> None:
        self.consumers = {link for link in self.consumers if link.connection != connection}

    def on_link_flow(self, event: Event) -> None:
        link = _link(event)
        if link.is_sender and link in self.consumers:
            self.pump(link)
        if link.is_sender and link.drain_mode:
            link.drained()

    # -- deliveries ------------------------------------------------------------------------------------
    def on_delivery(self, event: Event) -> None:
        delivery = _delivery(event)
        link: Link = delivery.link
        info: LinkInfo | None = link.sb if "sb" in link._attrs else None
        if info is None:
            return
        if link.is_receiver:
            self._incoming(link, delivery, info)
        elif delivery.updated and not delivery.settled:
            self._settle(delivery, info)

    def _incoming(self, link: Link, delivery: Delivery, info: LinkInfo) -> None:
        if delivery.partial:
            return
        raw = bytes(link.recv(delivery.pending) or b"")
        link.advance()
        if info.kind == "entity":
            try:
                self.namespace.send(info.path, [envelope(m) for m in split_batch(raw)])
                delivery.update(Delivery.ACCEPTED)
                self.pump_all()
            except NotFound:
                delivery.local.condition = Condition(NOT_FOUND, f"'{info.path}' does not exist")
                delivery.update(Delivery.REJECTED)
            except Exception as exc:  # noqa: BLE001 - the client hears of it; the reactor carries on
                _LOG.exception("AMQP server: sending to %r failed", info.path)
                delivery.local.condition = Condition(INTERNAL_ERROR, f"the message was not stored: {exc}")
                delivery.update(Delivery.REJECTED)
        else:
            request = Message()
            request.decode(raw)
            reply = self._cbs(link.connection, request) if info.kind == "cbs" else self._management(info.path, request)
            delivery.update(Delivery.ACCEPTED)
            self._reply(link, info, request, reply)
        delivery.settle()
        if link.credit < RECEIVE_CREDIT // 2:
            link.flow(RECEIVE_CREDIT - link.credit)

    def _cbs(self, connection: Any, request: Message) -> Message:
        reply, audience = nodes.put_token(request, self.authorize)
        if audience is not None and self.authorize is not None:
            grants: list[str] = connection.grants if "grants" in connection._attrs else []
            connection.grants = [*grants, entity_path(audience)]
        return reply

    def _management(self, path: str, request: Message) -> Message:
        try:
            reply = nodes.management(self.namespace, path, request)
        except Exception as exc:  # noqa: BLE001 - answered, not raised into the reactor
            _LOG.exception("AMQP server: a management request on %r failed", path)
            return nodes.status(500, str(exc), str(INTERNAL_ERROR))
        self.pump_all()  # a settlement may have freed messages for other receivers
        return reply

    def _settle(self, delivery: Delivery, info: LinkInfo) -> None:
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
                reason = get(details, DEAD_LETTER_REASON)
                description = get(details, DEAD_LETTER_DESCRIPTION)
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
        except Exception as exc:  # noqa: BLE001
            _LOG.exception("AMQP server: settling on %r failed", info.path)
            delivery.local.condition = Condition(INTERNAL_ERROR, f"the message was not settled: {exc}")
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
        try:
            if info.receive_and_delete:
                while link.credit > 0 and self._deliver_taken(link, info):
                    pass
            else:
                while link.credit > 0:
                    wanted = min(link.credit, DELIVERY_BATCH)
                    acquired = self.namespace.acquire_many(info.path, wanted)  # one lock for them all
                    for one in acquired:
                        self._deliver_locked(link, one)
                    if len(acquired) < wanted:
                        break
        except NotFound:  # deleted under the link
            self._detach(link, NOT_FOUND, f"'{info.path}' was deleted")
        except Exception as exc:  # noqa: BLE001
            _LOG.exception("AMQP server: receiving from %r failed", info.path)
            self._detach(link, INTERNAL_ERROR, f"receiving failed: {exc}")

    def _deliver_taken(self, link: Link, info: LinkInfo) -> bool:
        """Receive-and-delete: send the next available message; False when there is none."""
        message = self.namespace.take(info.path)
        if message is None:
            return False
        delivery = link.delivery(uuid.uuid4().bytes)  # type: ignore[arg-type]  # proton: tags typed str, sent as bytes
        link.send(encode_for_delivery(message, None))
        link.advance()
        delivery.settle()
        return True

    def _deliver_locked(self, link: Link, acquired: Acquired) -> None:
        """Send a message locked for this link's client (peek-lock)."""
        assert acquired.lock_token is not None
        # Service Bus lock tokens are .NET GUIDs: the tag holds them in that (little-endian) layout.
        delivery = link.delivery(acquired.lock_token.bytes_le)  # type: ignore[arg-type]  # as above
        delivery.lock_token = acquired.lock_token  # proton reads tags back as UTF-8 text: keep it here
        link.send(encode_for_delivery(acquired.message, acquired.locked_until))
        link.advance()

    def _detach(self, link: Link, name: symbol, description: str) -> None:
        link.condition = Condition(name, description)
        link.close()
        self.consumers.discard(link)

    # -- request/response nodes ------------------------------------------------------------------------
    def _reply(self, link: Link, info: LinkInfo, request: Message, reply: Message) -> None:
        """Send the response on the client's receiver link of the same node and connection."""
        reply.correlation_id = request.id
        if request.reply_to is not None:
            reply.address = request.reply_to
        node = CBS_NODE if info.kind == "cbs" else info.path + MANAGEMENT_SUFFIX
        chosen = None
        for candidate in _links(link.connection):
            if not candidate.is_sender or "sb" not in candidate._attrs:
                continue
            if entity_path(candidate.source.address) != node:
                continue
            if candidate.target.address == request.reply_to:
                chosen = candidate
                break
            chosen = chosen or candidate
        if chosen is None:
            _LOG.warning("AMQP server: no reply link for %s on this connection", node)
            return
        delivery = chosen.delivery(uuid.uuid4().bytes)  # type: ignore[arg-type]  # as above
        chosen.send(reply.encode())
        chosen.advance()
        delivery.settle()


# proton types each endpoint of an event as optional; a handler only gets the events that have it.
def _connection(event: Event) -> Connection:
    assert event.connection is not None
    return event.connection


def _session(event: Event) -> Session:
    assert event.session is not None
    return event.session


def _link(event: Event) -> Link:
    assert event.link is not None
    return event.link


def _delivery(event: Event) -> Delivery:
    assert event.delivery is not None
    return event.delivery


def _links(connection: Any) -> list[Link]:
    found = []
    link = connection.link_head(Endpoint.LOCAL_ACTIVE)
    while link is not None:
        found.append(link)
        link = link.next(Endpoint.LOCAL_ACTIVE)
    return found


class _QuietDisconnects(logging.Filter):
    """Drops proton's error for a write to a client that already hung up (routine at a client's close)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith("Couldn't") and ("BrokenPipe" in message or "ConnectionReset" in message))


def _quiet_proton() -> None:
    proton_log = logging.getLogger("proton")
    if not any(isinstance(f, _QuietDisconnects) for f in proton_log.filters):
        proton_log.addFilter(_QuietDisconnects())


class AmqpServer:
    """Serves one namespace over AMQP on host:port (bound at construction; 0 picks a free port)."""

    def __init__(self, namespace: AmqpNamespace, host: str = "127.0.0.1", port: int = 0, *,
                 authorize: nodes.Authorize | None = None, other: OtherProtocol | None = None) -> None:
        self.namespace = namespace
        self.host = host
        self._other = other
        self._listener = socket.create_server((host, port))
        self.port: int = self._listener.getsockname()[1]
        self._handler = AmqpHandler(namespace, authorize)
        self._container = Container(self._handler)
        self._injector = EventInjector()
        self._container.selectable(self._injector)
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()

    def start(self) -> AmqpServer:
        _quiet_proton()
        self._listener.settimeout(ACCEPT_POLL)  # here, not in the loop: a stop may close it before the loop runs
        for target, name in ((self._container.run, "reactor"), (self._accept_loop, "accept")):
            thread = threading.Thread(target=target, name=f"amqp-{name}-{self.port}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop listening and serving; connections still open are dropped."""
        self._stopping.set()
        try:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept loop at once (Linux)
            except OSError:
                pass  # elsewhere the accept loop's timeout notices
            self._listener.close()
        finally:
            self._injector.trigger(ApplicationEvent("stop"))
            for thread in self._threads:
                thread.join(timeout=timeout)
            if not any(t.is_alive() for t in self._threads):
                for sock in self._handler.sockets:
                    sock.close()
                for fd in self._injector.pipe:  # proton never closes its wake-up pipe
                    os.close(fd)

    def __enter__(self) -> AmqpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, peer = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # the listener was closed
            threading.Thread(target=self._route, args=(sock, peer), name="amqp-route", daemon=True).start()

    def _route(self, sock: socket.socket, peer: Any) -> None:
        """Hand a new connection to the reactor, or to `other`, by its first bytes."""
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        head = _peek_head(sock)
        if head == b"AMQP" and not self._stopping.is_set():
            sock.settimeout(None)
            self._handler.adoptions.put(sock)
            try:
                self._injector.trigger(ApplicationEvent("adopt"))
            except OSError:  # stopped meanwhile
                sock.close()
        elif head and self._other is not None and not self._stopping.is_set():
            sock.settimeout(None)
            self._other(sock, peer)
        else:
            sock.close()


def _peek_head(sock: socket.socket) -> bytes:
    """The first four bytes a client sent, left in the socket (fewer if it sent less in time)."""
    sock.settimeout(ROUTE_TIMEOUT)
    head = b""
    deadline = time.monotonic() + ROUTE_TIMEOUT
    try:
        while len(head) < 4 and time.monotonic() < deadline:
            head = sock.recv(4, socket.MSG_PEEK)
            if not head:
                break
            if len(head) < 4:
                time.sleep(0.001)
    except OSError:
        return b""
    return head
