"""Timer of the file servers: those being made move on, removals under way carry on
(shared/file_servers.py). ARM takes minutes to make a VM: a round every 10 s is plenty."""

from __future__ import annotations

import azure.functions as func

from functions import blueprint, tracing
from shared import file_servers
from shared.composition import services
from shared.settings import app_setting_reference, timers_run_on_startup

bp = blueprint()


@bp.function_name("ReconcileFileServers")
@bp.timer_trigger(arg_name="timer", schedule=app_setting_reference("file_servers_schedule"),
                  run_on_startup=timers_run_on_startup())
@tracing.traced_function("ReconcileFileServers")
def reconcile_file_servers(timer: func.TimerRequest) -> None:
    file_servers.reconcile_all(services())
