"""Requests by queue message (shared/submissions.py): the job-submissions and cluster-resizes queues.

A refused request raises PoisonMessage, which the local host's pump turns into a dead-letter with
the refusal's reason. On Azure that needs the Service Bus extension's message actions (not wired
yet): there a refused request is retried up to the queue's max delivery count, then dead-lettered."""

from __future__ import annotations

import azure.functions as func

from shared import lanes, submissions, telemetry
from shared.composition import services

bp = func.Blueprint()


def request_of(msg: func.ServiceBusMessage) -> submissions.RequestMessage:
    return submissions.RequestMessage(
        body=msg.get_body(), message_id=str(msg.message_id or ""),
        application_properties=dict(msg.application_properties or {}), correlation_id=msg.correlation_id,
        reply_to=msg.reply_to, reply_to_session_id=msg.reply_to_session_id)


@bp.function_name("JobSubmissions")
@bp.service_bus_queue_trigger(arg_name="msg", queue_name=lanes.JOB_SUBMISSIONS_QUEUE, connection="BATCHAI_SERVICEBUS")
@telemetry.traced_function("JobSubmissions")
def job_submission(msg: func.ServiceBusMessage) -> None:
    submissions.handle(services(), submissions.JOB_SUBMISSIONS, request_of(msg))


@bp.function_name("ClusterResizes")
@bp.service_bus_queue_trigger(arg_name="msg", queue_name=lanes.CLUSTER_RESIZES_QUEUE, connection="BATCHAI_SERVICEBUS")
@telemetry.traced_function("ClusterResizes")
def cluster_resize(msg: func.ServiceBusMessage) -> None:
    submissions.handle(services(), submissions.CLUSTER_RESIZES, request_of(msg))
