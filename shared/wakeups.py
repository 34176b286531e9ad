"""In-process wake-ups for long-polls: an agent waiting for work is answered the moment the
dispatcher (another thread of the same host) gives it some, instead of at its next poll.

Across processes (Azure Functions instances) nothing is shared: waiters also re-check the store
on a short period, so a wake-up is only ever a shortcut.
"""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict


class Wakeups:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = defaultdict(set)
        self.closed = False

    def close(self) -> None:
        """The host is stopping: wake every waiter, and let nobody wait any more."""
        self.closed = True
        with self._lock:
            keys = list(self._waiters)
        for key in keys:
            self.notify(key)

    def notify(self, key: str) -> None:
        """Wake every coroutine waiting on `key`; callable from any thread."""
        with self._lock:
            waiters = list(self._waiters.get(key, ()))
        for loop, event in waiters:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # that loop has closed
                pass

    async def wait(self, key: str, timeout: float) -> bool:
        """True if woken for `key` within `timeout` seconds."""
        if self.closed:
            return True
        entry = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._waiters[key].add(entry)
        try:
            await asyncio.wait_for(entry[1].wait(), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            with self._lock:
                self._waiters[key].discard(entry)
                if not self._waiters[key]:
                    del self._waiters[key]
