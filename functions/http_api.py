"""HTTP triggers of the Batch AI API: one function per operation of the spec, registered from
the operation catalog. Each is thin: HttpRequest -> ApiRequest -> core -> HttpResponse."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

import azure.functions as func

from functions import blueprint, tracing
from shared.api import access
from shared.api.catalog import OPERATIONS, Operation
from shared.api.jobs import SUBMISSION_ID_HEADER
from shared.api.request import ApiRequest, ApiResponse
from shared.composition import services
from shared.errors import ApiError, PayloadTooLarge, cloud_error

log = logging.getLogger(__name__)
bp = blueprint()


def to_api_request(req: func.HttpRequest) -> ApiRequest:
    headers = {k: v for k, v in req.headers.items() if k.lower() != SUBMISSION_ID_HEADER}  # set by the queue door only
    return ApiRequest(method=req.method, url=req.url, route=dict(req.route_params), query=dict(req.params),
                      body=req.get_body() or b"", headers=headers)


def to_http_response(resp: ApiResponse) -> func.HttpResponse:
    if resp.status == 401:  # RFC 6750: say how to authenticate
        resp.headers.setdefault("WWW-Authenticate", 'Bearer realm="batchai"')
    if isinstance(resp.body, bytes):  # a file's content, passed through with its own content-type header
        return func.HttpResponse(body=resp.body, status_code=resp.status, headers=resp.headers)
    body = None if resp.body is None else json.dumps(resp.body, separators=(",", ":"))
    return func.HttpResponse(body=body, status_code=resp.status, headers=resp.headers,
                             mimetype="application/json" if body is not None else None)


def invoke(op: Operation, req: func.HttpRequest) -> func.HttpResponse:
    """Run one operation; every failure becomes a CloudError (secrets never reach the log)."""

    def run() -> ApiResponse:
        svc = services()
        api_req = to_api_request(req)
        principal = access.check(svc, api_req, op.operation_id)
        if len(api_req.body) > svc.settings.max_request_bytes:
            raise PayloadTooLarge(
                f"The request body is {len(api_req.body)} bytes; at most {svc.settings.max_request_bytes} are "
                "accepted.", target="body")
        answer = op.handler(svc, api_req)
        if op.operation_id in access.WORKSPACE_LISTS:
            answer = access.visible_workspaces(svc, principal, api_req, answer)
        return answer

    return to_http_response(guarded(op.operation_id, run))


def guarded(name: str, run: Callable[[], ApiResponse]) -> ApiResponse:
    """The operation's answer, or its failure as a CloudError."""
    try:
        return run()
    except ApiError as exc:
        return ApiResponse(exc.status, exc.body())
    except Exception:
        log.exception("operation %s failed", name)
        return ApiResponse(500, cloud_error("InternalServerError", "The service failed to process the request."))


async def guarded_async(name: str, run: Callable[[], Awaitable[ApiResponse]]) -> ApiResponse:
    """`guarded` for operations that wait (long-polls)."""
    try:
        return await run()
    except ApiError as exc:
        return ApiResponse(exc.status, exc.body())
    except Exception:
        log.exception("operation %s failed", name)
        return ApiResponse(500, cloud_error("InternalServerError", "The service failed to process the request."))


def _register(op: Operation, blueprint: func.Blueprint = bp) -> None:
    """One HTTP function for the operation (also the sweeps' beside the API: functions/sweeps.py)."""
    @tracing.traced_function(op.operation_id)
    def handler(req: func.HttpRequest) -> func.HttpResponse:
        return invoke(op, req)

    handler.__name__ = handler.__qualname__ = op.operation_id
    methods = [op.method, "GET"] if op.pages_by_get else [op.method]
    route = blueprint.route(route=op.route, methods=methods, auth_level=func.AuthLevel.ANONYMOUS)
    blueprint.function_name(op.operation_id)(route(handler))


for _op in OPERATIONS:
    _register(_op)
