"""Messaging on one SQLite file: the local stand-in for Service Bus.

One ``messages`` table holds every message of every entity; its ``entity`` column is the
lower-cased path the message can be received from (a queue, a subscription, or either's
``/$deadletterqueue``). A topic keeps no messages: a send copies the message into each of its
subscriptions in the same transaction, so "the subscriptions existing at send time" holds.

Peek-lock needs no separate state column: ``visible_at`` is the moment a message can next be
received. Sending sets it to now (or to the scheduled time); a receive sets it to the end of the
lock and stamps a fresh ``lock_token``. A lock that expires therefore makes the message available
again with no work at all; its stale token still sits on the row, which is how a receive tells
"lock expired with the delivery count spent" (dead-letter it) from "abandoned" (token cleared).
A settle matches (id, entity, lock_token, visible_at > now) in one statement, so a lost lock or a
settled message simply matches no row.

The row id is the sequence number (AUTOINCREMENT: never reused, so always increasing per entity)
and the FIFO order; a dead-lettered message keeps it, so the dead-letter sub-queue is ordered by
original enqueue order rather than by dead-lettering time.

Several threads and several processes may share the file: WAL lets readers run beside the one
writer, every read-modify-write runs in ``BEGIN IMMEDIATE`` (so two receivers can never lock the
same message), and writers of this process also queue on a Python lock, which is much cheaper than
SQLite's sleeping busy handler. ``receive(max_wait)`` waits on a Condition that sends of this
process signal, and polls the file for sends from other processes (every ``_POLL_SECONDS`` at
first, backing off to ``_MAX_POLL_SECONDS`` while nothing comes).

Entity names are case-insensitive, as in Service Bus.

Where this differs from Service Bus, knowingly: a scheduled message keeps the sequence number of
its send (Service Bus also assigns it then) and so, once due, is received ahead of messages sent
after it; a scheduled message sent to a topic goes to the subscriptions that exist at send time, not
at its scheduled time; an expired lock at the max delivery count is dead-lettered when the entity
or its sub-queue is next looked at (receive, peek, count), not by a broker timer.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from shared.adapters.local.sqlite_connections import ThreadConnections
from shared.ports.clock import Clock, SystemClock
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

# How soon a waiting receive sees a send from another process: it re-reads the file after 50 ms,
# then ever less often while nothing comes (up to every 400 ms), so idle receivers cost little.
_POLL_SECONDS, _MAX_POLL_SECONDS = 0.05, 0.4
# Expired message ids are forgotten every few seconds, a bounded batch at a time, so that no send
# waits behind one large delete and the table holds about what was sent within the windows.
_DEDUP_PRUNE_EVERY_US, _DEDUP_PRUNE_BATCH = 5_000_000, 10_000
_NEVER = 2**62  # "max delivery count" of a dead-letter sub-queue: never dead-lettered again
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

# Service Bus's rules, loosely: queue and topic names may contain '/', subscription names may not.
_ENTITY_NAME = re.compile(r"^[a-z0-9][a-z0-9._~/-]{0,259}$")
_SUBSCRIPTION_NAME = re.compile(r"^[a-z0-9][a-z0-9._~-]{0,49}$")
_SUBSCRIPTIONS = "/subscriptions/"
_DLQ = DEAD_LETTER_SUFFIX.lower()
MAX_DELIVERY_REASON = "MaxDeliveryCountExceeded"

_SCHEMA = """
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS entities (
    path TEXT PRIMARY KEY,          -- lower-cased queue, topic or subscription path
    kind TEXT NOT NULL,             -- 'queue' | 'topic' | 'subscription'
    topic TEXT,                     -- a subscription's topic
    lock_us INTEGER NOT NULL,
    max_delivery INTEGER NOT NULL,
    dedup_us INTEGER                -- NULL: no duplicate detection
);
CREATE INDEX IF NOT EXISTS ix_entities_topic ON entities (topic) WHERE topic IS NOT NULL;
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,   -- sequence number and FIFO order
    entity TEXT NOT NULL,
    message_id TEXT NOT NULL,
    body BLOB NOT NULL,
    props TEXT NOT NULL,                    -- application properties as JSON
    correlation_id TEXT,
    subject TEXT,
    reply_to TEXT,
    session_id TEXT,
    reply_to_session_id TEXT,
    enqueued_at INTEGER NOT NULL,           -- microseconds since the epoch, like every time here
    visible_at INTEGER NOT NULL,            -- receivable from then on; while locked: locked until
    lock_token TEXT,                        -- set by a receive; cleared by abandon/dead-letter
    delivery_count INTEGER NOT NULL DEFAULT 0,
    dl_reason TEXT,
    dl_description TEXT
);
-- Receive and peek walk an entity in id order and filter visible_at from the index alone.
CREATE INDEX IF NOT EXISTS ix_messages_order ON messages (entity, id, visible_at);
-- Only messages that were ever locked, to find expired locks with a spent delivery count.
CREATE INDEX IF NOT EXISTS ix_messages_locked ON messages (entity, visible_at) WHERE lock_token IS NOT NULL;
CREATE TABLE IF NOT EXISTS dedup (
    entity TEXT NOT NULL,
    message_id TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (entity, message_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ix_dedup_expiry ON dedup (expires_at);
COMMIT;
"""

_COLUMNS = ("id, message_id, body, props, correlation_id, subject, reply_to, session_id, reply_to_session_id, "
            "enqueued_at, visible_at, "
            "lock_token, delivery_count, dl_reason, dl_description")


@dataclass(frozen=True)
class _Entity:
    """An entity row, plus whether the caller addressed its dead-letter sub-queue."""

    path: str
    kind: str
    topic: str | None
    lock_us: int
    max_delivery: int
    dedup_us: int | None
    dead_letter: bool = False

    @property
    def key(self) -> str:
        """The value of messages.entity for the addressed (sub-)queue."""
        return self.path + _DLQ if self.dead_letter else self.path

    @property
    def wake_key(self) -> str:
        """What a send signals to wake receivers of this entity (a topic's send: each subscription's)."""
        return self.key


class SqliteMessaging(Messaging):
    """Messaging on a SQLite file; share one instance between threads, the file between processes."""

    def __init__(self, path: Path, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._schema_lock = threading.Lock()
        self._schema_ready = False
        self._connections = ThreadConnections(Path(path), self._make_schema)
        self._write_lock = threading.Lock()
        # Writers of other processes (host instances, the door) queue on a lock file beside the database:
        # the kernel hands it over at once, where SQLite's busy handler would sleep 1 ms and more.
        self._lock_path = Path(str(path) + ".lock")
        self._lock_fd: int | None = None
        # One condition per wake key on one lock: a send wakes the receivers of its entity only.
        self._wake_lock = threading.Lock()
        self._wakes: dict[str, threading.Condition] = {}
        self._generations: dict[str, int] = {}
        # Set when other processes share the file and can be told at once (shared/localhost/instances.py):
        # passes each wake key on, so their receivers need not wait for their next look at the file.
        self.forward: Callable[[str, int | None], None] | None = None
        self._last_prune_us = 0
        self._closed = False

    # -- connections and transactions -------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection (autocommit: transactions are begun where a read-modify-write needs one)."""
        try:
            return self._connections.get()
        except RuntimeError:
            raise MessagingError("the messaging adapter is closed") from None

    def _make_schema(self, conn: sqlite3.Connection) -> None:
        with self._schema_lock:
            if not self._schema_ready:
                conn.executescript(_SCHEMA)
                _add_session_columns(conn)
                self._schema_ready = True

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A BEGIN IMMEDIATE transaction: holds the database's write lock from its first read."""
        conn = self._conn()
        with self._write_lock:
            fd = self._process_lock()
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:  # never leave it open: the next BEGIN would fail
                        conn.execute("ROLLBACK")
                    raise
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def _process_lock(self) -> int:
        """The lock file's descriptor (opened on first write; called under _write_lock)."""
        if self._lock_fd is None:
            self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        return self._lock_fd

    def _now_us(self) -> int:
        return _to_us(self._clock.now())

    # -- entities ---------------------------------------------------------------------------------

    def create_queue(self, name: str, options: EntityOptions = EntityOptions()) -> None:
        self._create(_name(name, _ENTITY_NAME), "queue", None, options)

    def delete_queue(self, name: str) -> None:
        path = _norm(name)
        with self._write() as conn:
            if _kind(conn, path) != "queue":
                return
            conn.execute("DELETE FROM messages WHERE entity IN (?, ?)", (path, path + _DLQ))
            conn.execute("DELETE FROM dedup WHERE entity = ?", (path,))
            conn.execute("DELETE FROM entities WHERE path = ?", (path,))

    def create_topic(self, name: str, options: EntityOptions = EntityOptions()) -> None:
        self._create(_name(name, _ENTITY_NAME), "topic", None, options)

    def delete_topic(self, name: str) -> None:
        path = _norm(name)
        with self._write() as conn:
            if _kind(conn, path) != "topic":
                return
            conn.execute("DELETE FROM messages WHERE entity IN (SELECT path FROM entities WHERE topic = ? "
                         "UNION ALL SELECT path || ? FROM entities WHERE topic = ?)", (path, _DLQ, path))
            conn.execute("DELETE FROM dedup WHERE entity = ?", (path,))
            conn.execute("DELETE FROM entities WHERE path = ? OR topic = ?", (path, path))

    def create_subscription(self, topic: str, name: str, options: EntityOptions = EntityOptions()) -> None:
        topic_path = _norm(topic)
        path = topic_path + _SUBSCRIPTIONS + _name(name, _SUBSCRIPTION_NAME)
        self._create(path, "subscription", topic_path, options)

    def delete_subscription(self, topic: str, name: str) -> None:
        path = _norm(topic) + _SUBSCRIPTIONS + _norm(name)
        with self._write() as conn:
            if _kind(conn, path) != "subscription":
                return
            conn.execute("DELETE FROM messages WHERE entity IN (?, ?)", (path, path + _DLQ))
            conn.execute("DELETE FROM entities WHERE path = ?", (path,))

    def entity_exists(self, path: str) -> bool:
        key = _norm(path)
        if key.endswith(_DLQ):
            key = key[: -len(_DLQ)]
        return _kind(self._conn(), key) is not None

    def _create(self, path: str, kind: str, topic: str | None, options: EntityOptions) -> None:
        """Insert the entity unless it exists (keeping its settings); a name held by another kind fails."""
        lock_us = _duration_us(options.lock_duration, "lock_duration")
        if options.max_delivery_count < 1:
            raise ValueError("max_delivery_count must be at least 1")
        window = options.duplicate_detection_window
        dedup_us = None if window is None else _duration_us(window, "duplicate_detection_window")
        with self._write() as conn:
            if topic is not None and _kind(conn, topic) != "topic":
                raise EntityNotFound(f"topic {topic!r} does not exist")
            existing = _kind(conn, path)
            if existing is None:
                conn.execute("INSERT INTO entities (path, kind, topic, lock_us, max_delivery, dedup_us) "
                             "VALUES (?, ?, ?, ?, ?, ?)",
                             (path, kind, topic, lock_us, options.max_delivery_count, dedup_us))
            elif existing != kind:
                raise MessagingError(f"{path!r} already exists as a {existing}")

    def _entity(self, conn: sqlite3.Connection, path: str) -> _Entity:
        """The addressed entity; EntityNotFound if it (or its parent, for a dead-letter path) is missing."""
        key = _norm(path)
        dead_letter = key.endswith(_DLQ)
        if dead_letter:
            key = key[: -len(_DLQ)]
        row = conn.execute("SELECT kind, topic, lock_us, max_delivery, dedup_us FROM entities WHERE path = ?",
                           (key,)).fetchone()
        if row is None:
            raise EntityNotFound(f"{path!r} does not exist")
        entity = _Entity(key, row[0], row[1], row[2], row[3], row[4], dead_letter)
        if dead_letter and entity.kind == "topic":
            raise EntityNotFound(f"{path!r}: a topic has no dead-letter sub-queue (its subscriptions do)")
        return entity

    def _receivable(self, conn: sqlite3.Connection, path: str) -> _Entity:
        entity = self._entity(conn, path)
        if entity.kind == "topic":
            raise EntityNotFound(f"{path!r} is a topic: receive from one of its subscriptions")
        return entity

    # -- messages ---------------------------------------------------------------------------------

    def send(self, entity: str, messages: Sequence[OutgoingMessage]) -> None:
        self.send_each([(entity, messages)])

    def send_each(self, batches: Sequence[tuple[str, Sequence[OutgoingMessage]]]) -> None:
        """Every batch in one transaction: all are sent or none."""
        prepared = [(entity, [_outgoing_row(m) for m in messages]) for entity, messages in batches]  # validate first
        woken: dict[str, int] = {}
        with self._write() as conn:
            now = self._now_us()
            self._prune_dedup(conn, now)
            for entity, rows in prepared:
                for wake_key, count in self._insert(conn, entity, rows, now):
                    woken[wake_key] = woken.get(wake_key, 0) + count
        for wake_key, count in woken.items():
            self._signal(wake_key, count)

    def _insert(self, conn: sqlite3.Connection, entity: str, rows: list[tuple[Any, ...]], now: int
                ) -> list[tuple[str, int]]:
        """One send's rows (duplicates within the window dropped); how many each receivable entity got."""
        target = self._entity(conn, entity)
        if target.kind == "subscription" or target.dead_letter:
            raise EntityNotFound(f"{entity!r} cannot be sent to: send to a queue or topic")
        values: list[tuple[Any, ...]] = []
        for *fields, scheduled in rows:
            visible = now if scheduled is None else max(now, scheduled)
            if target.dedup_us is not None and not _first_sighting(conn, target.path, fields[0],
                                                                   now + target.dedup_us, now):
                continue  # a duplicate within the window: accepted and dropped
            values.append((*fields, visible, visible))
        if not values:
            return []
        if target.kind == "queue":
            conn.executemany(
                "INSERT INTO messages (entity, message_id, body, props, correlation_id, subject, reply_to, session_id, "
                "reply_to_session_id, enqueued_at, visible_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(target.path, *v) for v in values])
            return [(target.path, len(values))]
        conn.executemany(
            "INSERT INTO messages (entity, message_id, body, props, correlation_id, subject, reply_to, session_id, "
            "reply_to_session_id, enqueued_at, visible_at) SELECT path, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? "
            "FROM entities "
            "WHERE topic = ? ORDER BY path",
            [(*v, target.path) for v in values])
        subscriptions = conn.execute("SELECT path FROM entities WHERE topic = ?", (target.path,)).fetchall()
        return [(path, len(values)) for (path,) in subscriptions]

    def receive(self, entity: str, max_messages: int = 1, max_wait: float = 0.0) -> list[ReceivedMessage]:
        if max_messages < 1:
            raise ValueError("max_messages must be at least 1")
        deadline = time.monotonic() + max(0.0, max_wait)
        wake_key: str | None = None
        poll = _POLL_SECONDS
        while True:
            seen = self._generations.get(wake_key, 0) if wake_key else 0
            received, wake_key = self._receive_now(entity, max_messages)
            if received:
                return received
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            wake = self._wake_of(wake_key)
            with wake:
                # Woken at once by a send of this process; otherwise re-read the file after a poll.
                wake.wait_for(lambda: self._closed or self._generations.get(wake_key, 0) != seen,
                              min(remaining, poll))
            poll = min(poll * 2, _MAX_POLL_SECONDS)
            if self._closed:
                raise MessagingError("the messaging adapter is closed")

    def _receive_now(self, path: str, max_messages: int) -> tuple[list[ReceivedMessage], str]:
        """Lock up to max_messages available messages now (one transaction).

        Reads first: an empty entity is answered without taking the write lock, so idle receivers
        polling every few ms cost other writers (and processes) nothing.
        """
        conn = self._conn()
        entity = self._receivable(conn, path)
        now = self._now_us()
        available = conn.execute("SELECT 1 FROM messages WHERE entity = ? AND visible_at <= ? LIMIT 1",
                                 (entity.key, now)).fetchone()
        if available is None and not _has_spent(conn, entity, now):
            return [], entity.wake_key
        with self._write() as conn:
            entity = self._receivable(conn, path)
            now = self._now_us()
            _dead_letter_spent(conn, entity, now)  # also for its sub-queue: they may be what it wants
            rows = conn.execute(
                "UPDATE messages SET lock_token = lower(hex(randomblob(16))), visible_at = ?, "
                "delivery_count = delivery_count + 1 WHERE id IN (SELECT id FROM messages "
                "WHERE entity = ? AND visible_at <= ? ORDER BY id LIMIT ?) RETURNING " + _COLUMNS,
                (now + entity.lock_us, entity.key, now, max_messages)).fetchall()
        rows.sort(key=lambda r: r[0])  # RETURNING gives no order
        return [_received(r, locked=True) for r in rows], entity.wake_key

    def peek(self, entity: str, max_messages: int = 1) -> list[ReceivedMessage]:
        if max_messages < 1:
            raise ValueError("max_messages must be at least 1")
        conn = self._conn()
        target = self._receivable(conn, entity)
        now = self._now_us()
        if _has_spent(conn, target, now):
            with self._write() as wconn:
                _dead_letter_spent(wconn, self._receivable(wconn, entity), now)
        rows = conn.execute(f"SELECT {_COLUMNS} FROM messages WHERE entity = ? ORDER BY id LIMIT ?",
                            (target.key, max_messages)).fetchall()
        return [_received(r, locked=False) for r in rows]

    def complete(self, entity: str, message: ReceivedMessage) -> None:
        if self.complete_all(entity, [message]):
            raise _lock_lost(message)

    def complete_all(self, entity: str, messages: Sequence[ReceivedMessage]) -> list[ReceivedMessage]:
        lost = []
        with self._write() as conn:
            target = self._receivable(conn, entity)
            now = self._now_us()
            for message in messages:
                deleted = conn.execute("DELETE FROM messages WHERE id = ? AND entity = ? AND lock_token = ? "
                                       "AND visible_at > ?", (message.sequence_number, target.key, message.lock_token, now))
                if deleted.rowcount == 0:
                    lost.append(message)
        return lost

    def abandon(self, entity: str, message: ReceivedMessage) -> None:
        with self._write() as conn:
            target = self._receivable(conn, entity)
            now = self._now_us()
            max_delivery = _NEVER if target.dead_letter else target.max_delivery
            spent = "delivery_count >= ?"
            updated = conn.execute(
                f"UPDATE messages SET entity = CASE WHEN {spent} THEN entity || ? ELSE entity END, "
                f"dl_reason = CASE WHEN {spent} THEN ? ELSE dl_reason END, "
                f"dl_description = CASE WHEN {spent} THEN ? ELSE dl_description END, "
                "lock_token = NULL, visible_at = ? "
                "WHERE id = ? AND entity = ? AND lock_token = ? AND visible_at > ?",
                (max_delivery, _DLQ, max_delivery, MAX_DELIVERY_REASON, max_delivery,
                 _max_delivery_description(target.max_delivery), now,
                 message.sequence_number, target.key, message.lock_token, now))
            if updated.rowcount == 0:
                raise _lock_lost(message)
        self._signal(target.wake_key)
        self._signal(target.path + _DLQ)

    def dead_letter(self, entity: str, message: ReceivedMessage, reason: str, description: str = "") -> None:
        self._dead_letter(entity, message.lock_token, message.sequence_number, reason, description,
                          lambda: _lock_lost(message))

    def _dead_letter(self, entity: str, lock_token: str, sequence_number: int | None, reason: str,
                     description: str, lost: Callable[[], LockLost]) -> None:
        """Move the message locked by `lock_token` (and of that sequence number, when known)."""
        with self._write() as conn:
            target = self._receivable(conn, entity)
            now = self._now_us()
            row = "id = ? AND " if sequence_number is not None else ""  # by id: the row at once
            updated = conn.execute(
                "UPDATE messages SET entity = ?, dl_reason = ?, dl_description = ?, lock_token = NULL, "
                f"visible_at = ? WHERE {row}entity = ? AND lock_token = ? AND visible_at > ?",
                (target.path + _DLQ, reason, description, now,
                 *([sequence_number] if sequence_number is not None else []), target.key, lock_token, now))
            if updated.rowcount == 0:
                raise lost()
        self._signal(target.path + _DLQ)

    def renew_lock(self, entity: str, message: ReceivedMessage) -> datetime:
        with self._write() as conn:
            target = self._receivable(conn, entity)
            now = self._now_us()
            row = conn.execute(
                "UPDATE messages SET visible_at = ? WHERE id = ? AND entity = ? AND lock_token = ? "
                "AND visible_at > ? RETURNING visible_at",
                (now + target.lock_us, message.sequence_number, target.key, message.lock_token, now)).fetchone()
            if row is None:
                raise _lock_lost(message)
        return _from_us(row[0])

    def count(self, entity: str) -> int:
        conn = self._conn()
        target = self._entity(conn, entity)
        if target.kind == "topic":
            return 0  # a topic keeps no messages here: they are in its subscriptions
        now = self._now_us()
        if _has_spent(conn, target, now):
            with self._write() as wconn:
                _dead_letter_spent(wconn, self._receivable(wconn, entity), now)
        return int(conn.execute("SELECT COUNT(*) FROM messages WHERE entity = ?", (target.key,)).fetchone()[0])

    def close(self) -> None:
        self._closed = True
        with self._wake_lock:
            for wake in self._wakes.values():
                wake.notify_all()
        self._connections.close()
        with self._write_lock:
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    # -- helpers ----------------------------------------------------------------------------------

    def _signal(self, wake_key: str, count: int | None = None) -> None:
        """Wake the receivers waiting on wake_key (after the commit, so they see the rows): this
        process's, and through `forward` those of the processes it knows."""
        self.wake(wake_key, count)
        if self.forward is not None:
            self.forward(wake_key, count)

    def wake(self, wake_key: str, count: int | None = None) -> None:
        """Wake up to `count` of this process's receivers waiting on wake_key (None: all of them).
        Waking one receiver per message sent, not every thread that waits, spares the others a look
        at the file for nothing; one that is not woken still looks at its next poll."""
        wake = self._wake_of(wake_key)
        with wake:
            self._generations[wake_key] = self._generations.get(wake_key, 0) + 1
            if count is None:
                wake.notify_all()
            else:
                wake.notify(count)

    def _wake_of(self, wake_key: str) -> threading.Condition:
        """The condition receivers of wake_key wait on (all share one lock, so `_generations` is guarded)."""
        wake = self._wakes.get(wake_key)
        if wake is None:
            with self._wake_lock:
                wake = self._wakes.setdefault(wake_key, threading.Condition(self._wake_lock))
        return wake

    def _prune_dedup(self, conn: sqlite3.Connection, now: int) -> None:
        """Forget message ids whose window has passed: up to a batch every few seconds per instance."""
        if now - self._last_prune_us >= _DEDUP_PRUNE_EVERY_US:
            conn.execute("DELETE FROM dedup WHERE (entity, message_id) IN (SELECT entity, message_id FROM dedup "
                         "WHERE expires_at <= ? LIMIT ?)", (now, _DEDUP_PRUNE_BATCH))
            self._last_prune_us = now


def _kind(conn: sqlite3.Connection, path: str) -> str | None:
    row = conn.execute("SELECT kind FROM entities WHERE path = ?", (path,)).fetchone()
    return row[0] if row else None


def _first_sighting(conn: sqlite3.Connection, entity: str, message_id: str, expires_at: int, now: int) -> bool:
    """Record message_id for the window; False if it was already seen within it.

    A duplicate does not extend the window, as in Service Bus (it counts from the first send).
    """
    cursor = conn.execute(
        "INSERT INTO dedup (entity, message_id, expires_at) VALUES (?, ?, ?) "
        "ON CONFLICT (entity, message_id) DO UPDATE SET expires_at = excluded.expires_at "
        "WHERE dedup.expires_at <= ?", (entity, message_id, expires_at, now))
    return cursor.rowcount > 0


def _has_spent(conn: sqlite3.Connection, entity: _Entity, now: int) -> bool:
    """Whether _dead_letter_spent has work to do (a read first, to spare peek and count a write)."""
    return conn.execute("SELECT 1 FROM messages WHERE entity = ? AND lock_token IS NOT NULL AND visible_at <= ? "
                        "AND delivery_count >= ? LIMIT 1", (entity.path, now, entity.max_delivery)).fetchone() is not None


def _dead_letter_spent(conn: sqlite3.Connection, entity: _Entity, now: int) -> None:
    """Move the queue's or subscription's messages whose lock expired at the max delivery count to its
    dead-letter sub-queue. Done lazily, before any read of the entity or of that sub-queue."""
    conn.execute("UPDATE messages SET entity = entity || ?, dl_reason = ?, dl_description = ?, lock_token = NULL, "
                 "visible_at = ? WHERE entity = ? AND lock_token IS NOT NULL AND visible_at <= ? "
                 "AND delivery_count >= ?",
                 (_DLQ, MAX_DELIVERY_REASON, _max_delivery_description(entity.max_delivery), now,
                  entity.path, now, entity.max_delivery))


def _max_delivery_description(max_delivery: int) -> str:
    return f"Message could not be consumed after {max_delivery} delivery attempts."


def _lock_lost(message: ReceivedMessage) -> LockLost:
    if not message.lock_token:
        return LockLost(f"message {message.message_id!r} was peeked, not received: it holds no lock")
    return LockLost(f"the lock on message {message.message_id!r} expired or the message was settled")


def _outgoing_row(message: OutgoingMessage) -> tuple[Any, ...]:
    """The stored form of a message to send; raises on what Service Bus could not carry either."""
    if not isinstance(message.body, (bytes, bytearray, memoryview)):
        raise TypeError(f"a message body must be bytes, not {type(message.body).__name__}")
    props: dict[str, PropertyValue] = {}
    for key, value in message.application_properties.items():
        if not isinstance(key, str) or not isinstance(value, (str, int, float, bool)):
            raise TypeError(f"application property {key!r}: values must be str, int, float or bool")
        props[key] = value
    scheduled = message.scheduled_enqueue_time
    return (message.message_id or uuid.uuid4().hex, bytes(message.body),
            json.dumps(props, ensure_ascii=False, separators=(",", ":")),
            message.correlation_id, message.subject, message.reply_to, message.session_id,
            message.reply_to_session_id, None if scheduled is None else _to_us(scheduled))


def _add_session_columns(conn: sqlite3.Connection) -> None:
    """Queues written before messages carried session ids get the two columns (NULL for old messages)."""
    have = {row[1] for row in conn.execute("PRAGMA table_info(messages)")}
    for column in ("session_id", "reply_to_session_id"):
        if column not in have:
            conn.execute(f"ALTER TABLE messages ADD COLUMN {column} TEXT")


def _received(row: Sequence[Any], locked: bool) -> ReceivedMessage:
    (id_, message_id, body, props_json, correlation_id, subject, reply_to, session_id, reply_to_session_id,
     enqueued_at, visible_at, lock_token, delivery_count, dl_reason, dl_description) = row
    props: dict[str, PropertyValue] = json.loads(props_json)
    if dl_reason is not None:
        props["DeadLetterReason"] = dl_reason
        props["DeadLetterErrorDescription"] = dl_description or ""
    return ReceivedMessage(
        body=bytes(body), message_id=message_id, lock_token=lock_token if locked else "",
        delivery_count=delivery_count, sequence_number=id_, enqueued_time=_from_us(enqueued_at),
        locked_until=_from_us(visible_at) if locked else None, application_properties=props,
        correlation_id=correlation_id, subject=subject, reply_to=reply_to, session_id=session_id,
        reply_to_session_id=reply_to_session_id, dead_letter_reason=dl_reason, dead_letter_description=dl_description)


def _norm(path: str) -> str:
    """Entity paths compare case-insensitively, as in Service Bus."""
    return path.strip("/").lower()


def _name(name: str, pattern: re.Pattern[str]) -> str:
    key = name.lower()
    # "/subscriptions/" inside a queue or topic name would make its paths ambiguous.
    if not pattern.fullmatch(key) or key.endswith("/") or _SUBSCRIPTIONS in key:
        raise ValueError(f"invalid entity name {name!r}")
    return key


def _duration_us(value: timedelta, what: str) -> int:
    us = value // _MICROSECOND
    if us <= 0:
        raise ValueError(f"{what} must be positive")
    return us


def _to_us(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return (moment - _EPOCH) // _MICROSECOND


def _from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


__all__ = ["MAX_DELIVERY_REASON", "SqliteMessaging"]
