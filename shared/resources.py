"""Resource documents in the state store: load, create, list in pages, change under ETag, delete.

One document per Batch AI resource in the "resources" container, partitioned by subscription:

    id        store key (see ResourceRef.key)       kind       workspace | cluster | ...
    pk        subscription, lower-cased             parent     the parent's key (or "rg|<group>")
    workspace key of the owning workspace           resource   the resource exactly as reads return it
    spec      the create properties with secret values (never returned by a read)
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random

from shared import errors
from shared.ids import KINDS, WORKSPACE, ResourceRef
from shared.ports.state_store import ContainerSpec, NotFound, PreconditionFailed, Query, StateStore

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

DELETING = "deleting"


def new_document(ref: ResourceRef, resource: dict[str, Any], spec: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "id": ref.key,
        "pk": ref.pk,
        "kind": ref.kind.name,
        "parent": ref.parent_key,
        "workspace": ref.workspace.key,
        "resource": resource,
        "spec": spec,
    }


def envelope(ref: ResourceRef, properties: dict[str, Any]) -> dict[str, Any]:
    """The ARM envelope every resource is returned in."""
    return {"id": ref.arm_id, "name": ref.name, "type": ref.kind.arm_type, "properties": properties}


def load(store: StateStore, ref: ResourceRef) -> dict[str, Any] | None:
    return store.read(R, ref.pk, ref.key)


def require(store: StateStore, ref: ResourceRef) -> dict[str, Any]:
    """The document, or a 404 that names the first missing resource on the way down."""
    doc = load(store, ref)
    if doc is None:
        raise not_found(store, ref)
    return doc


def require_parent(store: StateStore, ref: ResourceRef) -> dict[str, Any] | None:
    """The parent document of `ref` (None for a workspace): it must exist and not be going away."""
    parent = ref.parent
    if parent is None:
        return None
    doc = require(store, parent)
    if doc["resource"]["properties"].get("provisioningState") == DELETING:
        raise errors.Conflict(
            f"The {parent.kind.label} '{parent.name}' is being deleted.", target=parent.kind.path_param
        )
    return doc


def not_found(store: StateStore, ref: ResourceRef) -> errors.ResourceNotFound:
    missing = ref
    ancestor = ref.parent
    while ancestor is not None:  # report the highest missing ancestor, it explains the rest
        if load(store, ancestor) is None:
            missing = ancestor
        ancestor = ancestor.parent
    where = f"workspace '{missing.names[0]}'" if missing.parent else f"resource group '{missing.resource_group}'"
    if missing.parent and missing.parent.kind is not WORKSPACE:
        where = f"{missing.parent.kind.label.lower()} '{missing.parent.name}'"
    return errors.ResourceNotFound(
        f"The {missing.kind.label} '{missing.name}' was not found in {where}.", target=missing.kind.path_param
    )


def retrying_on_etag() -> Retrying:
    """Re-read and retry a read-modify-write that lost an ETag race (invariant 5)."""
    return Retrying(
        retry=retry_if_exception_type(PreconditionFailed),
        stop=stop_after_attempt(100),
        wait=wait_random(0, 0.01),
        reraise=True,
    )


def mutate(store: StateStore, ref: ResourceRef, change: Callable[[dict[str, Any]], dict[str, Any] | None]
           ) -> dict[str, Any]:
    """Apply `change` to the current document under its ETag, retrying on conflicts.

    `change` gets a fresh copy each try and returns the new document, or None to leave it."""
    for attempt in retrying_on_etag():
        with attempt:
            doc = require(store, ref)
            new = change(doc)
            if new is None:
                return doc
            return store.replace(R, new, etag=doc["_etag"])
    raise AssertionError("unreachable")


def mutate_doc(store: StateStore, doc: dict[str, Any], edit: Callable[[dict[str, Any]], bool]
               ) -> dict[str, Any] | None:
    """Apply `edit` (False: no change) to the stored resource document under its ETag, retrying
    on conflicts. Returns the document as written, or None if it is gone or unchanged."""
    return edit_stored(store, R, doc["pk"], doc["id"], edit)


def edit_stored(store: StateStore, container: str, pk: str, key: str, edit: Callable[[dict[str, Any]], bool]
                ) -> dict[str, Any] | None:
    """Read, `edit` (False: leave it) and replace one document under its ETag, again from a fresh
    read when another writer won. Returns it as written, or None if it is gone or `edit` declined."""
    for attempt in retrying_on_etag():
        with attempt:
            current = store.read(container, pk, key)
            if current is None or not edit(current):
                return None
            try:
                return store.replace(container, current, etag=current["_etag"])
            except NotFound:
                return None
    return None


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


def list_page(store: StateStore, pk: str, where: dict[str, Any], max_results: int, skip_token: str | None
              ) -> tuple[list[dict[str, Any]], str | None]:
    """One page of documents ordered by key, and the token of the next page (None at the end)."""
    after = ("id", decode_token(skip_token)) if skip_token else None
    docs = store.query(R, Query(where=where, after=after, order_by=("id",), limit=max_results + 1), pk=pk)
    if len(docs) > max_results:
        docs = docs[:max_results]
        return docs, encode_token(docs[-1]["id"])
    return docs, None


def children(store: StateStore, ref: ResourceRef) -> list[dict[str, Any]]:
    return store.query(R, Query(where={"parent": ref.key}), pk=ref.pk)


def delete_tree(store: StateStore, ref: ResourceRef, stamp: Callable[[dict[str, Any]], None],
                before_delete: Callable[[dict[str, Any]], None] = lambda doc: None) -> bool:
    """Delete a resource and everything under it. False when it did not exist.

    The resource is first marked `deleting` (so no child can be added and a crash leaves a visible,
    resumable state), then its children go, deepest first, then itself (after `before_delete`
    has stopped whatever runs for it)."""

    def mark(doc: dict[str, Any]) -> dict[str, Any] | None:
        if doc["resource"]["properties"].get("provisioningState") == DELETING:
            return None
        stamp(doc)
        return doc

    if load(store, ref) is None:
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


def ref_of(doc: dict[str, Any], parent: ResourceRef) -> ResourceRef:
    """The ref of a child document found under `parent`."""
    kind = next(k for k in KINDS if k.name == doc["kind"])
    return parent.child(kind, doc["resource"]["name"])
