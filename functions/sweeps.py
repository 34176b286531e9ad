"""Sweeps (beside Batch AI's API, under an experiment: shared/api/sweeps.py) and the sweep timer
that runs their search (shared/sweeps/driver.py). The HTTP functions are served as the API's own
operations are (functions/http_api.py: access check, body size limit, CloudErrors)."""

from __future__ import annotations

from functools import partial

import azure.functions as func

from functions.http_api import _register
from shared import telemetry
from shared.api import sweeps
from shared.api.catalog import Operation
from shared.api.generic import list_children
from shared.composition import services
from shared.ids import SWEEP
from shared.sweeps import driver

bp = func.Blueprint()

_EXP = ("subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.BatchAI"
        "/workspaces/{workspaceName}/experiments/{experimentName}")
_SWEEP = _EXP + "/sweeps/{sweepName}"
OPERATIONS = (
    Operation("Sweeps_Create", "PUT", _SWEEP, sweeps.create),
    Operation("Sweeps_Get", "GET", _SWEEP, sweeps.get),
    Operation("Sweeps_Delete", "DELETE", _SWEEP, sweeps.delete),
    Operation("Sweeps_ListByExperiment", "GET", _EXP + "/sweeps", partial(list_children, SWEEP)),
    Operation("Sweeps_Cancel", "POST", _SWEEP + "/cancel", sweeps.cancel),
    Operation("Sweeps_ListTrials", "GET", _SWEEP + "/trials", sweeps.list_trials),
)
for _op in OPERATIONS:
    _register(_op, bp)


@bp.function_name("SweepRounds")
@bp.timer_trigger(arg_name="timer", schedule="*/2 * * * * *", run_on_startup=True)
@telemetry.traced_function("SweepRounds")
def rounds(timer: func.TimerRequest) -> None:
    driver.run_round(services())
