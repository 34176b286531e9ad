"""In-process wake-ups for long-polls: an agent waiting for work is answered the moment the
dispatcher (another thread of the same host) gives it some, instead of at its next poll.

Across processes (Azure Functions instances) nothing is shared: waiters also re-check the store
on a short period, so a wake-up is only ever a shortcut.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass


class Wakeups:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, set[Waiter]] = defaultdict(set)
        self.closed = False
        # Set by a host with sibling instances: passes each notify on to them (shared/localhost/instances.py).
        self.forward: Callable[[str], None] | None = None

    def close(self) -> None:
        """The host is stopping: wake every waiter, and let nobody wait any more."""
        self.closed = True
        with self._lock:
            keys = list(self._waiters)
        for key in keys:
            self.notify(key, forward=False)

    def notify(self, key: str, forward: bool = True) -> None:
        """Wake every coroutine waiting on `key` (and, through `forward`, sibling instances' waiters);
        callable from any thread."""
        if forward and self.forward is not None:
            self.forward(key)
        with self._lock:
            waiters = list(self._waiters.get(key, ()))
        for waiter in waiters:
            try:
                waiter.loop.call_soon_threadsafe(waiter.event.set)
            except RuntimeError:  # that loop has closed
                pass

    @contextlib.contextmanager
    def listening(self, key: str) -> Iterator[Waiter]:
        """Listen for `key` from now on. Enter before reading the state you wait to see change,
        then `await waiter.wait(timeout)`: a notify that lands between the read and the wait is
        kept, not lost."""
        waiter = Waiter(asyncio.get_running_loop(), asyncio.Event())
        if self.closed:
            waiter.event.set()
        with self._lock:
            self._waiters[key].add(waiter)
        try:
            yield waiter
        finally:
            with self._lock:
                self._waiters[key].discard(waiter)
                if not self._waiters[key]:
                    del self._waiters[key]


@dataclass(frozen=True)
class Waiter:
    loop: asyncio.AbstractEventLoop
    event: asyncio.Event

    async def wait(self, timeout: float) -> bool:
        """True if notified (since listening began) within `timeout` seconds."""
        try:
            await asyncio.wait_for(self.event.wait(), timeout)
            return True
        except TimeoutError:
            return False
