"""Timer of the file servers: those being made move on, removals under way carry on
(shared/file_servers.py). ARM takes minutes to make a VM: a round every 10 s is plenty."""

from __future__ import annotations

import azure.functions as func

from shared import file_servers, telemetry
from shared.composition import services

bp = func.Blueprint()


@bp.function_name("ReconcileFileServers")
@bp.timer_trigger(arg_name="timer", schedule="*/10 * * * * *", run_on_startup=True)
@telemetry.traced_function("ReconcileFileServers")
def reconcile_file_servers(timer: func.TimerRequest) -> None:
    file_servers.reconcile_all(services())
