"""Sweeps (beside Batch AI's API, under an experiment: shared/api/sweeps.py) and the sweep timer
that runs their search (shared/sweeps/driver.py)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import azure.functions as func

from functions.http_api import guarded, to_api_request, to_http_response
from shared import telemetry
from shared.api import access, sweeps
from shared.api.generic import list_children
from shared.api.request import ApiRequest, ApiResponse
from shared.composition import Services, services
from shared.ids import SWEEP
from shared.sweeps import driver

bp = func.Blueprint()

_EXP = ("subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.BatchAI"
        "/workspaces/{workspaceName}/experiments/{experimentName}")
_SWEEP = _EXP + "/sweeps/{sweepName}"
Handler = Callable[[Services, ApiRequest], ApiResponse]


def _serve(name: str, handler: Handler, req: func.HttpRequest) -> func.HttpResponse:
    def run() -> ApiResponse:
        svc, api_req = services(), to_api_request(req)
        access.check(svc, api_req, name)
        return handler(svc, api_req)

    return to_http_response(guarded(name, run))


def _route(name: str, route: str, method: str, handler: Handler) -> None:
    @telemetry.traced_function(name)
    def serve(req: func.HttpRequest) -> func.HttpResponse:
        return _serve(name, handler, req)

    serve.__name__ = serve.__qualname__ = name
    bp.function_name(name)(bp.route(route=route, methods=[method], auth_level=func.AuthLevel.ANONYMOUS)(serve))


_route("Sweeps_Create", _SWEEP, "PUT", sweeps.create)
_route("Sweeps_Get", _SWEEP, "GET", sweeps.get)
_route("Sweeps_Delete", _SWEEP, "DELETE", sweeps.delete)
_route("Sweeps_ListByExperiment", _EXP + "/sweeps", "GET", partial(list_children, SWEEP))
_route("Sweeps_Cancel", _SWEEP + "/cancel", "POST", sweeps.cancel)
_route("Sweeps_ListTrials", _SWEEP + "/trials", "GET", sweeps.list_trials)


@bp.function_name("SweepRounds")
@bp.timer_trigger(arg_name="timer", schedule="*/2 * * * * *", run_on_startup=True)
@telemetry.traced_function("SweepRounds")
def rounds(timer: func.TimerRequest) -> None:
    driver.run_round(services())
