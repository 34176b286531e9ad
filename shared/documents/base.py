"""What every stored document shares, and the typed way to read and write them through the store port.

The state store (shared/ports/state_store.py) keeps JSON; the core keeps these models. A document is
read with `read(store, NodeDocument, pk, id)` and written with `replace(store, doc)`: the ETag it was
read with travels on the model (`etag`), so every read-modify-write stays guarded (invariant 5).

Stored names are camelCase (the field's alias), Python names snake_case, as in the API models.
Fields a model does not name are kept as they were read (``extra="allow"``): a document written by a
newer release survives a read-modify-write by an older one, and the reverse.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer
from pydantic.alias_generators import to_camel
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random

from shared.models.base import REVEAL, WireModel
from shared.ports.state_store import NotFound, PreconditionFailed, Query, StateStore

JsonObject = dict[str, Any]  # a JSON object as the store and the wire carry it (only at the edges)


class StoredModel(BaseModel):
    """Base of stored shapes: camelCase names, lenient on read (the store is trusted), unknown fields kept."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    def to_json(self) -> JsonObject:
        """The JSON-ready stored form (secrets kept: this is what the service itself writes)."""
        return self.model_dump(mode="json", by_alias=True, context=REVEAL, exclude={"etag"})


class WireShaped(StoredModel):
    """A stored part that is also returned on the wire as it is: None values are left out, as API
    answers leave them out. Dump it with `wire_json` (the field that holds it does, see
    ResourceDocument): one `exclude_none` dump of the whole part, not a Python callback per nested
    model, which made a job's write three times dearer."""

    def wire_json(self) -> JsonObject:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def _wire(model: WireModel) -> JsonObject:
    return model.to_wire(reveal_secrets=True)


# An API model kept in a document: validated leniently on read (the store holds JSON strings for
# enums), written in its wire form with its secrets (documents are the service's own).
WireSpec = PlainSerializer(_wire, return_type=dict)


class Document(StoredModel):
    """A document of one container: `id` unique within partition `pk`; `etag` as read (None if new)."""

    container: ClassVar[str]

    id: str
    pk: str
    etag: str | None = Field(default=None, alias="_etag", exclude=True)

    @classmethod
    def load(cls, raw: Mapping[str, Any]) -> Self:
        return cls.model_validate(raw, strict=False)

    def copy_for_edit(self) -> Self:
        """A deep copy to change, so the model as read stays the 'before' of the change (through
        JSON: twice as fast as copy.deepcopy of a model)."""
        copy = self.load(self.to_json())
        copy.etag = self.etag
        return copy


D = TypeVar("D", bound=Document)


def read(store: StateStore, cls: type[D], pk: str, key: str) -> D | None:
    raw = store.read(cls.container, pk, key)
    return None if raw is None else cls.load(raw)


def query(store: StateStore, cls: type[D], q: Query, pk: str | None = None) -> list[D]:
    return [cls.load(raw) for raw in store.query(cls.container, q, pk=pk)]


def create(store: StateStore, doc: D) -> D:
    """Insert; Conflict if it exists. Returns `doc`, now with its ETag (not read back: it is what was stored)."""
    return _stored(doc, store.create(doc.container, doc.to_json()))


def replace(store: StateStore, doc: D, *, guarded: bool = True) -> D:
    """Overwrite under the ETag `doc` was read with (unless not `guarded`). Returns `doc` with its new ETag."""
    return _stored(doc, store.replace(doc.container, doc.to_json(), etag=doc.etag if guarded else None))


def upsert(store: StateStore, doc: D) -> D:
    return _stored(doc, store.upsert(doc.container, doc.to_json()))


def _stored(doc: D, raw: Mapping[str, Any]) -> D:
    doc.etag = raw.get("_etag")
    return doc


def delete(store: StateStore, cls: type[Document], pk: str, key: str, etag: str | None = None) -> bool:
    """Remove a document; False when it was already gone."""
    try:
        store.delete(cls.container, pk, key, etag=etag)
    except NotFound:
        return False
    return True


def retrying_on_etag() -> Retrying:
    """Re-read and retry a read-modify-write that lost an ETag race (invariant 5)."""
    return Retrying(
        retry=retry_if_exception_type(PreconditionFailed),
        stop=stop_after_attempt(100),
        wait=wait_random(0, 0.01),
        reraise=True,
    )


def edit(store: StateStore, cls: type[D], pk: str, key: str, change: Callable[[D], bool]) -> D | None:
    """Read, `change` (False: leave it) and replace one document under its ETag, again from a fresh
    read when another writer won. Returns it as written, or None if it is gone or `change` declined."""
    for attempt in retrying_on_etag():
        with attempt:
            current = read(store, cls, pk, key)
            if current is None or not change(current):
                return None
            try:
                return replace(store, current)
            except NotFound:
                return None
    return None
