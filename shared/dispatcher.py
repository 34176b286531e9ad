"""The dispatcher: places the jobs at the heads of a cluster's lanes on idle nodes, a whole gang
at a time, highest lane first, FIFO within a lane (invariants 2, 3 and 4).

Runs under the cluster's lease (leases.py), so it is the only one placing jobs on that cluster.
It looks at lane heads with `peek`, which neither locks nor spends a delivery: a job that cannot be
placed yet stays at the head of the line, and nothing behind it starts ahead of it.
A lane message is removed only after the job's start is written, and a message whose job is no
longer waiting for that attempt is just removed: redelivery and repeats change nothing.
"""

from __future__ import annotations

import logging
from datetime import datetime

from shared import job_runs, lanes, nodes, telemetry
from shared.composition import Services
from shared.documents.base import read
from shared.documents.messages import LaneEntry
from shared.documents.nodes import NodeDocument
from shared.documents.resources import ClusterDocument, JobDocument
from shared.ports.messaging import ReceivedMessage
from shared.scheduler import PRIORITIES, choose_nodes, free_nodes, largest_size

log = logging.getLogger(__name__)


def dispatch(svc: Services, cluster: ClusterDocument) -> None:
    """Start every job the cluster's idle nodes can take now, in order. Call under the lease."""
    uid = cluster.cluster_uid
    docs = {d.node_id: d for d in nodes.list_docs(svc.store, uid)}
    free = free_nodes(nodes.view(d) for d in docs.values())
    while True:
        head = _head(svc, uid)
        if head is None:
            return
        lane, message = head
        entry = LaneEntry.parse(message.body)
        # One span per decision, in the job's own trace (carried by its lane message).
        with telemetry.span("dispatch", parent=message.application_properties, link_current=True,
                            attributes={"batchai.job": entry.job, "batchai.attempt": entry.attempt + 1,
                                        "batchai.lane": lane}) as decision:
            job = read(svc.store, JobDocument, entry.pk, entry.job)
            if job is None or job.state != job_runs.QUEUED or job.attempt != entry.attempt:
                decision.set_attribute("batchai.decision", "stale")
                if not _remove(svc, lane, message):  # stale: the job started, ended or went away
                    return
                continue
            node_count = job.props.node_count
            if node_count > largest_size(cluster.scale):
                decision.set_attribute("batchai.decision", "cluster-too-small")
                job_runs.fail_job(svc, job, "ClusterTooSmall",
                                  f"The job needs {node_count} nodes; its cluster was resized and can now have at "
                                  f"most {largest_size(cluster.scale)}.")
                continue  # its message is now stale and goes on the next pass
            chosen = choose_nodes(node_count, free)
            if chosen is None:
                decision.set_attribute("batchai.decision", "wait-for-nodes")
                if _cluster_can_grow(cluster, len(docs)):
                    lanes.signal(svc.messaging, cluster.id, cluster.pk, lanes.RECONCILE)
                return  # the head holds the line until nodes come
            if _place(svc, uid, job, [docs[n] for n in chosen]):
                decision.set_attribute("batchai.decision", "placed")
                decision.set_attribute("batchai.nodes", list(chosen))
                free = [n for n in free if n.node_id not in chosen]
                if not _remove(svc, lane, message):
                    return
            else:  # a node or the job changed under us: look again from the store
                decision.set_attribute("batchai.decision", "retry")
                docs = {d.node_id: d for d in nodes.list_docs(svc.store, uid)}
                free = free_nodes(nodes.view(d) for d in docs.values())


def _head(svc: Services, uid: str) -> tuple[str, ReceivedMessage] | None:
    for priority in PRIORITIES:
        lane = lanes.lane(uid, priority)
        peeked = svc.messaging.peek(lane, 1)
        if peeked:
            return lane, peeked[0]
    return None


def _remove(svc: Services, lane: str, head: ReceivedMessage) -> bool:
    """Take the peeked head off its lane. False when another message came instead: the head is
    locked by a dispatcher that crashed, and the lane waits for that lock to expire."""
    for message in svc.messaging.receive(lane, 1):
        if message.message_id == head.message_id:
            svc.messaging.complete(lane, message)
            return True
        svc.messaging.abandon(lane, message)
    return False


def _place(svc: Services, uid: str, job: JobDocument, chosen: list[NodeDocument]) -> bool:
    """Claim every chosen node for the job's next attempt, then record the start: all or nothing."""
    now = svc.clock.now()
    attempt = job.attempt + 1
    claimed: list[NodeDocument] = []
    for doc in chosen:
        if not nodes.claim(svc.store, doc, job.id, job.pk, attempt, now):
            break
        claimed.append(doc)
    started = None
    if len(claimed) == len(chosen):
        node_ids = [d.node_id for d in chosen]
        waits: list[datetime | None] = []

        def begin(current: JobDocument) -> bool:
            if current.state != job_runs.QUEUED or current.attempt + 1 != attempt:
                return False
            queued_since = nodes.parse_time(current.props.execution_state_transition_time)
            job_runs.start(current, node_ids, now)
            current.attempt_trace_context = telemetry.inject()  # the agents continue this dispatch's span
            waits.append(queued_since)
            return True

        def wake(_: JobDocument) -> None:  # the agents' long polls answer from the written start
            for doc in chosen:
                svc.wakeups.notify(doc.id)

        started = job_runs.transition(svc, job.pk, job.id, begin, read_now=job, written_first=wake)
    if started is None:
        for doc in claimed:
            nodes.release(svc.store, uid, doc.node_id, job.id, attempt, now)
        return False
    _record_start(job, attempt, now, waits[-1] if waits else None)
    log.info("job %s attempt %d placed on %s", job.id, attempt, ", ".join(d.node_id for d in chosen))
    return True


def _record_start(job: JobDocument, attempt: int, now: datetime, queued_since: datetime | None) -> None:
    """The start's metrics: its wait in the lane, and for a first attempt the time since the create."""
    created = nodes.parse_time(job.props.creation_time)
    submitted = (now - created).total_seconds() if created is not None and attempt == 1 else None
    queued = (now - queued_since).total_seconds() if queued_since is not None else 0.0
    telemetry.record_start(queued, submitted, {"priority": job.priority})


def could_act(svc: Services, cluster: ClusterDocument) -> bool:
    """Whether a pass could start a job or grow the pool now: some node is free, or the cluster may grow.

    A job's creator calls this after publishing the job and signals a pass only when it is true.
    That loses nothing: a node freed later signals a pass of its own, and that pass sees the job.
    """
    docs = nodes.list_docs(svc.store, cluster.cluster_uid)
    return bool(free_nodes(nodes.view(d) for d in docs)) or _cluster_can_grow(cluster, len(docs))


def _cluster_can_grow(cluster: ClusterDocument, node_count: int) -> bool:
    auto = cluster.scale.auto_scale
    return auto is not None and node_count < auto.maximum_node_count

