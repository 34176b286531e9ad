"""One SQLite connection per thread on one file, in WAL mode, that `close()` can reach in every
thread: shared by the embedded store and the embedded queues."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import weakref
from collections.abc import Callable
from pathlib import Path

BUSY_TIMEOUT_MS = 30_000


class _Holder:
    """Owns one thread's connection; closes it when the thread's local storage goes away."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def close(self) -> None:
        self.conn.close()

    def __del__(self) -> None:
        self.conn.close()


class ThreadConnections:
    """Autocommit connections (transactions are begun explicitly where needed), one per thread.

    `on_open` runs once per new connection (for instance to make a schema)."""

    def __init__(self, path: Path, on_open: Callable[[sqlite3.Connection], None] | None = None) -> None:
        self._path = path
        self._on_open = on_open
        self._local = threading.local()
        self._holders: weakref.WeakSet[_Holder] = weakref.WeakSet()
        self._lock = threading.Lock()
        self.closed = False

    def get(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use; RuntimeError once closed."""
        holder: _Holder | None = getattr(self._local, "holder", None)
        if holder is not None:
            return holder.conn
        if self.closed:
            raise RuntimeError(f"{self._path} is closed")
        self._path.parent.mkdir(parents=True, exist_ok=True)
        # Readable by the service's user only: it holds secrets (agent tokens, clusters' private keys).
        # SQLite gives its -wal and -shm files the database file's mode. Made with O_EXCL, never opened
        # and closed once it exists: closing any descriptor of the file drops every POSIX lock this
        # process's other connections hold on it, and another process may then delete the -shm file
        # under them ("disk I/O error").
        with contextlib.suppress(FileExistsError):
            os.close(os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
        os.chmod(self._path, 0o600)
        conn = sqlite3.connect(self._path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                               check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        if self._on_open is not None:
            self._on_open(conn)
        holder = _Holder(conn)
        with self._lock:
            self._holders.add(holder)
        self._local.holder = holder
        return conn

    def close(self) -> None:
        """Close every thread's connection; later `get()` calls fail."""
        self.closed = True
        with self._lock:
            holders = list(self._holders)
            self._holders.clear()
        for holder in holders:
            holder.close()
        self._local = threading.local()
