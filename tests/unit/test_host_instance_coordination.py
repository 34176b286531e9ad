"""Host instances over one data folder: a timer fires once per period across them, and a
notify reaches long-polls held by a sibling instance."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from shared.adapters.local.sqlite_store import SqliteStateStore
from shared.localhost.functions_index import IndexedFunction
from shared.localhost.instances import PeerWakeups, claim_timer, singleton_timer
from shared.ports.clock import ManualClock
from shared.resources import CONTAINERS
from shared.settings import Settings, app_setting_reference
from shared.wakeups import Wakeups


def test_a_timer_period_is_claimed_by_one_instance_and_passes_on_when_its_holder_is_gone(tmp_path: Path) -> None:
    store, clock = SqliteStateStore(tmp_path / "state.sqlite3"), ManualClock()
    store.open(CONTAINERS)
    every_2s = "*/2 * * * * *"
    assert claim_timer(store, clock, "Reconcile", every_2s)  # instance A takes this period
    assert not claim_timer(store, clock, "Reconcile", every_2s)  # instance B, a moment later: taken
    assert claim_timer(store, clock, "Watchdog", every_2s)  # each timer has its own lease
    clock.advance(1.7)  # most of the period has passed: the next firing is anyone's
    assert claim_timer(store, clock, "Reconcile", every_2s)
    assert not claim_timer(store, clock, "Reconcile", every_2s)
    store.close()


def test_a_timer_whose_schedule_names_an_app_setting_fires_once_per_period_across_instances(tmp_path: Path) -> None:
    """The app's timers read their schedules from app settings ("%BATCHAI_RECONCILE_SCHEDULE%"):
    each instance's wrapper reads the setting, as the single host's timer loop does."""
    store, clock = SqliteStateStore(tmp_path / "state.sqlite3"), ManualClock()
    store.open(CONTAINERS)
    settings = Settings(data_dir=tmp_path, reconcile_schedule="*/2 * * * * *")
    fired: list[str] = []
    timer = IndexedFunction(name="ReconcileClusters", trigger_type="timerTrigger", func=lambda _: fired.append("x"),
                            schedule=app_setting_reference("reconcile_schedule"))
    a, b = (singleton_timer(timer, store, clock, settings) for _ in range(2))
    a.func(None)
    b.func(None)  # a moment later, in the other instance: this period is taken
    assert fired == ["x"]
    clock.advance(1.7)
    b.func(None)
    assert fired == ["x", "x"]
    store.close()


def test_a_notify_in_one_instance_wakes_a_waiter_in_another(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    here, there = Wakeups(), Wakeups()
    sender, receiver = PeerWakeups(here, tmp_path), PeerWakeups.__new__(PeerWakeups)
    # The sibling listens as another process would: on the folder's address with another pid.
    receiver.wakeups, receiver.messaging, receiver.data_dir, receiver._prefix = there, None, tmp_path, sender._prefix
    receiver._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver._socket.bind(sender._prefix + "999999")
    receiver._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.start()
    sender.start()
    monkeypatch.setattr("shared.localhost.instances._local_up_pids", lambda *_: [999999])

    async def wait() -> bool:
        with there.listening("node-1") as waiter:
            await asyncio.sleep(0)
            here.notify("node-1")
            return await waiter.wait(2)

    try:
        assert asyncio.run(wait())
    finally:
        sender.close()
        receiver.close()
