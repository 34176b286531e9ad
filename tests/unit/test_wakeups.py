"""Wake-ups of long-polls: a notify that lands after listening began is never lost."""

from __future__ import annotations

import asyncio
import threading

from shared.wakeups import Wakeups


def test_a_notify_between_the_read_and_the_wait_is_kept() -> None:
    async def scenario() -> tuple[bool, bool]:
        wakeups = Wakeups()
        with wakeups.listening("node") as waiter:
            # the state was read here; the dispatcher notifies before we start waiting
            threading.Thread(target=wakeups.notify, args=("node",)).start()
            await asyncio.sleep(0.05)
            woken = await waiter.wait(1.0)
        with wakeups.listening("node") as waiter:
            quiet = await waiter.wait(0.01)  # a new listener does not see the old notify
        return woken, quiet

    assert asyncio.run(scenario()) == (True, False)


def test_other_keys_and_closing() -> None:
    async def scenario() -> tuple[bool, bool]:
        wakeups = Wakeups()
        with wakeups.listening("a") as waiter:
            wakeups.notify("b")
            other = await waiter.wait(0.01)
            wakeups.close()
            closed = await waiter.wait(1.0)
        return other, closed

    assert asyncio.run(scenario()) == (False, True)
