"""Requests by queue message (shared/submissions.py): the job-submissions and cluster-resizes queues.

A refused request raises PoisonMessage, after its outcome was announced (the rejected event and the
reply, both with the CloudError). The local host's pump dead-letters such a message at once, with the
error's code as reason. A Functions host abandons the message of a function that raised and Service Bus
dead-letters it when its delivery count is spent (reason MaxDeliveryCountExceeded): the function settles
nothing itself (the Python worker gives it no settlement API but the preview SDK-type bindings). Each
redelivery announces the same outcome under the same message ids, which the job-events topic and the
replies queue drop as duplicates."""

from __future__ import annotations

import azure.functions as func

from functions import blueprint, tracing
from shared import lanes, submissions
from shared.composition import services

bp = blueprint()


def request_of(msg: func.ServiceBusMessage) -> submissions.RequestMessage:
    return submissions.RequestMessage(
        body=msg.get_body(), message_id=str(msg.message_id or ""),
        application_properties=dict(msg.application_properties or {}), correlation_id=msg.correlation_id,
        reply_to=msg.reply_to, reply_to_session_id=msg.reply_to_session_id)


def serve(door: submissions.Door, msg: func.ServiceBusMessage) -> None:
    submissions.handle(services(), door, request_of(msg))


@bp.function_name("JobSubmissions")
@bp.service_bus_queue_trigger(arg_name="msg", queue_name=lanes.JOB_SUBMISSIONS_QUEUE, connection="BATCHAI_SERVICEBUS")
@tracing.traced_function("JobSubmissions")
def job_submission(msg: func.ServiceBusMessage) -> None:
    serve(submissions.JOB_SUBMISSIONS, msg)


@bp.function_name("ClusterResizes")
@bp.service_bus_queue_trigger(arg_name="msg", queue_name=lanes.CLUSTER_RESIZES_QUEUE, connection="BATCHAI_SERVICEBUS")
@tracing.traced_function("ClusterResizes")
def cluster_resize(msg: func.ServiceBusMessage) -> None:
    serve(submissions.CLUSTER_RESIZES, msg)
