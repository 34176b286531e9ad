"""The scheduler's gauges (meter "batchai"): queue depth per lane and nodes per state, read from the
queues and the state store when metrics are collected. Apart from shared/telemetry.py, which only
speaks OpenTelemetry: these read the core's documents, and the node agent uses telemetry too."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from opentelemetry.metrics import CallbackOptions, Observation

from shared import lanes, telemetry
from shared.documents import base as documents
from shared.documents.nodes import NodeDocument
from shared.documents.resources import ClusterDocument
from shared.ports.messaging import EntityNotFound
from shared.ports.state_store import Query
from shared.scheduler import NODE_STATES, PRIORITIES

if TYPE_CHECKING:
    from shared.composition import Services

log = logging.getLogger(__name__)


def observe(svc: Services) -> None:
    """Queue depth per lane and node counts per state, read when metrics are collected."""
    m = telemetry.meter()
    m.create_observable_gauge("batchai.queue.depth", [_guarded(_queue_depths, svc)], unit="{job}",
                              description="Jobs waiting in each priority lane of each cluster.")
    m.create_observable_gauge("batchai.nodes", [_guarded(_node_states, svc)], unit="{node}",
                              description="Nodes of every cluster, by state.")


def _guarded(read: Callable[[Services], Iterable[Observation]], svc: Services
             ) -> Callable[[CallbackOptions], Iterable[Observation]]:
    """A gauge callback that reports nothing rather than fail (the services may be closing)."""

    def callback(options: CallbackOptions) -> Iterable[Observation]:
        try:
            return list(read(svc))
        except Exception:
            log.debug("a gauge could not be read", exc_info=True)
            return []

    return callback


def _queue_depths(svc: Services) -> Iterator[Observation]:
    for cluster in documents.query(svc.store, ClusterDocument, Query(where={"kind": "cluster"})):
        for priority in PRIORITIES:
            with contextlib.suppress(EntityNotFound):
                depth = svc.messaging.count(lanes.lane(cluster.cluster_uid, priority))
                yield Observation(depth, {"cluster": cluster.resource.id, "priority": priority})


def _node_states(svc: Services) -> Iterator[Observation]:
    counts = dict.fromkeys(NODE_STATES, 0)
    for node in documents.query(svc.store, NodeDocument, Query()):
        counts[node.state] += 1
    for state, count in counts.items():
        yield Observation(count, {"state": state})
