"""Job events: the event subscriptions API (beside Batch AI's, under a workspace), a job's events
(GET .../jobs/{job}/events, shared/api/job_events.py), the fan-out of
the job-events topic to webhooks, their delivery queue, and the outbox timer that publishes what a
crash left unpublished (shared/events.py, shared/event_delivery.py)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import azure.functions as func

from functions.http_api import guarded, to_api_request, to_http_response
from functions import blueprint, tracing
from shared import event_delivery, events
from shared.api import access, event_subscriptions, job_events
from shared.api.generic import delete_resource, get_resource, list_children
from shared.api.request import ApiRequest, ApiResponse
from shared.composition import Services, services
from shared.ids import EVENT_SUBSCRIPTION
from shared.settings import app_setting_reference, timers_run_on_startup

bp = blueprint()

_WS = ("subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.BatchAI"
       "/workspaces/{workspaceName}")
_SUB = _WS + "/eventSubscriptions/{eventSubscriptionName}"
_JOB = _WS + "/experiments/{experimentName}/jobs/{jobName}"


def _serve(name: str, handler: Callable[[Services, ApiRequest], ApiResponse], req: func.HttpRequest
           ) -> func.HttpResponse:
    def run() -> ApiResponse:
        svc, api_req = services(), to_api_request(req)
        access.check(svc, api_req, name)
        return handler(svc, api_req)

    return to_http_response(guarded(name, run))


@bp.function_name("EventSubscriptions_Create")
@bp.route(route=_SUB, methods=["PUT"], auth_level=func.AuthLevel.ANONYMOUS)
@tracing.traced_function("EventSubscriptions_Create")
def create(req: func.HttpRequest) -> func.HttpResponse:
    return _serve("EventSubscriptions_Create", event_subscriptions.create, req)


@bp.function_name("EventSubscriptions_Get")
@bp.route(route=_SUB, methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@tracing.traced_function("EventSubscriptions_Get")
def get(req: func.HttpRequest) -> func.HttpResponse:
    return _serve("EventSubscriptions_Get", partial(get_resource, EVENT_SUBSCRIPTION), req)


@bp.function_name("EventSubscriptions_Delete")
@bp.route(route=_SUB, methods=["DELETE"], auth_level=func.AuthLevel.ANONYMOUS)
@tracing.traced_function("EventSubscriptions_Delete")
def delete(req: func.HttpRequest) -> func.HttpResponse:
    return _serve("EventSubscriptions_Delete", partial(delete_resource, EVENT_SUBSCRIPTION), req)


@bp.function_name("EventSubscriptions_ListByWorkspace")
@bp.route(route=_WS + "/eventSubscriptions", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@tracing.traced_function("EventSubscriptions_ListByWorkspace")
def list_by_workspace(req: func.HttpRequest) -> func.HttpResponse:
    return _serve("EventSubscriptions_ListByWorkspace", partial(list_children, EVENT_SUBSCRIPTION), req)


@bp.function_name("EventSubscriptions_ListDeadLetters")
@bp.route(route=_SUB + "/deadLetters", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@tracing.traced_function("EventSubscriptions_ListDeadLetters")
def list_dead_letters(req: func.HttpRequest) -> func.HttpResponse:
    return _serve("EventSubscriptions_ListDeadLetters", event_subscriptions.list_dead_letters, req)


@bp.function_name("JobEvents_List")
@bp.route(route=_JOB + "/events", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@tracing.traced_function("JobEvents_List")
def list_job_events(req: func.HttpRequest) -> func.HttpResponse:
    return _serve("JobEvents_List", job_events.list_events, req)  # GET: the reader role


@bp.function_name("JobEventsFanOut")
@bp.service_bus_topic_trigger(arg_name="msg", topic_name=events.JOB_EVENTS_TOPIC,
                              subscription_name=events.WEBHOOKS_SUBSCRIPTION, connection="BATCHAI_SERVICEBUS")
@tracing.traced_function("JobEventsFanOut")
def fan_out(msg: func.ServiceBusMessage) -> None:
    event_delivery.fan_out(services(), msg.get_body())


@bp.function_name("WebHookDelivery")
@bp.service_bus_queue_trigger(arg_name="msg", queue_name=events.DELIVERIES_QUEUE, connection="BATCHAI_SERVICEBUS")
@tracing.traced_function("WebHookDelivery")
def deliver(msg: func.ServiceBusMessage) -> None:
    event_delivery.deliver(services(), msg.get_body())


@bp.function_name("JobEventsOutbox")
@bp.timer_trigger(arg_name="timer", schedule=app_setting_reference("outbox_schedule"),
                  run_on_startup=timers_run_on_startup())
@tracing.traced_function("JobEventsOutbox")
def outbox(timer: func.TimerRequest) -> None:
    events.sweep(services())
