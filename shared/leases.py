"""One lease per cluster: whoever changes which nodes run what (dispatch, scaling, repair) holds it,
so two gangs can never be placed on the same nodes at once and scaling never races placement.

A caller that finds the lease taken leaves its request in the lease's "pending" set instead of
waiting; the holder sees it before it lets go and runs the work once more for those requests. So no signal is lost and no caller blocks.
A lease not let go (its holder died) expires after `LEASE_SECONDS`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta

from shared.documents import base
from shared.documents.nodes import ClusterLease
from shared.nodes import parse_time, stamp
from shared.ports.clock import Clock
from shared.ports.state_store import Conflict, NotFound, PreconditionFailed, Query, StateStore

LEASE_SECONDS = 15.0
_ID = "lease"


def _try_take(store: StateStore, clock: Clock, uid: str, owner: str, request: str) -> bool:
    """Take the lease, or leave the request pending for its holder. True when taken."""
    while True:
        doc = base.read(store, ClusterLease, uid, _ID)
        now = clock.now()
        taken = ClusterLease(id=_ID, pk=uid, owner=owner, expires=stamp(now + timedelta(seconds=LEASE_SECONDS)))
        try:
            if doc is None:
                base.create(store, taken)
                return True
            expires = parse_time(doc.expires)
            if doc.owner is None or expires is None or expires <= now:
                taken.etag = doc.etag
                base.replace(store, taken)
                return True
            if request in doc.pending:
                return False
            doc.pending = sorted({*doc.pending, request})
            base.replace(store, doc)
            return False
        except (Conflict, PreconditionFailed, NotFound):
            continue  # somebody else moved first: look again


def _let_go(store: StateStore, uid: str, owner: str, force: bool = False) -> set[str]:
    """Release the lease; or, when work was asked for meanwhile, keep it and return those requests
    (unless `force`d: then it is released all the same and the next signal or timer redoes them)."""
    while True:
        doc = base.read(store, ClusterLease, uid, _ID)
        if doc is None or doc.owner != owner:
            return set()  # it expired and was taken over: nothing of ours to release
        try:
            pending = set(doc.pending)
            doc.pending = []
            if pending and not force:
                base.replace(store, doc)
                return pending
            doc.owner = None
            base.replace(store, doc)
            return set()
        except (PreconditionFailed, NotFound):
            continue


def run_exclusive(store: StateStore, clock: Clock, uid: str, request: str,
                  work: Callable[[set[str]], None]) -> bool:
    """Run `work({request})` under the cluster's lease, then again for whatever others requested
    meanwhile. False when another holder has it: that holder will run the work for us."""
    owner = uuid.uuid4().hex
    if not _try_take(store, clock, uid, owner, request):
        return False
    requests = {request}
    try:
        while requests:
            work(requests)
            requests = _let_go(store, uid, owner)
            if requests:
                _renew(store, clock, uid, owner)
        return True
    except BaseException:
        _let_go(store, uid, owner, force=True)
        raise


def _renew(store: StateStore, clock: Clock, uid: str, owner: str) -> None:
    doc = base.read(store, ClusterLease, uid, _ID)
    if doc is not None and doc.owner == owner:
        doc.expires = stamp(clock.now() + timedelta(seconds=LEASE_SECONDS))
        try:
            base.replace(store, doc)
        except (PreconditionFailed, NotFound):
            pass


def clear_all(store: StateStore) -> None:
    """Forget every lease: for a host that knows it is the only one and has just started. Cluster
    leases and timer leases share the container; each is removed by its id and partition alone."""
    for raw in store.query(ClusterLease.container, Query()):
        base.delete(store, ClusterLease, raw["pk"], raw["id"])  # any lease's key: no model needed
