"""HTTP triggers of the node agents' API (beside Batch AI's, under agent/): thin wrappers around
shared/api/agent.py, answering errors as CloudErrors like the rest of the API."""

from __future__ import annotations

import azure.functions as func

from functions.http_api import guarded, guarded_async, to_api_request, to_http_response
from functions import blueprint, tracing
from shared.api import agent
from shared.composition import services

bp = blueprint()


@bp.function_name("Agent_Register")
@bp.route(route="agent/register", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@tracing.traced_function("Agent_Register")
def register(req: func.HttpRequest) -> func.HttpResponse:
    return to_http_response(guarded("Agent_Register", lambda: agent.register(services(), to_api_request(req))))


@bp.function_name("Agent_Setup")
@bp.route(route="agent/setup", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@tracing.traced_function("Agent_Setup")
def setup(req: func.HttpRequest) -> func.HttpResponse:
    return to_http_response(guarded("Agent_Setup", lambda: agent.setup(services(), to_api_request(req))))


@bp.function_name("Agent_Ready")
@bp.route(route="agent/ready", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@tracing.traced_function("Agent_Ready")
def ready(req: func.HttpRequest) -> func.HttpResponse:
    return to_http_response(guarded("Agent_Ready", lambda: agent.ready(services(), to_api_request(req))))


@bp.function_name("Agent_Evicting")
@bp.route(route="agent/evicting", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@tracing.traced_function("Agent_Evicting")
def evicting(req: func.HttpRequest) -> func.HttpResponse:
    return to_http_response(guarded("Agent_Evicting", lambda: agent.evicting(services(), to_api_request(req))))


@bp.function_name("Agent_Heartbeat")
@bp.route(route="agent/heartbeat", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@tracing.traced_function("Agent_Heartbeat")
def heartbeat(req: func.HttpRequest) -> func.HttpResponse:
    return to_http_response(guarded("Agent_Heartbeat", lambda: agent.heartbeat(services(), to_api_request(req))))


@bp.function_name("Agent_Assignment")
@bp.route(route="agent/assignment", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@tracing.traced_function("Agent_Assignment")
async def assignment(req: func.HttpRequest) -> func.HttpResponse:
    answer = await guarded_async("Agent_Assignment", lambda: agent.assignment(services(), to_api_request(req)))
    return to_http_response(answer)


@bp.function_name("Agent_Prepared")
@bp.route(route="agent/prepared", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@tracing.traced_function("Agent_Prepared")
def prepared(req: func.HttpRequest) -> func.HttpResponse:
    return to_http_response(guarded("Agent_Prepared", lambda: agent.prepared(services(), to_api_request(req))))


@bp.function_name("Agent_AllPrepared")
@bp.route(route="agent/prepared", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@tracing.traced_function("Agent_AllPrepared")
async def all_prepared(req: func.HttpRequest) -> func.HttpResponse:
    answer = await guarded_async("Agent_AllPrepared", lambda: agent.all_prepared(services(), to_api_request(req)))
    return to_http_response(answer)


@bp.function_name("Agent_Report")
@bp.route(route="agent/report", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@tracing.traced_function("Agent_Report")
def report(req: func.HttpRequest) -> func.HttpResponse:
    return to_http_response(guarded("Agent_Report", lambda: agent.report(services(), to_api_request(req))))
