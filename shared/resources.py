"""Resource documents in the state store: load, create, list in pages, change under ETag, delete.

One document per Batch AI resource in the "resources" container, partitioned by subscription:

    id        store key (see ResourceRef.key)       kind       workspace | cluster | ...
    pk        subscription, lower-cased             parent     the parent's key (or "rg|<group>")
    workspace key of the owning workspace           resource   the resource exactly as reads return it
    spec      the create properties with secret values (never returned by a read)

Read and written as the models of shared/documents/resources.py (one per kind, `load_resource` picks
it): `require(store, ref, JobDocument)` when the kind is known, `require(store, ref)` for any kind.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any, TypeVar, overload

from shared import errors
from shared.documents import base
from shared.documents.base import JsonObject
from shared.documents.base import retrying_on_etag as retrying_on_etag  # re-exported (job_runs imports it here)
from shared.documents.resources import DELETING as DELETING  # re-exported
from shared.documents.resources import ResourceDocument, load_resource
from shared.ids import KINDS, WORKSPACE, ResourceRef
from shared.ports.state_store import ContainerSpec, NotFound, Query, StateStore

# Lookups: a cluster's queued jobs (counted and paged by the reconciler, shared/pools.py) and the
# jobs with events still to send (the outbox timer, shared/events.py), cheap at any depth.
RESOURCES = ContainerSpec("resources", indexed=("kind", "parent", "workspace", "cluster", "state"),
                          lookups=(("kind", "cluster", "state"), ("outboxPending",)))
# The nodes of every cluster, partitioned by cluster (see shared/nodes.py).
NODES = ContainerSpec("nodes", indexed=("state",))
# One lease per cluster, held by whoever changes which nodes run what (see shared/leases.py).
LEASES = ContainerSpec("leases")
HEARTBEATS = ContainerSpec("heartbeats")  # one per node, upserted without ETags (see watchdog.py)
# Subscription-wide role assignments, partitioned by subscription (workspace ones are resources).
ROLE_ASSIGNMENTS = ContainerSpec("roleAssignments")
CONTAINERS = (RESOURCES, NODES, LEASES, HEARTBEATS, ROLE_ASSIGNMENTS)
R = RESOURCES.name

D = TypeVar("D", bound=ResourceDocument)


def new_document(ref: ResourceRef, cls: type[D], resource: JsonObject, spec: object = None, **fields: object) -> D:
    """A new document of `cls` for `ref`: its wire `resource` (see `envelope`), its create `spec` (the
    request's model, or None) and the kind's own fields (by their Python or stored names)."""
    return cls.load({"id": ref.key, "pk": ref.pk, "kind": ref.kind.name, "parent": ref.parent_key,
                     "workspace": ref.workspace.key, "resource": resource, "spec": spec, **fields})


def envelope(ref: ResourceRef, properties: JsonObject) -> JsonObject:
    """The ARM envelope every resource is returned in (wire JSON: a create's properties are its
    request model's wire form plus the service's fields; `new_document` types it)."""
    return {"id": ref.arm_id, "name": ref.name, "type": ref.kind.arm_type, "properties": properties}


@overload
def load(store: StateStore, ref: ResourceRef) -> ResourceDocument | None: ...
@overload
def load(store: StateStore, ref: ResourceRef, cls: type[D]) -> D | None: ...
def load(store: StateStore, ref: ResourceRef, cls: type[ResourceDocument] | None = None) -> ResourceDocument | None:
    """The document of `ref` as `cls`, or without one as the model of its stored kind."""
    raw = store.read(R, ref.pk, ref.key)
    if raw is None:
        return None
    return load_resource(raw) if cls is None else cls.load(raw)


@overload
def require(store: StateStore, ref: ResourceRef) -> ResourceDocument: ...
@overload
def require(store: StateStore, ref: ResourceRef, cls: type[D]) -> D: ...
def require(store: StateStore, ref: ResourceRef, cls: type[ResourceDocument] | None = None) -> ResourceDocument:
    """The document, or a 404 that names the first missing resource on the way down."""
    doc = load(store, ref) if cls is None else load(store, ref, cls)
    if doc is None:
        raise not_found(store, ref)
    return doc


def require_parent(store: StateStore, ref: ResourceRef) -> ResourceDocument | None:
    """The parent document of `ref` (None for a workspace): it must exist and not be going away."""
    parent = ref.parent
    if parent is None:
        return None
    doc = require(store, parent)
    if doc.deleting:
        raise errors.Conflict(
            f"The {parent.kind.label} '{parent.name}' is being deleted.", target=parent.kind.path_param
        )
    return doc


def not_found(store: StateStore, ref: ResourceRef) -> errors.ResourceNotFound:
    missing = ref
    ancestor = ref.parent
    while ancestor is not None:  # report the highest missing ancestor, it explains the rest
        if store.read(R, ancestor.pk, ancestor.key) is None:
            missing = ancestor
        ancestor = ancestor.parent
    where = f"workspace '{missing.names[0]}'" if missing.parent else f"resource group '{missing.resource_group}'"
    if missing.parent and missing.parent.kind is not WORKSPACE:
        where = f"{missing.parent.kind.label.lower()} '{missing.parent.name}'"
    return errors.ResourceNotFound(
        f"The {missing.kind.label} '{missing.name}' was not found in {where}.", target=missing.kind.path_param
    )


@overload
def mutate(store: StateStore, ref: ResourceRef, change: Callable[[ResourceDocument], bool]) -> ResourceDocument: ...
@overload
def mutate(store: StateStore, ref: ResourceRef, change: Callable[[D], bool], cls: type[D]) -> D: ...
def mutate(store: StateStore, ref: ResourceRef, change: Callable[[Any], bool],  # typed by the overloads
           cls: type[ResourceDocument] | None = None) -> ResourceDocument:
    """Apply `change` (in place; False: leave it) to the current document under its ETag, again from
    a fresh read when another writer won (404 if it is gone). Returns it as written, or as read."""
    for attempt in retrying_on_etag():
        with attempt:
            doc = require(store, ref) if cls is None else require(store, ref, cls)
            if not change(doc):
                return doc
            return base.replace(store, doc)
    raise AssertionError("unreachable")


def mutate_doc(store: StateStore, doc: D, edit: Callable[[D], bool]) -> D | None:
    """Apply `edit` (False: no change) to the stored `doc` under its ETag, again from a fresh read
    when another writer won. Returns the document as written, or None if it is gone or unchanged."""
    return base.edit(store, type(doc), doc.pk, doc.id, edit)


def encode_token(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def decode_token(token: str) -> str:
    try:
        value = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        value = ""
    if "|" not in value:  # every key is "kind|..."; anything else was not made by us
        raise errors.InvalidParameter("The $skiptoken is not valid: use the nextLink of the previous page.",
                                      target="$skiptoken")
    return value


def list_page(store: StateStore, pk: str, where: dict[str, object], max_results: int, skip_token: str | None,
              cls: type[ResourceDocument] | None = None) -> tuple[list[ResourceDocument], str | None]:
    """One page of documents ordered by key, and the token of the next page (None at the end).
    Each as `cls`, or without one as the model of its kind (`ResourceDocument` is the cheapest:
    enough for a list that returns resources as stored)."""
    after = ("id", decode_token(skip_token)) if skip_token else None
    raws = store.query(R, Query(where=where, after=after, order_by=("id",), limit=max_results + 1), pk=pk)
    docs = [load_resource(raw) if cls is None else cls.load(raw) for raw in raws[:max_results]]
    if len(raws) > max_results:
        return docs, encode_token(docs[-1].id)
    return docs, None


def children(store: StateStore, ref: ResourceRef) -> list[ResourceDocument]:
    return [load_resource(raw) for raw in store.query(R, Query(where={"parent": ref.key}), pk=ref.pk)]


def delete_tree(store: StateStore, ref: ResourceRef, stamp: Callable[[ResourceDocument], None],
                before_delete: Callable[[ResourceDocument], None] = lambda doc: None) -> bool:
    """Delete a resource and everything under it. False when it did not exist.

    The resource is first marked `deleting` (so no child can be added and a crash leaves a visible,
    resumable state), then its children go, deepest first, then itself (after `before_delete`
    has stopped whatever runs for it)."""

    def mark(doc: ResourceDocument) -> bool:
        if doc.deleting:
            return False
        stamp(doc)
        return True

    if store.read(R, ref.pk, ref.key) is None:
        return False
    marked = mutate(store, ref, mark)
    for child in children(store, ref):
        child_ref = ref_of(child, ref)
        delete_tree(store, child_ref, stamp, before_delete)
    before_delete(marked)
    try:
        store.delete(R, ref.pk, ref.key)
    except NotFound:  # a concurrent delete finished first
        pass
    return True


def ref_of(doc: ResourceDocument, parent: ResourceRef) -> ResourceRef:
    """The ref of a child document found under `parent`."""
    kind = next(k for k in KINDS if k.name == doc.kind)
    return parent.child(kind, doc.resource.name)
