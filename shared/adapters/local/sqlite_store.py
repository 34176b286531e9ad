"""State store on one SQLite file: the local stand-in for Cosmos DB.

One table per container, keyed by (pk, id), the document kept as JSON text and the ETag in its own
column, so conditional writes are single ``UPDATE/DELETE ... WHERE etag = ?`` statements (atomic
without explicit transactions). WAL lets readers run while one writer writes; each thread gets its
own connection (measured faster than one shared connection behind a lock for many small writes
from a thread pool, and readers then never wait for a Python lock).

Queries filter and sort on ``json_extract`` of the dotted paths, guarded by ``json_type`` so that
values compare as in Cosmos DB: JSON ``true`` is not the number 1, the string "1" is not 1, and
``None`` matches JSON null only (not a missing field). ``id`` and ``pk`` are the table's own columns.
Each indexed path gets an index on (path, pk, id): an equality on the path within a partition then
reads its rows already in id order, so a keyset page (``after`` id, ``order_by`` id, a limit) costs
the same deep in a large collection as at its start, with no sort.
"""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from shared.adapters.local.sqlite_connections import ThreadConnections
from shared.ports.state_store import (
    Conflict,
    ContainerSpec,
    NotFound,
    PreconditionFailed,
    Query,
    StateStore,
    StoreError,
)

_CONTAINER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,200}$")
_PATH_SEGMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Properties Cosmos DB owns; dropped from what callers write so both adapters store the same.
_RESERVED = frozenset({"_etag", "_rid", "_self", "_attachments", "_ts"})

# json_type() answers for each Python value kind a filter may hold.
_NUMBER_TYPES = "('integer', 'real')"
_BOOL_TYPES = "('true', 'false')"
_TEXT_TYPES = "('text')"
_KEY_COLUMNS = ("id", "pk")


def _json_path(path: str) -> str:
    """The SQLite JSON path for a dotted field path, as a SQL literal.

    Inlined (not bound) so that queries match the expression indexes; hence the strict check.
    """
    segments = path.split(".")
    if not all(_PATH_SEGMENT.fullmatch(s) for s in segments):
        raise ValueError(f"unsupported field path {path!r}: use dotted identifiers")
    return "'$." + ".".join(segments) + "'"


def _key_column(path: str, value: Any) -> bool:
    """Whether a filter on `path` can use the table's own column: `id` and `pk` are always strings."""
    return path in _KEY_COLUMNS and isinstance(value, str)


def _plain_text(value: str) -> bool:
    """Whether json_extract equal to this string proves the field is that JSON string, with no
    json_type guard: numbers, booleans and null never equal text, and only an object's or an array's
    JSON text (which json_extract returns for them) starts with '{' or '['. Such a filter is
    answered from an expression index alone (a count of 100,000 rows without reading one)."""
    return not value.startswith(("{", "["))


def _type_guard(value: Any) -> tuple[str, Any]:
    """The json_type() set a value's kind belongs to, and the value as SQLite compares it."""
    if isinstance(value, bool):  # before int: bool is an int subclass
        return _BOOL_TYPES, int(value)
    if isinstance(value, (int, float)):
        return _NUMBER_TYPES, value
    if isinstance(value, str):
        return _TEXT_TYPES, value
    raise TypeError(f"cannot compare a field with {type(value).__name__} {value!r}")


class _Clause:
    """A WHERE clause under construction: SQL fragments joined by AND, and their parameters."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.params: list[Any] = []

    def equals(self, path: str, value: Any) -> None:
        """path = value, or path IN value for a list/tuple."""
        jp = _json_path(path)
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        if path in _KEY_COLUMNS and values and all(isinstance(v, str) for v in values):
            self.parts.append(f"{path} IN ({', '.join('?' * len(values))})")
            self.params.extend(values)
            return
        alternatives: list[str] = []
        groups: dict[str, list[Any]] = {}
        for v in values:
            if v is None:
                alternatives.append(f"json_type(body, {jp}) = 'null'")
            else:
                types, sql_value = _type_guard(v)
                groups.setdefault(types, []).append(sql_value)
        plain = groups.pop(_TEXT_TYPES, []) if len(groups) == 1 and not alternatives else []
        if plain and all(_plain_text(v) for v in plain):  # the index alone answers it (see _plain_text)
            self.parts.append(f"json_extract(body, {jp}) IN ({', '.join('?' * len(plain))})")
            self.params.extend(plain)
            return
        if plain:
            groups[_TEXT_TYPES] = plain
        for types, group in groups.items():
            marks = ", ".join("?" * len(group))
            alternatives.append(f"(json_extract(body, {jp}) IN ({marks}) AND json_type(body, {jp}) IN {types})")
            self.params.extend(group)
        self.parts.append("(" + " OR ".join(alternatives) + ")" if alternatives else "0")

    def greater(self, path: str, value: Any) -> None:
        """path > value, comparing only values of the same kind (as Cosmos DB does)."""
        if _key_column(path, value):
            self.parts.append(f"{path} > ?")
            self.params.append(value)
            return
        jp = _json_path(path)
        types, sql_value = _type_guard(value)
        self.parts.append(f"(json_extract(body, {jp}) > ? AND json_type(body, {jp}) IN {types})")
        self.params.append(sql_value)

    def sql(self) -> str:
        return " WHERE " + " AND ".join(self.parts) if self.parts else ""


class SqliteStateStore(StateStore):
    """StateStore on a SQLite file; share one instance between threads."""

    def __init__(self, path: str | Path) -> None:
        self._connections = ThreadConnections(Path(path))
        self._tables: dict[str, str] = {}

    # -- connections ----------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection (autocommit: every statement is its own transaction, all the port needs)."""
        try:
            return self._connections.get()
        except RuntimeError:
            raise StoreError("the state store is closed") from None

    def _table(self, container: str) -> str:
        try:
            return self._tables[container]
        except KeyError:
            raise StoreError(f"container {container!r} was not opened") from None

    # -- StateStore -----------------------------------------------------------------------------

    def open(self, containers: Sequence[ContainerSpec]) -> None:
        conn = self._conn()
        for spec in containers:
            if not _CONTAINER_NAME.fullmatch(spec.name):
                raise ValueError(f"unsupported container name {spec.name!r}")
            table = f'"docs_{spec.name}"'
            conn.execute(f"CREATE TABLE IF NOT EXISTS {table} (pk TEXT NOT NULL, id TEXT NOT NULL, "
                         "etag TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (pk, id))")
            for path in spec.indexed:
                suffix = f'{spec.name}_{path.replace(".", "__")}'
                conn.execute(f'DROP INDEX IF EXISTS "ix_{suffix}"')  # the single-column form of older files
                conn.execute(f'CREATE INDEX IF NOT EXISTS "ixk_{suffix}" ON {table} '
                             f"(json_extract(body, {_json_path(path)}), pk, id)")
            for paths in spec.lookups:
                suffix = f'{spec.name}_{"_".join(p.replace(".", "__") for p in paths)}'
                columns = "".join(f"json_extract(body, {_json_path(p)}), " for p in paths)
                conn.execute(f'CREATE INDEX IF NOT EXISTS "ixl_{suffix}" ON {table} ({columns}pk, id)')
            self._tables[spec.name] = table

    def close(self) -> None:
        self._connections.close()

    def create(self, container: str, doc: Mapping[str, Any]) -> dict[str, Any]:
        table = self._table(container)
        pk, id_, body = _serialise(doc)
        etag = _new_etag()
        try:
            self._conn().execute(f"INSERT INTO {table} (pk, id, etag, body) VALUES (?, ?, ?, ?)", (pk, id_, etag, body))
        except sqlite3.IntegrityError:
            raise Conflict(f"{container}/{pk}/{id_} already exists") from None
        return _document(body, etag)

    def read(self, container: str, pk: str, id: str) -> dict[str, Any] | None:
        table = self._table(container)
        row = self._conn().execute(f"SELECT body, etag FROM {table} WHERE pk = ? AND id = ?", (pk, id)).fetchone()
        return _document(*row) if row else None

    def replace(self, container: str, doc: Mapping[str, Any], etag: str | None = None) -> dict[str, Any]:
        table = self._table(container)
        pk, id_, body = _serialise(doc)
        new_etag = _new_etag()
        sql = f"UPDATE {table} SET etag = ?, body = ? WHERE pk = ? AND id = ?"
        params: tuple[Any, ...] = (new_etag, body, pk, id_)
        if etag is not None:
            sql, params = sql + " AND etag = ?", params + (etag,)
        if self._conn().execute(sql, params).rowcount == 0:
            self._raise_missed(table, container, pk, id_, etag)
        return _document(body, new_etag)

    def upsert(self, container: str, doc: Mapping[str, Any]) -> dict[str, Any]:
        table = self._table(container)
        pk, id_, body = _serialise(doc)
        etag = _new_etag()
        self._conn().execute(f"INSERT INTO {table} (pk, id, etag, body) VALUES (?, ?, ?, ?) ON CONFLICT (pk, id) "
                             "DO UPDATE SET etag = excluded.etag, body = excluded.body", (pk, id_, etag, body))
        return _document(body, etag)

    def delete(self, container: str, pk: str, id: str, etag: str | None = None) -> None:
        table = self._table(container)
        sql = f"DELETE FROM {table} WHERE pk = ? AND id = ?"
        params: tuple[Any, ...] = (pk, id)
        if etag is not None:
            sql, params = sql + " AND etag = ?", params + (etag,)
        if self._conn().execute(sql, params).rowcount == 0:
            self._raise_missed(table, container, pk, id, etag)

    def query(self, container: str, query: Query, pk: str | None = None) -> list[dict[str, Any]]:
        table = self._table(container)
        clause = _where(query.where, pk)
        if query.after is not None:
            clause.greater(*query.after)
        sql = f"SELECT body, etag FROM {table}{clause.sql()}"
        # rowid last: ties come back in insertion order, as Cosmos DB breaks them by _rid. Within
        # one partition `id` is unique, so an order ending in it has no ties (and keeps its index).
        order = [p if p in _KEY_COLUMNS else f"json_extract(body, {_json_path(p)})" for p in query.order_by]
        if not (pk is not None and order[-1:] == ["id"]):
            order.append("rowid")
        sql += " ORDER BY " + ", ".join(order)
        params = list(clause.params)
        if query.limit is not None:
            sql += " LIMIT ?"
            params.append(max(0, int(query.limit)))
        return [_document(body, etag) for body, etag in self._conn().execute(sql, params)]

    def count(self, container: str, where: Mapping[str, Any], pk: str | None = None) -> int:
        table = self._table(container)
        clause = _where(where, pk)
        return int(self._conn().execute(f"SELECT COUNT(*) FROM {table}{clause.sql()}", clause.params).fetchone()[0])

    # -- helpers --------------------------------------------------------------------------------

    def _raise_missed(self, table: str, container: str, pk: str, id_: str, etag: str | None) -> None:
        """A conditional write touched no row: tell a stale ETag from a missing document."""
        if etag is not None:
            row = self._conn().execute(f"SELECT 1 FROM {table} WHERE pk = ? AND id = ?", (pk, id_)).fetchone()
            if row:
                raise PreconditionFailed(f"{container}/{pk}/{id_} was changed (ETag mismatch)")
        raise NotFound(f"{container}/{pk}/{id_} does not exist")


def _where(where: Mapping[str, Any], pk: str | None) -> _Clause:
    clause = _Clause()
    if pk is not None:
        clause.parts.append("pk = ?")
        clause.params.append(pk)
    for path, value in where.items():
        clause.equals(path, value)
    return clause


def _serialise(doc: Mapping[str, Any]) -> tuple[str, str, str]:
    """(pk, id, JSON body) of a document; the caller's _etag is dropped (the store owns it)."""
    pk, id_ = doc.get("pk"), doc.get("id")
    if not isinstance(pk, str) or not isinstance(id_, str):
        raise ValueError("a document needs string 'id' and 'pk' fields")
    body = json.dumps({k: v for k, v in doc.items() if k not in _RESERVED}, ensure_ascii=False, separators=(",", ":"))
    return pk, id_, body


def _document(body: str, etag: str) -> dict[str, Any]:
    """A fresh dict for the caller (never shared with the store or other callers)."""
    doc: dict[str, Any] = json.loads(body)
    doc["_etag"] = etag
    return doc


def _new_etag() -> str:
    return str(uuid.uuid4())


__all__ = ["SqliteStateStore"]

