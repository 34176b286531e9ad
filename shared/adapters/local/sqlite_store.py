"""State store on one SQLite file: the local stand-in for Cosmos DB.

One table per container, keyed by (pk, id), the document kept as JSON text and the ETag in its own
column, so conditional writes are single ``UPDATE/DELETE ... WHERE etag = ?`` statements (atomic
without explicit transactions). WAL lets readers run while one writer writes; each thread gets its
own connection (measured faster than one shared connection behind a lock for many small writes
from a thread pool, and readers then never wait for a Python lock).

Queries filter and sort on ``json_extract`` of the dotted paths, guarded by ``json_type`` so that
values compare as in Cosmos DB: JSON ``true`` is not the number 1, the string "1" is not 1, and
``None`` matches JSON null only (not a missing field). ``id`` and ``pk`` are the table's own columns.

The paths a container indexes (its spec's `indexed` and `lookups`) are kept in columns of their own,
each holding what ``json_extract`` gives for the path, filled from the document in Python on every
write; queries read the column instead. Each indexed path gets an index on (column, pk, id), each
lookup one on its columns then (pk, id): an equality within a partition then reads its rows already
in id order, so a keyset page (``after`` id, ``order_by`` id, a limit) costs the same deep in a
large collection as at its start, with no sort. A replace sets only the columns whose values
changed, so SQLite rewrites only those indexes (an index over an expression of the body is
rewritten on every write of the body: a job's write cost about twice as much with them).
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
_REPLACE_TRIES = 20  # unconditional replaces that met a concurrent write look again this often


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


def _column(path: str) -> str:
    """The column that holds a materialised path's value (a quoted SQL identifier)."""
    return '"f_' + path.replace(".", "__") + '"'


def _value_at(doc: Mapping[str, Any], path: str) -> Any:
    """What SQLite's json_extract gives for the path of the document's JSON: None for a missing or
    null value, 1/0 for true/false, an object's or array's minified JSON text."""
    value: Any = doc
    for segment in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(segment)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int) and not -2**63 <= value < 2**63:
        return float(value)  # beyond SQLite's integers json_extract gives a real too
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return value


class _Table:
    """A container's table: its quoted name and the paths it keeps in columns (see the module's docstring)."""

    def __init__(self, name: str, paths: Sequence[str]) -> None:
        for path in paths:
            _json_path(path)  # checks the path
        self.name = name
        self.paths = tuple(paths)
        self.columns = tuple(_column(p) for p in self.paths)
        listed = "".join(", " + c for c in self.columns)
        # The statements that name every column, made once.
        self.insert = (f"INSERT INTO {name} (pk, id, etag, body{listed}) "
                       f"VALUES (?, ?, ?, ?{', ?' * len(self.columns)})")
        self.upsert = (self.insert + " ON CONFLICT (pk, id) DO UPDATE SET etag = excluded.etag, body = excluded.body"
                       + "".join(f", {c} = excluded.{c}" for c in self.columns))
        self.stored = f"SELECT etag{listed} FROM {name} WHERE pk = ? AND id = ?"

    def expression(self, path: str) -> str:
        """The SQL expression of a path's value: its column (`id` and `pk` are the table's own), else
        json_extract of the body."""
        if path in _KEY_COLUMNS:
            return path
        return _column(path) if path in self.paths else f"json_extract(body, {_json_path(path)})"

    def values(self, doc: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(_value_at(doc, p) for p in self.paths)


class _Clause:
    """A WHERE clause under construction: SQL fragments joined by AND, and their parameters."""

    def __init__(self, table: _Table) -> None:
        self.table = table
        self.parts: list[str] = []
        self.params: list[Any] = []

    def equals(self, path: str, value: Any) -> None:
        """path = value, or path IN value for a list/tuple."""
        jp, value_of = _json_path(path), self.table.expression(path)
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
            self.parts.append(f"{value_of} IN ({', '.join('?' * len(plain))})")
            self.params.extend(plain)
            return
        if plain:
            groups[_TEXT_TYPES] = plain
        for types, group in groups.items():
            marks = ", ".join("?" * len(group))
            alternatives.append(f"({value_of} IN ({marks}) AND json_type(body, {jp}) IN {types})")
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
        self.parts.append(f"({self.table.expression(path)} > ? AND json_type(body, {jp}) IN {types})")
        self.params.append(sql_value)

    def sql(self) -> str:
        return " WHERE " + " AND ".join(self.parts) if self.parts else ""


class SqliteStateStore(StateStore):
    """StateStore on a SQLite file; share one instance between threads."""

    def __init__(self, path: str | Path) -> None:
        self._connections = ThreadConnections(Path(path))
        self._tables: dict[str, _Table] = {}

    # -- connections ----------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection (autocommit: every statement is its own transaction, all the port needs)."""
        try:
            return self._connections.get()
        except RuntimeError:
            raise StoreError("the state store is closed") from None

    def _table(self, container: str) -> _Table:
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
            paths = [p for p in dict.fromkeys([*spec.indexed, *(p for ps in spec.lookups for p in ps)])
                     if p not in _KEY_COLUMNS]
            table = _Table(f'"docs_{spec.name}"', paths)
            conn.execute("BEGIN IMMEDIATE")  # processes opening one file at once make its schema in turn
            try:
                _make_schema(conn, table, spec)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            self._tables[spec.name] = table

    def close(self) -> None:
        self._connections.close()

    def create(self, container: str, doc: Mapping[str, Any]) -> dict[str, Any]:
        table = self._table(container)
        pk, id_, body = _serialise(doc)
        etag = _new_etag()
        try:
            self._conn().execute(table.insert, (pk, id_, etag, body, *table.values(doc)))
        except sqlite3.IntegrityError:
            raise Conflict(f"{container}/{pk}/{id_} already exists") from None
        return _document(body, etag)

    def read(self, container: str, pk: str, id: str) -> dict[str, Any] | None:
        table = self._table(container)
        row = self._conn().execute(f"SELECT body, etag FROM {table.name} WHERE pk = ? AND id = ?", (pk, id)).fetchone()
        return _document(*row) if row else None

    def replace(self, container: str, doc: Mapping[str, Any], etag: str | None = None) -> dict[str, Any]:
        """Sets the columns whose values changed and no others (see the module's docstring), on the
        row as it was just read (its ETag): a write in between makes the caller's ETag stale, or,
        unconditional, the row is read again."""
        table = self._table(container)
        pk, id_, body = _serialise(doc)
        new_etag = _new_etag()
        values = table.values(doc)
        conn = self._conn()
        for _ in range(_REPLACE_TRIES):
            row = conn.execute(table.stored, (pk, id_)).fetchone()
            if row is None:
                raise NotFound(f"{container}/{pk}/{id_} does not exist")
            if etag is not None and row[0] != etag:
                raise PreconditionFailed(f"{container}/{pk}/{id_} was changed (ETag mismatch)")
            changed = [(c, v) for c, v, stored in zip(table.columns, values, row[1:])
                       if not (type(v) is type(stored) and v == stored)]
            sets = "".join(f", {column} = ?" for column, _ in changed)
            sql = f"UPDATE {table.name} SET etag = ?, body = ?{sets} WHERE pk = ? AND id = ? AND etag = ?"
            if conn.execute(sql, (new_etag, body, *(v for _, v in changed), pk, id_, row[0])).rowcount:
                return _document(body, new_etag)
            if etag is not None:  # written since it was read: the caller's ETag is stale
                self._raise_missed(table.name, container, pk, id_, etag)
        raise StoreError(f"{container}/{pk}/{id_} kept changing while it was replaced")

    def upsert(self, container: str, doc: Mapping[str, Any]) -> dict[str, Any]:
        table = self._table(container)
        pk, id_, body = _serialise(doc)
        etag = _new_etag()
        self._conn().execute(table.upsert, (pk, id_, etag, body, *table.values(doc)))
        return _document(body, etag)

    def delete(self, container: str, pk: str, id: str, etag: str | None = None) -> None:
        table = self._table(container).name
        sql = f"DELETE FROM {table} WHERE pk = ? AND id = ?"
        params: tuple[Any, ...] = (pk, id)
        if etag is not None:
            sql, params = sql + " AND etag = ?", params + (etag,)
        if self._conn().execute(sql, params).rowcount == 0:
            self._raise_missed(table, container, pk, id, etag)

    def query(self, container: str, query: Query, pk: str | None = None) -> list[dict[str, Any]]:
        table = self._table(container)
        clause = _where(table, query.where, pk)
        if query.after is not None:
            clause.greater(*query.after)
        sql = f"SELECT body, etag FROM {table.name}{clause.sql()}"
        # rowid last: ties come back in insertion order, as Cosmos DB breaks them by _rid. Within
        # one partition `id` is unique, so an order ending in it has no ties (and keeps its index).
        order = [p if p in _KEY_COLUMNS else table.expression(p) for p in query.order_by]
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
        clause = _where(table, where, pk)
        sql = f"SELECT COUNT(*) FROM {table.name}{clause.sql()}"
        return int(self._conn().execute(sql, clause.params).fetchone()[0])

    # -- helpers --------------------------------------------------------------------------------

    def _raise_missed(self, table: str, container: str, pk: str, id_: str, etag: str | None) -> None:
        """A conditional write touched no row: tell a stale ETag from a missing document."""
        if etag is not None:
            row = self._conn().execute(f"SELECT 1 FROM {table} WHERE pk = ? AND id = ?", (pk, id_)).fetchone()
            if row:
                raise PreconditionFailed(f"{container}/{pk}/{id_} was changed (ETag mismatch)")
        raise NotFound(f"{container}/{pk}/{id_} does not exist")


def _make_schema(conn: sqlite3.Connection, table: _Table, spec: ContainerSpec) -> None:
    """The container's table, its path columns and their indexes; a file of an older layout gets
    the columns (filled from its documents) and loses the indexes it no longer needs."""
    conn.execute(f"CREATE TABLE IF NOT EXISTS {table.name} (pk TEXT NOT NULL, id TEXT NOT NULL, "
                 "etag TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (pk, id))")
    have = {row[1] for row in conn.execute(f"PRAGMA table_info({table.name})")}
    for path, column in zip(table.paths, table.columns):
        if column.strip('"') not in have:
            conn.execute(f"ALTER TABLE {table.name} ADD COLUMN {column}")
            conn.execute(f"UPDATE {table.name} SET {column} = json_extract(body, {_json_path(path)})")
    wanted: dict[str, tuple[str, ...]] = {
        f'ixc_{spec.name}_{p.replace(".", "__")}': (p,) for p in spec.indexed if p not in _KEY_COLUMNS}
    wanted |= {f'ixcl_{spec.name}_{"_".join(p.replace(".", "__") for p in paths)}': paths for paths in spec.lookups}
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ? "
                                "AND name NOT LIKE 'sqlite_autoindex_%'", (table.name.strip('"'),)).fetchall():
        if name not in wanted:  # an expression index of an older layout, or a path no longer indexed
            conn.execute(f'DROP INDEX "{name}"')
    for name, paths in wanted.items():
        columns = "".join(table.expression(p) + ", " for p in paths)
        conn.execute(f'CREATE INDEX IF NOT EXISTS "{name}" ON {table.name} ({columns}pk, id)')


def _where(table: _Table, where: Mapping[str, Any], pk: str | None) -> _Clause:
    clause = _Clause(table)
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

