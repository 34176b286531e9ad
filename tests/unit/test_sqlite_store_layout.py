"""The SQLite store keeps each indexed path in a column of its own: queries use those columns'
indexes, a replace rewrites only the columns that changed, and a file of the older layout
(indexes over expressions of the body) is brought to this one when it is opened."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from shared.adapters.local.sqlite_store import SqliteStateStore
from shared.ports.state_store import ContainerSpec, Query

SPEC = ContainerSpec("things", indexed=("kind", "meta.owner"), lookups=(("kind", "state"), ("flag",)))


def indexes(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' "
                                               "AND name NOT LIKE 'sqlite_autoindex_%'")}


def test_queries_read_the_path_columns_through_their_indexes(tmp_path: Path) -> None:
    store = SqliteStateStore(tmp_path / "s.db")
    store.open([SPEC])
    store.create("things", {"id": "a", "pk": "p", "kind": "job", "meta": {"owner": "x"}, "state": "queued", "flag": True})
    store.create("things", {"id": "b", "pk": "p", "kind": "job", "meta": {"owner": "y"}, "state": "running", "flag": False})
    conn = store._conn()
    plan = " ".join(str(r) for r in conn.execute(
        'EXPLAIN QUERY PLAN SELECT body FROM "docs_things" WHERE "f_kind" = ? AND "f_state" = ?', ("job", "queued")))
    assert "ixcl_things_kind_state" in plan and "json_extract" not in plan
    assert [d["id"] for d in store.query("things", Query(where={"kind": "job", "state": "queued"}))] == ["a"]
    assert [d["id"] for d in store.query("things", Query(where={"meta.owner": "y"}))] == ["b"]
    assert [d["id"] for d in store.query("things", Query(where={"flag": True}))] == ["a"]
    assert store.count("things", {"flag": 1}) == 0  # a boolean is not the number 1 (its JSON type is checked)
    store.close()


def test_a_replace_sets_only_the_columns_that_changed_and_they_follow_the_body(tmp_path: Path) -> None:
    store = SqliteStateStore(tmp_path / "s.db")
    store.open([SPEC])
    doc = store.create("things", {"id": "a", "pk": "p", "kind": "job", "meta": {"owner": "x"}, "state": "queued"})
    statements: list[str] = []
    store._conn().set_trace_callback(statements.append)
    doc = store.replace("things", {**doc, "state": "running", "note": "n"}, etag=doc["_etag"])
    [update] = [s for s in statements if s.startswith("UPDATE")]
    assert '"f_state"' in update and '"f_kind"' not in update and '"f_meta__owner"' not in update
    store.replace("things", {**doc, "meta": {"owner": "z"}, "state": None})  # unconditional
    row = store._conn().execute('SELECT "f_kind", "f_meta__owner", "f_state", "f_flag" FROM "docs_things"').fetchone()
    assert row == ("job", "z", None, None)
    store.close()


def test_a_file_of_the_older_layout_gets_the_columns_filled_and_loses_its_expression_indexes(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.execute('CREATE TABLE "docs_things" (pk TEXT NOT NULL, id TEXT NOT NULL, etag TEXT NOT NULL, '
                     "body TEXT NOT NULL, PRIMARY KEY (pk, id))")
        conn.execute('CREATE INDEX "ixk_things_kind" ON "docs_things" (json_extract(body, \'$.kind\'), pk, id)')
        conn.execute('CREATE INDEX "ixk_things_gone" ON "docs_things" (json_extract(body, \'$.gone\'), pk, id)')
        for n, state in enumerate(("queued", "running", "queued")):
            body = {"id": f"j{n}", "pk": "p", "kind": "job", "meta": {"owner": "o"}, "state": state, "flag": n == 2}
            conn.execute('INSERT INTO "docs_things" VALUES (?, ?, ?, ?)', ("p", f"j{n}", "e", json.dumps(body)))
    for _ in range(2):  # opening again changes nothing
        store = SqliteStateStore(path)
        store.open([SPEC])
        assert indexes(path) == {"ixc_things_kind", "ixc_things_meta__owner", "ixcl_things_kind_state",
                                 "ixcl_things_flag"}
        queued = store.query("things", Query(where={"kind": "job", "state": "queued"}, order_by=("id",)), pk="p")
        assert [d["id"] for d in queued] == ["j0", "j2"]
        assert [d["id"] for d in store.query("things", Query(where={"flag": True}))] == ["j2"]
        store.close()
