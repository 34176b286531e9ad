"""The per-thread connection keeper must never drop the POSIX locks its other connections hold."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from shared.adapters.local.sqlite_connections import ThreadConnections


def test_a_new_threads_connection_keeps_the_locks_other_connections_hold(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    connections = ThreadConnections(path)
    first = connections.get()
    first.execute("CREATE TABLE t (x)")
    first.execute("INSERT INTO t VALUES (1)")
    second = threading.Thread(target=lambda: connections.get().execute("SELECT 1"))
    second.start()
    second.join()
    # Another process opens and closes the database. Were this process's locks gone (a descriptor of
    # the file closed behind SQLite's back), it would take itself for the last user and delete -shm.
    subprocess.run([sys.executable, "-c", "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
                    "c.execute('SELECT * FROM t').fetchall(); c.close()", str(path)], check=True)
    assert (tmp_path / "state.sqlite3-shm").exists()
    first.execute("INSERT INTO t VALUES (2)")
    assert first.execute("SELECT count(*) FROM t").fetchone() == (2,)
    connections.close()
