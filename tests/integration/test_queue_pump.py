"""The local host's queue pump gives queue-triggered functions the Functions host's delivery
semantics over the embedded queues: complete on success, abandon on failure, dead-letter when the
delivery count is spent, and nothing stops the pump."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path

import azure.functions as func

from shared.adapters.local.sqlite_messaging import SqliteMessaging
from shared.localhost.functions_index import IndexedFunction
from shared.localhost.queue_pump import QueuePump
from shared.ports.messaging import EntityOptions, OutgoingMessage, dead_letter_path


def wait_until(check, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_success_completes_failure_retries_then_dead_letters(tmp_path: Path) -> None:
    messaging = SqliteMessaging(tmp_path / "m.db")
    messaging.create_queue("work", EntityOptions(lock_duration=timedelta(seconds=30), max_delivery_count=3))
    seen: list[tuple[bytes, int]] = []
    lock = threading.Lock()

    def handler(msg: func.ServiceBusMessage) -> None:
        with lock:
            seen.append((msg.get_body(), msg.delivery_count))
        if msg.get_body() == b"poison":
            raise ValueError("cannot handle this one")

    function = IndexedFunction(name="Work", trigger_type="serviceBusTrigger", func=handler, queue_name="work")
    pump = QueuePump(messaging, [function], concurrency=2)
    pump.start()
    try:
        messaging.send("work", [OutgoingMessage(b"fine"), OutgoingMessage(b"poison")])
        wait_until(lambda: messaging.count("work") == 0)
        dead = messaging.receive(dead_letter_path("work"), 5)
        assert [m.body for m in dead] == [b"poison"]
        assert dead[0].dead_letter_reason == "MaxDeliveryCountExceeded"
        assert sorted(n for body, n in seen if body == b"poison") == [1, 2, 3]
        assert [n for body, n in seen if body == b"fine"] == [1]
        messaging.send("work", [OutgoingMessage(b"after")])  # the pump goes on
        wait_until(lambda: (b"after", 1) in seen)
    finally:
        pump.stop()
        messaging.close()


def test_a_batch_is_completed_together_and_a_half_spent_lock_is_renewed_first(tmp_path: Path) -> None:
    """Prefetched messages wait their turn: the one whose lock is half spent by then is renewed, and
    every message is handled once, with none redelivered for a lock that ran out while it waited."""
    messaging = SqliteMessaging(tmp_path / "m.db")
    messaging.create_queue("slow", EntityOptions(lock_duration=timedelta(seconds=1), max_delivery_count=5))
    seen: list[tuple[bytes, int]] = []

    def handler(msg: func.ServiceBusMessage) -> None:
        seen.append((msg.get_body(), msg.delivery_count))
        time.sleep(0.3)  # four of them outlast one lock

    function = IndexedFunction(name="Slow", trigger_type="serviceBusTrigger", func=handler, queue_name="slow")
    messaging.send("slow", [OutgoingMessage(str(n).encode()) for n in range(5)])
    pump = QueuePump(messaging, [function], concurrency=1)
    pump.start()
    try:
        wait_until(lambda: messaging.count("slow") == 0)
        time.sleep(1.2)  # a message whose lock had expired would be received again by now
        assert seen == [(str(n).encode(), 1) for n in range(5)]
        assert messaging.receive(dead_letter_path("slow"), 5) == []
    finally:
        pump.stop()
        messaging.close()


def test_the_event_fan_out_runs_on_one_thread_that_takes_a_burst_together(tmp_path: Path) -> None:
    """A burst of job events is fanned out by one thread per instance, several events per receive,
    while other functions keep their `concurrency` threads."""
    messaging = SqliteMessaging(tmp_path / "m.db")
    for queue in ("events", "work"):
        messaging.create_queue(queue, EntityOptions(lock_duration=timedelta(seconds=30)))
    threads: dict[str, set[str]] = {"events": set(), "work": set()}
    batches: list[int] = []

    def handler_of(queue: str):  # type: ignore[no-untyped-def]
        def handler(msg: func.ServiceBusMessage) -> None:
            threads[queue].add(threading.current_thread().name)
            time.sleep(0.01)
        return handler

    functions = [IndexedFunction(name="JobEventsFanOut", trigger_type="serviceBusTrigger",
                                 func=handler_of("events"), queue_name="events"),
                 IndexedFunction(name="Work", trigger_type="serviceBusTrigger", func=handler_of("work"),
                                 queue_name="work")]
    receive = messaging.receive

    def counting_receive(entity: str, max_messages: int = 1, max_wait: float = 0.0):  # type: ignore[no-untyped-def]
        got = receive(entity, max_messages, max_wait)
        if entity == "events" and got:
            batches.append(len(got))
        return got

    messaging.receive = counting_receive  # type: ignore[method-assign]
    messaging.send("events", [OutgoingMessage(str(n).encode()) for n in range(40)])
    messaging.send("work", [OutgoingMessage(str(n).encode()) for n in range(40)])
    pump = QueuePump(messaging, functions, concurrency=4)
    pump.start()
    try:
        wait_until(lambda: messaging.count("events") == 0 and messaging.count("work") == 0)
        assert threads["events"] == {"pump-JobEventsFanOut-0"}
        assert sum(batches) == 40 and max(batches) > 1
        assert len(threads["work"]) > 1
    finally:
        pump.stop()
        messaging.close()
