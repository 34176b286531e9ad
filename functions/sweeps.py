"""Sweeps (beside Batch AI's API, under an experiment: shared/api/sweeps.py) and the sweep timer
that runs their search (shared/sweeps/driver.py). The HTTP functions are served as the API's own
operations are (functions/http_api.py: access check, body size limit, CloudErrors)."""

from __future__ import annotations

import azure.functions as func

from functions import blueprint, tracing
from functions.http_api import _register
from shared.api import sweeps
from shared.api.catalog import Operation
from shared.composition import services
from shared.settings import app_setting_reference, timers_run_on_startup
from shared.sweeps import driver

bp = blueprint()

for _id, _method, _route in sweeps.ROUTES:
    _register(Operation(_id, _method, _route, sweeps.HANDLERS[_id]), bp)


@bp.function_name("SweepRounds")
@bp.timer_trigger(arg_name="timer", schedule=app_setting_reference("sweeps_schedule"),
                  run_on_startup=timers_run_on_startup())
@tracing.traced_function("SweepRounds")
def rounds(timer: func.TimerRequest) -> None:
    driver.run_round(services())
