"""Queues of the scheduler: each cluster's priority lanes, and the queue of cluster work signals.

A job waits in its cluster's lane for its priority (high, normal, low), FIFO within the lane. The
"cluster-work" queue wakes the function that dispatches (places lane heads on nodes) or reconciles
(sizes the pool) one cluster. Messages are signals; the store is the truth (shared/dispatcher.py).
"""

from __future__ import annotations


import uuid
from datetime import timedelta
from typing import Any, Literal

from shared import events, telemetry
from shared.documents.messages import LaneEntry, WorkSignal
from shared.documents.resources import JobDocument
from shared.ports.messaging import EntityOptions, Messaging, OutgoingMessage, bounded_message_id
from shared.scheduler import PRIORITIES

CLUSTER_WORK_QUEUE = "cluster-work"
DISPATCH: Literal["dispatch"] = "dispatch"
RECONCILE: Literal["reconcile"] = "reconcile"
# Lane messages are only read at the head; a short lock bounds the wait after a crash mid-dispatch.
LANE_OPTIONS = EntityOptions(lock_duration=timedelta(seconds=10), max_delivery_count=10,
                             duplicate_detection_window=timedelta(minutes=10))
WORK_OPTIONS = EntityOptions(lock_duration=timedelta(seconds=60), max_delivery_count=10,
                             duplicate_detection_window=None)
# Requests by message (shared/submissions.py): a job to create, a cluster's scaleSettings to apply.
# The message id is the request's id: a resend within the (week-long) window is dropped by the queue,
# and one after it finds the request's stored receipt.
JOB_SUBMISSIONS_QUEUE, CLUSTER_RESIZES_QUEUE = "job-submissions", "cluster-resizes"
SUBMISSION_REPLIES_QUEUE = "submission-replies"  # the default reply-to queue (any queue may be named)
SUBMISSION_OPTIONS = EntityOptions(lock_duration=timedelta(seconds=60), max_delivery_count=10,
                                   duplicate_detection_window=timedelta(days=7))
# Replies' ids are stable per request and outcome: a redelivered request's repeated reply is dropped.
REPLY_OPTIONS = EntityOptions(lock_duration=timedelta(seconds=30), max_delivery_count=100,
                              duplicate_detection_window=timedelta(minutes=10))
# What the local host's AMQP door lets Service Bus clients reach (and these queues' dead letters).
DOOR_QUEUES = (JOB_SUBMISSIONS_QUEUE, CLUSTER_RESIZES_QUEUE, SUBMISSION_REPLIES_QUEUE)
# Queues that exist for the whole deployment (infra/main.bicep makes them on Azure).
STATIC_QUEUES = {CLUSTER_WORK_QUEUE: WORK_OPTIONS, events.DELIVERIES_QUEUE: events.DELIVERY_OPTIONS,
                 JOB_SUBMISSIONS_QUEUE: SUBMISSION_OPTIONS, CLUSTER_RESIZES_QUEUE: SUBMISSION_OPTIONS,
                 SUBMISSION_REPLIES_QUEUE: REPLY_OPTIONS}
# Topics that exist for the whole deployment, each with its subscriptions and their settings.
STATIC_TOPICS = {events.JOB_EVENTS_TOPIC: (events.TOPIC_OPTIONS, {events.WEBHOOKS_SUBSCRIPTION: events.FANOUT_OPTIONS})}


def lane(uid: str, priority: str) -> str:
    return f"jobs-{uid}-{priority}"


def create_lanes(messaging: Messaging, uid: str) -> None:
    for priority in PRIORITIES:
        messaging.create_queue(lane(uid, priority), LANE_OPTIONS)


def delete_lanes(messaging: Messaging, uid: str) -> None:
    for priority in PRIORITIES:
        messaging.delete_queue(lane(uid, priority))


def publish_job(messaging: Messaging, job: JobDocument) -> None:
    """Put a queued job at the back of its lane. The message id is the job and its attempt count,
    so publishing twice (a retry, or the lane repair) leaves one message. The message carries the
    job's trace context (its create call's), which the dispatcher continues."""
    publish_jobs(messaging, [job])


def publish_jobs(messaging: Messaging, jobs: list[JobDocument]) -> None:
    """Put queued jobs of one lane at its back, in this order, in one send."""
    if jobs:
        messaging.send(*entries(jobs))


def entries(jobs: list[JobDocument]) -> tuple[str, list[OutgoingMessage]]:
    """The lane of these queued jobs (all of one lane) and their messages, in this order: a send."""
    return lane(jobs[0].cluster_uid, jobs[0].priority), [
        OutgoingMessage(LaneEntry(job=job.id, pk=job.pk, attempt=job.attempt).encode(),
                        message_id=message_id(job), application_properties=dict(job.trace_context))
        for job in jobs]


def message_id(job: JobDocument) -> str:
    """A queued job's lane message id: the job and its attempt count (hashed past Service Bus's 128
    characters, as every sent message's id is, so the lane repair compares like with like)."""
    return bounded_message_id(f"{job.id}#{job.attempt}")


def signal(messaging: Messaging, cluster_key: str, pk: str, action: Literal["dispatch", "reconcile"] = DISPATCH
           ) -> None:
    """Ask for the cluster's work to be done soon: dispatch its queue, or reconcile its pool.
    The work's invocation continues the current trace (a job's create call, say)."""
    body = WorkSignal(cluster=cluster_key, pk=pk, action=action)
    messaging.send(CLUSTER_WORK_QUEUE, [OutgoingMessage(body.encode(), message_id=uuid.uuid4().hex,
                                                        subject=action, application_properties=telemetry.inject())])
