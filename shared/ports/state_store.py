"""State store port: JSON documents in named containers, partitioned, guarded by ETags.

The core keeps all durable state here (Cosmos DB on Azure, SQLite locally). Every document
has a string ``id`` and a string ``pk`` (its partition key); ``(container, pk, id)`` is unique.
The adapter adds ``_etag`` (opaque string, changes on every write) to what it returns; callers
pass that ETag back to make a read-modify-write conditional (invariant 5).

Queries are deliberately small so that both adapters answer them the same way and the
Cosmos DB test server (no OFFSET/LIMIT, GROUP BY, DISTINCT) can run them:
equality filters on (dotted) field paths, an optional keyset "after" bound for paging,
ORDER BY on field paths, and a row limit.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


class StoreError(Exception):
    """Base class of state-store errors."""


class NotFound(StoreError):
    """The document does not exist."""


class Conflict(StoreError):
    """A document with that (pk, id) already exists."""


class PreconditionFailed(StoreError):
    """The ETag given does not match the stored document (someone else wrote it first)."""


@dataclass(frozen=True)
class ContainerSpec:
    """A container and the field paths its queries filter or sort on (adapters may index them).

    lookups: sets of paths that queries test for equality together, at any depth of the collection
    (a count of one cluster's queued jobs, the jobs with an outbox to send). An adapter answers each
    from one index, rows in id order within a partition; Cosmos DB's default policy already
    range-indexes every path, so only SQLite makes them.
    """

    name: str
    indexed: tuple[str, ...] = field(default_factory=tuple)
    lookups: tuple[tuple[str, ...], ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Query:
    """A portable query.

    where:    {"kind": "job", "parent": "..."} — every path must equal its value
              (a value that is a list/tuple means "path IN values").
    after:    (path, value) — only documents whose path value is strictly greater (keyset paging).
    order_by: paths to sort by, ascending.
    limit:    at most this many documents.
    """

    where: Mapping[str, Any] = field(default_factory=dict)
    after: tuple[str, Any] | None = None
    order_by: Sequence[str] = ()
    limit: int | None = None


class StateStore(ABC):
    """The port. Implementations must be safe to share between threads."""

    @abstractmethod
    def open(self, containers: Sequence[ContainerSpec]) -> None:
        """Create (if missing) and open the containers. Called once by the composition root."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""

    @abstractmethod
    def create(self, container: str, doc: Mapping[str, Any]) -> dict[str, Any]:
        """Insert a new document; Conflict if (pk, id) exists. Returns it with its _etag."""

    @abstractmethod
    def read(self, container: str, pk: str, id: str) -> dict[str, Any] | None:
        """The document with its _etag, or None."""

    @abstractmethod
    def replace(self, container: str, doc: Mapping[str, Any], etag: str | None = None) -> dict[str, Any]:
        """Overwrite an existing document. NotFound if missing; PreconditionFailed if etag is given
        and differs from the stored one. Returns the new document with its new _etag."""

    @abstractmethod
    def upsert(self, container: str, doc: Mapping[str, Any]) -> dict[str, Any]:
        """Insert or overwrite unconditionally. Returns the document with its _etag."""

    @abstractmethod
    def delete(self, container: str, pk: str, id: str, etag: str | None = None) -> None:
        """Remove a document. NotFound if missing; PreconditionFailed on an ETag mismatch."""

    @abstractmethod
    def query(self, container: str, query: Query, pk: str | None = None) -> list[dict[str, Any]]:
        """Documents matching the query, within one partition when pk is given, else across all."""

    @abstractmethod
    def count(self, container: str, where: Mapping[str, Any], pk: str | None = None) -> int:
        """How many documents match the equality filters."""
