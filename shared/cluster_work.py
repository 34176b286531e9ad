"""What the cluster-work queue asks for: dispatch a cluster's lanes, or reconcile its pool (which
is followed by a dispatch, since new or freed nodes may take the waiting jobs). Both run under the
cluster's lease; a request that finds the lease taken is left to the holder. A reconcile first
repairs lost lane messages (shared/lane_repair.py), outside the lease."""

from __future__ import annotations

import logging

from shared import dispatcher, lane_repair, lanes, leases, pools
from shared.composition import Services
from shared.documents import base
from shared.documents.messages import WorkSignal
from shared.documents.resources import ClusterDocument, ErrorEntry
from shared.ports.messaging import MessagingError
from shared.ports.state_store import Query
from shared.ports.vm_pool import PoolError

log = logging.getLogger(__name__)


def handle_message(svc: Services, body: bytes) -> None:
    """A cluster-work message (shared/documents/messages.py `WorkSignal`)."""
    request = WorkSignal.parse(body)
    run(svc, request.pk, request.cluster, request.action)


def run(svc: Services, pk: str, cluster_key: str, action: str) -> None:
    cluster = base.read(svc.store, ClusterDocument, pk, cluster_key)
    if cluster is None or cluster.deleting:
        return
    if action == lanes.RECONCILE and cluster.provisioned:  # its lanes exist
        try:  # outside the lease: it only adds messages, which the dispatcher checks against the store
            lane_repair.repair(svc, cluster)
        except MessagingError:  # the next round tries again
            log.exception("lane repair of cluster %s failed", cluster.id)

    def work(requests: set[str]) -> None:
        current = base.read(svc.store, ClusterDocument, pk, cluster_key)
        if current is None or current.deleting:
            return
        if lanes.RECONCILE in requests:
            try:
                pools.reconcile(svc, current)
                pools.set_errors(svc, current, [])
            except PoolError as exc:  # shown on the cluster; the next round tries again
                pools.set_errors(svc, current, [ErrorEntry(code="PoolOperationFailed", message=str(exc)[:1000])])
            except ValueError as exc:  # settings the pool refuses (no subnet, no credentials...)
                pools.set_errors(svc, current, [ErrorEntry(code="InvalidPoolSettings", message=str(exc)[:1000])])
            current = base.read(svc.store, ClusterDocument, pk, cluster_key) or current
        dispatcher.dispatch(svc, current)

    leases.run_exclusive(svc.store, svc.clock, cluster.cluster_uid, action, work)


def reconcile_all(svc: Services) -> None:
    """The timer's round: every cluster's pool reconciled (and its lanes dispatched)."""
    for cluster in base.query(svc.store, ClusterDocument, Query(where={"kind": "cluster"})):
        if cluster.deleting:
            continue
        try:
            run(svc, cluster.pk, cluster.id, lanes.RECONCILE)
        except Exception:  # one cluster's failure never stops the others' round
            log.exception("reconciling cluster %s failed", cluster.id)
