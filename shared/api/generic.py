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

MAX_RESULTS_DEFAULT = 1000


def timestamp(when: datetime) -> str:
    """The service's time format: ISO 8601, UTC, milliseconds, 'Z'."""
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def route_ref(kind: Kind, req: ApiRequest) -> ResourceRef:
    check_api_version(req)
    return ResourceRef.from_route(kind, req.route)


def get_resource(kind: Kind, svc: Services, req: ApiRequest) -> ApiResponse:
    ref = route_ref(kind, req)
    return ok(resources.require(svc.store, ref)["resource"])


def list_children(kind: Kind, svc: Services, req: ApiRequest) -> ApiResponse:
    """List the resources of `kind` under the parent named in the route, one page at a time."""
    check_api_version(req)
    assert kind.parent is not None
    parent = ResourceRef.from_route(kind.parent, req.route)
    max_results = int_param(req, "maxresults", MAX_RESULTS_DEFAULT, 1, 1000)
    docs, token = resources.list_page(svc.store, parent.pk, {"kind": kind.name, "parent": parent.key},
                                      max_results, req.query.get("$skiptoken"))
    if not docs and token is None and not req.query.get("$skiptoken"):
        resources.require(svc.store, parent)  # an empty list of a missing parent is a 404
    return page([d["resource"] for d in docs], req, token)


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

    resources.delete_tree(svc.store, ref, stamp)
    return ApiResponse(200)


Reconcile = Callable[[dict[str, Any]], dict[str, Any] | None]


def put_resource(svc: Services, ref: ResourceRef, build: Callable[[], tuple[dict[str, Any], dict[str, Any] | None]],
                 reconcile: Reconcile) -> ApiResponse:
    """Create the resource, or — when it exists — let `reconcile` accept, update or refuse (409) the PUT.

    `build` returns (resource, spec) of a new resource; `reconcile` gets the stored document and
    returns it changed, or None when the PUT changes nothing."""
    resources.require_parent(svc.store, ref)
    if resources.load(svc.store, ref) is None:
        resource, spec = build()
        try:
            doc = svc.store.create(resources.R, resources.new_document(ref, resource, spec))
            return ok(doc["resource"])
        except StoreConflict:
            pass  # created by a concurrent PUT a moment ago: treat ours as a repeat
    return ok(resources.mutate(svc.store, ref, reconcile)["resource"])


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
