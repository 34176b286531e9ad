"""State store on Azure Cosmos DB (SQL API), through the synchronous ``azure-cosmos`` client.

Every container is partitioned on ``/pk``. Conditional writes send the caller's ETag with
``IfNotModified`` so Cosmos DB itself decides (HTTP 412), which keeps read-modify-write safe across
processes. Queries are parameterised SQL restricted to what both Cosmos DB and the
``@vercel/cosmosdb-server`` test server answer: equality/IN, ``>``, ORDER BY, TOP, VALUE COUNT.

Documents come back with ``_etag`` only; ``_rid``, ``_self``, ``_attachments`` and ``_ts`` are
dropped so this adapter and the SQLite one return the same shape.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from azure.core.credentials import TokenCredential
from azure.core import MatchConditions
from azure.cosmos import ContainerProxy, CosmosClient, PartitionKey
from azure.cosmos.exceptions import CosmosHttpResponseError

from shared.ports.state_store import (
    Conflict,
    ContainerSpec,
    NotFound,
    PreconditionFailed,
    Query,
    StateStore,
    StoreError,
)

_PATH_SEGMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SYSTEM_PROPERTIES = frozenset({"_rid", "_self", "_attachments", "_ts"})
_RESERVED = _SYSTEM_PROPERTIES | {"_etag"}
_PARTITION_KEY_PATH = "/pk"
# @vercel/cosmosdb-server 1.0.1 answers a point read of a missing id with this JavaScript
# TypeError as an HTTP 500 (instead of 404); real Cosmos DB never sends this text.
_TEST_SERVER_MISSING_READ_BUG = "Cannot read properties of undefined"


def _segments(path: str) -> list[str]:
    segments = path.split(".")
    if not all(_PATH_SEGMENT.fullmatch(s) for s in segments):
        raise ValueError(f"unsupported field path {path!r}: use dotted identifiers")
    return segments


def _field(path: str) -> str:
    """``a.b`` as ``c["a"]["b"]`` (bracket form: no clash with Cosmos DB reserved words)."""
    return "c" + "".join(f'["{s}"]' for s in _segments(path))


def _scalar(value: Any) -> Any:
    """Filters compare strings, numbers, booleans and null; anything else is a caller error."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"cannot compare a field with {type(value).__name__} {value!r}")


def _indexing_policy(indexed: Sequence[str]) -> dict[str, Any] | None:
    """Default range indexing plus composite indexes, which ORDER BY on two or more paths needs.

    The port declares indexed paths, not sort combinations, so every ordered pair of indexed paths
    (and the whole tuple, in declared order) gets an ascending composite index.
    """
    if len(indexed) < 2:
        return None
    combos: list[tuple[str, ...]] = list(itertools.permutations(indexed, 2))
    if len(indexed) > 2:
        combos.append(tuple(indexed))
    return {
        "indexingMode": "consistent",
        "automatic": True,
        "includedPaths": [{"path": "/*"}],
        "excludedPaths": [{"path": '/"_etag"/?'}],
        "compositeIndexes": [
            [{"path": "/" + "/".join(_segments(p)), "order": "ascending"} for p in combo] for combo in combos
        ],
    }


class _Sql:
    """A parameterised WHERE clause under construction."""

    def __init__(self) -> None:
        self.conditions: list[str] = []
        self.parameters: list[dict[str, Any]] = []
        self.empty = False  # an empty IN list: nothing can match

    def param(self, value: Any) -> str:
        name = f"@p{len(self.parameters)}"
        self.parameters.append({"name": name, "value": value})
        return name

    def equals(self, path: str, value: Any) -> None:
        if isinstance(value, (list, tuple)):
            if not value:
                self.empty = True
                return
            names = ", ".join(self.param(_scalar(v)) for v in value)
            self.conditions.append(f"{_field(path)} IN ({names})")
        else:
            self.conditions.append(f"{_field(path)} = {self.param(_scalar(value))}")

    def where(self) -> str:
        return " WHERE " + " AND ".join(self.conditions) if self.conditions else ""


class CosmosStateStore(StateStore):
    """StateStore on one Cosmos DB database; the client is thread-safe, so is this."""

    def __init__(self, endpoint: str, key: str | TokenCredential, database: str, *, verify_tls: bool = True,
                 endpoint_discovery: bool = True) -> None:
        # The client is built in open(): constructing it may already talk to the account.
        self._endpoint = endpoint
        self._key = key
        self._database = database
        self._verify_tls = verify_tls
        self._endpoint_discovery = endpoint_discovery
        self._client: CosmosClient | None = None
        self._containers: dict[str, ContainerProxy] = {}
        self._lock = threading.Lock()

    def open(self, containers: Sequence[ContainerSpec]) -> None:
        with self._lock:
            if self._client is None:
                self._client = CosmosClient(self._endpoint, credential=self._key,
                                            connection_verify=self._verify_tls,
                                            enable_endpoint_discovery=self._endpoint_discovery)
            db = self._client.create_database_if_not_exists(self._database)
            for spec in containers:
                self._containers[spec.name] = db.create_container_if_not_exists(
                    id=spec.name, partition_key=PartitionKey(path=_PARTITION_KEY_PATH),
                    indexing_policy=_indexing_policy(spec.indexed))

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
            self._containers = {}
        if client is not None:
            client.close()

    def _container(self, name: str) -> ContainerProxy:
        try:
            return self._containers[name]
        except KeyError:
            raise StoreError(f"container {name!r} was not opened") from None

    def create(self, container: str, doc: Mapping[str, Any]) -> dict[str, Any]:
        body = _body(doc)
        with _mapped(container, body):
            return _clean(self._container(container).create_item(body))

    def read(self, container: str, pk: str, id: str) -> dict[str, Any] | None:
        proxy = self._container(container)
        try:
            return _clean(proxy.read_item(id, partition_key=pk))
        except CosmosHttpResponseError as exc:
            if exc.status_code == 404:
                return None
            if exc.status_code == 500 and _TEST_SERVER_MISSING_READ_BUG in str(exc):
                # Work-around for the test server's 500 on a missing id: ask again by query.
                found = self.query(container, Query(where={"id": id}, limit=1), pk=pk)
                return found[0] if found else None
            raise

    def replace(self, container: str, doc: Mapping[str, Any], etag: str | None = None) -> dict[str, Any]:
        body = _body(doc)
        with _mapped(container, body):
            return _clean(self._container(container).replace_item(body["id"], body, **_condition(etag)))

    def upsert(self, container: str, doc: Mapping[str, Any]) -> dict[str, Any]:
        body = _body(doc)
        with _mapped(container, body):
            return _clean(self._container(container).upsert_item(body))

    def delete(self, container: str, pk: str, id: str, etag: str | None = None) -> None:
        with _mapped(container, {"pk": pk, "id": id}):
            self._container(container).delete_item(id, partition_key=pk, **_condition(etag))

    def query(self, container: str, query: Query, pk: str | None = None) -> list[dict[str, Any]]:
        proxy = self._container(container)
        sql = _filters(query.where, pk)
        if query.after is not None:
            path, value = query.after
            if value is None:
                raise TypeError("an 'after' bound cannot be null")
            sql.conditions.append(f"{_field(path)} > {sql.param(_scalar(value))}")
        if sql.empty or query.limit is not None and query.limit <= 0:
            return []
        top = f"TOP {int(query.limit)} " if query.limit is not None else ""
        text = f"SELECT {top}* FROM c{sql.where()}"
        if query.order_by:
            text += " ORDER BY " + ", ".join(f"{_field(p)} ASC" for p in query.order_by)
        return [_clean(item) for item in self._run(proxy, text, sql.parameters, pk)]

    def count(self, container: str, where: Mapping[str, Any], pk: str | None = None) -> int:
        proxy = self._container(container)
        sql = _filters(where, pk)
        if sql.empty:
            return 0
        return int(sum(self._run(proxy, f"SELECT VALUE COUNT(1) FROM c{sql.where()}", sql.parameters, pk)))

    @staticmethod
    def _run(proxy: ContainerProxy, text: str, parameters: list[dict[str, Any]], pk: str | None) -> list[Any]:
        scope: dict[str, Any] = {"partition_key": pk} if pk is not None else {"enable_cross_partition_query": True}
        return list(proxy.query_items(text, parameters=parameters, **scope))


def _filters(where: Mapping[str, Any], pk: str | None) -> _Sql:
    """Equality filters; a pk also goes into the SQL text (the test server answers 400 without it)."""
    sql = _Sql()
    if pk is not None:
        sql.conditions.append(f"c.pk = {sql.param(pk)}")
    for path, value in where.items():
        sql.equals(path, value)
    return sql


def _condition(etag: str | None) -> dict[str, Any]:
    return {"etag": etag, "match_condition": MatchConditions.IfNotModified} if etag is not None else {}


def _body(doc: Mapping[str, Any]) -> dict[str, Any]:
    """What is sent: the caller's fields without the properties Cosmos DB owns."""
    if not isinstance(doc.get("pk"), str) or not isinstance(doc.get("id"), str):
        raise ValueError("a document needs string 'id' and 'pk' fields")
    return {k: v for k, v in doc.items() if k not in _RESERVED}


def _clean(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k not in _SYSTEM_PROPERTIES}


@contextmanager
def _mapped(container: str, doc: Mapping[str, Any]) -> Iterator[None]:
    """Translate the HTTP statuses the port defines into its exceptions."""
    try:
        yield
    except CosmosHttpResponseError as exc:
        where = f"{container}/{doc.get('pk')}/{doc.get('id')}"
        if exc.status_code == 404:
            raise NotFound(f"{where} does not exist") from exc
        if exc.status_code == 409:
            raise Conflict(f"{where} already exists") from exc
        if exc.status_code == 412:
            raise PreconditionFailed(f"{where} was changed (ETag mismatch)") from exc
        raise


__all__ = ["CosmosStateStore"]
