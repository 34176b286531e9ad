"""Queue and timer triggers of the scheduler: the cluster-work queue (dispatch a cluster's lanes,
reconcile its pool) and the timer that reconciles every cluster, so that a lost signal costs at
most one timer period."""

from __future__ import annotations

import azure.functions as func

from functions import blueprint, tracing
from shared import cluster_work, lanes
from shared.composition import services
from shared.settings import app_setting_reference, timers_run_on_startup

bp = blueprint()


@bp.function_name("ClusterWork")
@bp.service_bus_queue_trigger(arg_name="msg", queue_name=lanes.CLUSTER_WORK_QUEUE, connection="BATCHAI_SERVICEBUS")
@tracing.traced_function("ClusterWork")
def cluster_work_message(msg: func.ServiceBusMessage) -> None:
    cluster_work.handle_message(services(), msg.get_body())


@bp.function_name("ReconcileClusters")
@bp.timer_trigger(arg_name="timer", schedule=app_setting_reference("reconcile_schedule"),
                  run_on_startup=timers_run_on_startup())
@tracing.traced_function("ReconcileClusters")
def reconcile_clusters(timer: func.TimerRequest) -> None:
    cluster_work.reconcile_all(services())
