"""Operations every resource kind shares: get, list under a parent, delete, create-or-return."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from shared import errors, resources
from shared.api.request import ApiRequest, ApiResponse, check_api_version, int_param, ok, page
from shared.composition import Services
from shared.documents import base as documents
from shared.documents.base import JsonObject
from shared.documents.resources import ClusterDocument, FileServerDocument, JobDocument, ResourceDocument
from shared.ids import Kind, ResourceRef
from shared.ports.state_store import Conflict as StoreConflict

MAX_RESULTS_DEFAULT = 1000


def timestamp(when: datetime) -> str:
    """The service's time format: ISO 8601, UTC, milliseconds, 'Z'."""
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def route_ref(kind: Kind, req: ApiRequest) -> ResourceRef:
    check_api_version(req)
    return ResourceRef.from_route(kind, req.route)


D = TypeVar("D", bound=ResourceDocument)
# What a read returns for a document: its wire resource (JSON: the HTTP body), perhaps with live parts.
# get_resource and list_children load each document as its kind's model, so a kind's own present
# takes that model (Present[Any] there: the kind is known at run time only).
Present = Callable[[Services, D], JsonObject]


def stored(svc: Services, doc: ResourceDocument) -> JsonObject:
    """A resource as stored; kinds with live parts (a cluster's nodes) present more."""
    return doc.wire()


def get_resource(kind: Kind, svc: Services, req: ApiRequest, present: Present[Any] = stored) -> ApiResponse:
    ref = route_ref(kind, req)
    if present is stored:  # the resource as stored: the generic model is enough (and cheapest)
        return ok(stored(svc, resources.require(svc.store, ref, ResourceDocument)))
    return ok(present(svc, resources.require(svc.store, ref)))


def list_children(kind: Kind, svc: Services, req: ApiRequest, present: Present[Any] = stored) -> ApiResponse:
    """List the resources of `kind` under the parent named in the route, one page at a time."""
    check_api_version(req)
    assert kind.parent is not None
    parent = ResourceRef.from_route(kind.parent, req.route)
    max_results = int_param(req, "maxresults", MAX_RESULTS_DEFAULT, 1, 1000)
    docs, token = resources.list_page(svc.store, parent.pk, {"kind": kind.name, "parent": parent.key},
                                      max_results, req.query.get("$skiptoken"),
                                      ResourceDocument if present is stored else None)
    if not docs and token is None and not req.query.get("$skiptoken"):
        resources.require(svc.store, parent)  # an empty list of a missing parent is a 404
    return page([present(svc, d) for d in docs], req, token)


def delete_resource(kind: Kind, svc: Services, req: ApiRequest) -> ApiResponse:
    """Delete with everything beneath; 200 when done, 204 when there was nothing (ARM's rule)."""
    ref = route_ref(kind, req)
    if svc.store.read(resources.R, ref.pk, ref.key) is None:
        if ref.parent is not None:
            resources.require(svc.store, ref.parent)
        return ApiResponse(204)
    now = timestamp(svc.clock.now())

    def stamp(doc: ResourceDocument) -> None:
        stamp_deleting(doc, now)

    resources.delete_tree(svc.store, ref, stamp, lambda doc: stop_running_parts(svc, doc))
    return ApiResponse(200)


def stamp_deleting(doc: ResourceDocument, now: str) -> None:
    """Mark a document as being deleted (its children go first, then itself)."""
    props = doc.resource.properties
    props.provisioning_state = resources.DELETING
    props.provisioning_state_transition_time = now


def stop_running_parts(svc: Services, doc: ResourceDocument) -> None:
    """Before a document goes: a cluster's pool and lanes are removed, a job's processes stopped,
    a file server's VM and its parts removed."""
    from shared import file_servers, job_runs, pools

    if isinstance(doc, ClusterDocument):
        pools.teardown(svc, doc)
    elif isinstance(doc, FileServerDocument):
        file_servers.teardown(svc, doc)
    elif isinstance(doc, JobDocument) and doc.state in job_runs.ACTIVE:
        job_runs.free_attempt(svc, doc)


def put_resource(svc: Services, ref: ResourceRef, cls: type[D], build: Callable[[], D],
                 reconcile: Callable[[D], bool], created: Callable[[D], D] | None = None,
                 present: Present[D] = stored) -> ApiResponse:
    """Create the resource, or — when it exists — let `reconcile` accept, update or refuse (409) the PUT.

    `build` returns the new document of `cls` (resources.new_document: its wire resource, its spec, the
    kind's own fields); `created` runs once after it is written (and returns it, perhaps changed);
    `reconcile` changes the stored document in place and says whether it did (False: the PUT changes
    nothing), or raises (a 409 for an immutable property)."""
    resources.require_parent(svc.store, ref)
    if svc.store.read(resources.R, ref.pk, ref.key) is None:
        new = build()
        try:
            doc = documents.create(svc.store, new)
            if created is not None:
                doc = created(doc)
            return ok(present(svc, doc))
        except StoreConflict:
            pass  # created by a concurrent PUT a moment ago: treat ours as a repeat
    return ok(present(svc, resources.mutate(svc.store, ref, reconcile, cls)))


def refuse_changes(kind: Kind, old: JsonObject | None, new: JsonObject | None,
                   mutable: frozenset[str] = frozenset()) -> list[str]:
    """Names of the properties a repeated PUT would change; 409 if any of them is immutable.
    (Wire forms: the names compared are the ones the 409 gives.)

    Returns the changed mutable ones for the caller to apply."""
    old, new = old or {}, new or {}
    changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    fixed = [k for k in changed if k not in mutable]
    if fixed:
        raise errors.Conflict(
            f"The {kind.label} already exists with different values of: {', '.join(fixed)}; "
            f"these cannot be changed. Delete it first or use another name.",
            target=f"properties.{fixed[0]}")
    return changed


def own_subnet(ref: ResourceRef) -> str:
    """The subnet of the virtual network the service makes for a cluster or file server given none."""
    network = uuid.uuid5(uuid.NAMESPACE_URL, ref.key)
    return (f"/subscriptions/{ref.subscription}/resourceGroups/{ref.resource_group}/providers/"
            f"Microsoft.Network/virtualNetworks/{network}vnet/subnets/Subnet-1")
