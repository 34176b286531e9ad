"""Operations every resource kind shares: get, list under a parent, delete, create-or-return."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from shared import errors, resources
from shared.api.request import ApiRequest, ApiResponse, check_api_version, int_param, ok, page
from shared.composition import Services
from shared.ids import Kind, ResourceRef
from shared.ports.state_store import Conflict as StoreConflict
from shared.documents.resources import JobDocument

MAX_RESULTS_DEFAULT = 1000


def timestamp(when: datetime) -> str:
    """The service's time format: ISO 8601, UTC, milliseconds, 'Z'."""
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def route_ref(kind: Kind, req: ApiRequest) -> ResourceRef:
    check_api_version(req)
    return ResourceRef.from_route(kind, req.route)


Present = Callable[[Services, dict[str, Any]], dict[str, Any]]


def stored(svc: Services, doc: dict[str, Any]) -> dict[str, Any]:
    """A resource as stored; kinds with live parts (a cluster's nodes) present more."""
    return doc["resource"]


def get_resource(kind: Kind, svc: Services, req: ApiRequest, present: Present = stored) -> ApiResponse:
    ref = route_ref(kind, req)
    return ok(present(svc, resources.require(svc.store, ref)))


def list_children(kind: Kind, svc: Services, req: ApiRequest, present: Present = stored) -> ApiResponse:
    """List the resources of `kind` under the parent named in the route, one page at a time."""
    check_api_version(req)
    assert kind.parent is not None
    parent = ResourceRef.from_route(kind.parent, req.route)
    max_results = int_param(req, "maxresults", MAX_RESULTS_DEFAULT, 1, 1000)
    docs, token = resources.list_page(svc.store, parent.pk, {"kind": kind.name, "parent": parent.key},
                                      max_results, req.query.get("$skiptoken"))
    if not docs and token is None and not req.query.get("$skiptoken"):
        resources.require(svc.store, parent)  # an empty list of a missing parent is a 404
    return page([present(svc, d) for d in docs], req, token)


def delete_resource(kind: Kind, svc: Services, req: ApiRequest) -> ApiResponse:
    """Delete with everything beneath; 200 when done, 204 when there was nothing (ARM's rule)."""
    ref = route_ref(kind, req)
    if resources.load(svc.store, ref) is None:
        if ref.parent is not None:
            resources.require(svc.store, ref.parent)
        return ApiResponse(204)
    now = timestamp(svc.clock.now())

    def stamp(doc: dict[str, Any]) -> None:
        props = doc["resource"]["properties"]
        props["provisioningState"] = resources.DELETING
        props["provisioningStateTransitionTime"] = now

    resources.delete_tree(svc.store, ref, stamp, lambda doc: stop_running_parts(svc, doc))
    return ApiResponse(200)


def stop_running_parts(svc: Services, doc: dict[str, Any]) -> None:
    """Before a document goes: a cluster's pool and lanes are removed, a job's processes stopped,
    a file server's VM and its parts removed."""
    from shared import file_servers, job_runs, pools

    if doc["kind"] == "cluster":
        pools.teardown(svc, doc)
    elif doc["kind"] == "fileServer":
        file_servers.teardown(svc, doc)
    elif doc["kind"] == "job" and doc.get("state") in job_runs.ACTIVE:
        job_runs.free_attempt(svc, JobDocument.load(doc))  # bridge


Reconcile = Callable[[dict[str, Any]], dict[str, Any] | None]


Build = Callable[[], tuple[dict[str, Any], dict[str, Any] | None] | tuple[dict[str, Any], dict[str, Any] | None,
                                                                           dict[str, Any]]]


def put_resource(svc: Services, ref: ResourceRef, build: Build, reconcile: Reconcile,
                 created: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
                 present: Present = stored) -> ApiResponse:
    """Create the resource, or — when it exists — let `reconcile` accept, update or refuse (409) the PUT.

    `build` returns (resource, spec) of a new resource, and optionally more fields of its document;
    `created` runs once after the document is written (and returns it, perhaps changed);
    `reconcile` gets the stored document and returns it changed, or None when the PUT changes nothing."""
    resources.require_parent(svc.store, ref)
    if resources.load(svc.store, ref) is None:
        resource, spec, *more = build()
        try:
            doc = svc.store.create(resources.R, {**resources.new_document(ref, resource, spec), **(more[0] if more else {})})
            if created is not None:
                doc = created(doc)
            return ok(present(svc, doc))
        except StoreConflict:
            pass  # created by a concurrent PUT a moment ago: treat ours as a repeat
    return ok(present(svc, resources.mutate(svc.store, ref, reconcile)))


def refuse_changes(kind: Kind, old: dict[str, Any] | None, new: dict[str, Any] | None,
                   mutable: frozenset[str] = frozenset()) -> list[str]:
    """Names of the properties a repeated PUT would change; 409 if any of them is immutable.

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
