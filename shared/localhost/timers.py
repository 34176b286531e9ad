"""Timer triggers on the local host: NCRONTAB schedules (seconds first, as Azure Functions reads
them) or "hh:mm:ss" intervals; a schedule "%NAME%" is the app setting NAME, as on Azure (here: the
host's Settings field of that name, e.g. BATCHAI_RECONCILE_SCHEDULE -> reconcile_schedule)."""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
from datetime import datetime, timedelta

import anyio
from azure.functions.timer import TimerRequest
from croniter import croniter

from shared.localhost.functions_index import IndexedFunction
from shared.ports.clock import Clock
from shared.settings import ENV_PREFIX, Settings

log = logging.getLogger(__name__)


def resolve_schedule(schedule: str, settings: Settings) -> str:
    """The schedule itself, or the value of the app setting it names (%BATCHAI_...%)."""
    match = re.fullmatch(r"%([A-Za-z0-9_]+)%", schedule.strip())
    if match is None:
        return schedule
    field = match.group(1).removeprefix(ENV_PREFIX).lower()
    if not match.group(1).startswith(ENV_PREFIX) or field not in Settings.model_fields:
        raise ValueError(f"timer schedule {schedule}: no setting {match.group(1)} on the local host")
    return str(getattr(settings, field))


def next_fire(schedule: str, after: datetime) -> datetime:
    """When a timer with this schedule fires next, strictly after `after`."""
    text = schedule.strip()
    if ":" in text and " " not in text:  # a TimeSpan interval such as 00:00:05
        hours, minutes, seconds = (float(p) for p in text.split(":"))
        return after + timedelta(hours=hours, minutes=minutes, seconds=seconds)
    fire: datetime = croniter(text, after, second_at_beginning=len(text.split()) == 6).get_next(datetime)
    return fire


async def run_timer(function: IndexedFunction, clock: Clock, settings: Settings) -> None:
    """Fire one timer function forever; a failure is logged and the schedule goes on."""
    assert function.schedule
    schedule = resolve_schedule(function.schedule, settings)
    due = clock.now() if function.run_on_startup else next_fire(schedule, clock.now())
    while True:
        await asyncio.sleep(max(0.0, (due - clock.now()).total_seconds()))
        past_due = (clock.now() - due).total_seconds() > 1
        try:
            request = TimerRequest(past_due=past_due)
            if inspect.iscoroutinefunction(function.func):
                await function.func(request)
            else:
                await anyio.to_thread.run_sync(function.func, request)
        except Exception:
            log.exception("timer function %s failed", function.name)
        due = next_fire(schedule, max(due, clock.now()))
