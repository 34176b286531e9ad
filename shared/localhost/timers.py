"""Timer triggers on the local host: NCRONTAB schedules (seconds first, as Azure Functions reads
them) or "hh:mm:ss" intervals."""

from __future__ import annotations

import asyncio
import inspect
import logging
from datetime import datetime, timedelta

import anyio
from azure.functions.timer import TimerRequest
from croniter import croniter

from shared.localhost.functions_index import IndexedFunction
from shared.ports.clock import Clock

log = logging.getLogger(__name__)


def next_fire(schedule: str, after: datetime) -> datetime:
    """When a timer with this schedule fires next, strictly after `after`."""
    text = schedule.strip()
    if ":" in text and " " not in text:  # a TimeSpan interval such as 00:00:05
        hours, minutes, seconds = (float(p) for p in text.split(":"))
        return after + timedelta(hours=hours, minutes=minutes, seconds=seconds)
    return croniter(text, after, second_at_beginning=len(text.split()) == 6).get_next(datetime)


async def run_timer(function: IndexedFunction, clock: Clock) -> None:
    """Fire one timer function forever; a failure is logged and the schedule goes on."""
    assert function.schedule
    due = clock.now() if function.run_on_startup else next_fire(function.schedule, clock.now())
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
        due = next_fire(function.schedule, max(due, clock.now()))
