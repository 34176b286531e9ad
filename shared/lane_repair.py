"""Lost lane messages come back, at a cost that does not grow with the queue.

A queued job's lane message is sent right after the write that queued it (a create, a requeue); a
crash in between loses it. The store is the truth, so the reconcile timer compares, per cluster,
how many jobs are queued (one count on an index) with how many messages its lanes hold (one count
each). Equal or more: nothing is missing (a surplus is stale messages, dropped when they reach the
head), and the round costs four counts, at 10 queued jobs as at 100,000. Fewer in every round
for CONFIRM_SECONDS (a job being created shows as one message short for a moment; a lost message
stays short): the lanes are peeked whole, once, and only the queued jobs whose message (id
job#attempt) is not among them are published again, one send per lane. So a lane holds at most one message per queued job attempt,
whatever its duplicate-detection window (a job that waited longer than it is not sent twice).
A message sent between the peek and the walk is repeated with the same id seconds later, which
the lane's duplicate detection drops. A stale message (of a job terminated while it waited) can
hide a lost one from the counts until the dispatcher drops it at the head; the lost job is then
published by the next round: late, never lost.

Runs outside the cluster's lease: it only adds messages, which the dispatcher checks against the
store before it places anything.
"""

from __future__ import annotations

import logging
from datetime import datetime

from shared import job_runs, lanes
from shared.composition import Services
from shared.documents.base import query
from shared.documents.resources import ClusterDocument, JobDocument
from shared.ports.state_store import Query
from shared.resources import R
from shared.scheduler import PRIORITIES

log = logging.getLogger(__name__)
PAGE = 1000  # queued jobs read per query while looking for the ones without a message
CONFIRM_SECONDS = 20.0  # how long the lanes must stay short before they are searched
_short_since: dict[str, datetime] = {}  # cluster uid -> when its lanes were first seen short (this process)


def queued_filter(cluster: ClusterDocument) -> dict[str, object]:
    """The store filter of a cluster's queued jobs (an index lookup, see resources.RESOURCES)."""
    return {"kind": "job", "cluster": cluster.id, "state": job_runs.QUEUED}


def repair(svc: Services, cluster: ClusterDocument, confirm: bool = True) -> int:
    """Publish again the lane messages of the cluster's queued jobs that have none; how many.
    Without `confirm`, at once (the lanes were just made: every queued job needs its message)."""
    uid = cluster.cluster_uid
    names = {priority: lanes.lane(uid, priority) for priority in PRIORITIES}
    queued = svc.store.count(R, queued_filter(cluster), pk=cluster.pk)
    held = {priority: svc.messaging.count(name) for priority, name in names.items()}
    if sum(held.values()) >= queued:
        _short_since.pop(uid, None)
        return 0
    now = svc.clock.now()
    if confirm and (now - _short_since.setdefault(uid, now)).total_seconds() < CONFIRM_SECONDS:
        return 0
    _short_since[uid] = now  # searched now; again only if still short a while from now
    present = {m.message_id for priority, name in names.items() if held[priority]
               for m in svc.messaging.peek(name, held[priority])}
    missing: dict[str, list[JobDocument]] = {}
    after: tuple[str, str] | None = None
    while True:
        page = query(svc.store, JobDocument, Query(where=queued_filter(cluster), after=after, order_by=("id",),
                                                   limit=PAGE), pk=cluster.pk)
        for job in page:
            if lanes.message_id(job) not in present:
                missing.setdefault(job.priority, []).append(job)
        if len(page) < PAGE:
            break
        after = ("id", page[-1].id)
    for jobs in missing.values():
        lanes.publish_jobs(svc.messaging, jobs)
    repaired = sum(len(jobs) for jobs in missing.values())
    if repaired:
        log.warning("cluster %s: %d queued job(s) had no lane message; published again", cluster.id, repaired)
    return repaired
