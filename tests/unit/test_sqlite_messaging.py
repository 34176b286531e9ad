"""The SQLite messaging adapter beyond the shared contract: what needs a controllable clock
(lock expiry, delivery counts, duplicate-detection windows measured in minutes), how promptly a
waiting receive wakes, and several OS processes sharing one database file.

The behaviour common to every adapter is in tests/contract/test_messaging.py.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from shared.adapters.local.sqlite_messaging import MAX_DELIVERY_REASON, SqliteMessaging
from shared.ports.clock import ManualClock
from shared.ports.messaging import (
    EntityNotFound,
    EntityOptions,
    LockLost,
    MessagingError,
    OutgoingMessage,
    dead_letter_path,
    subscription_path,
)

REPO = Path(__file__).resolve().parents[2]
LOCK = timedelta(seconds=30)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def bus(tmp_path: Path, clock: ManualClock) -> Iterator[SqliteMessaging]:
    adapter = SqliteMessaging(tmp_path / "bus.db", clock)
    adapter.create_queue("q", EntityOptions(lock_duration=LOCK, max_delivery_count=3))
    yield adapter
    adapter.close()


def send(bus: SqliteMessaging, entity: str, *bodies: str, **fields: object) -> None:
    bus.send(entity, [OutgoingMessage(body=b.encode(), **fields) for b in bodies])  # type: ignore[arg-type]


# -- time from the injected clock ------------------------------------------------------------------


def test_lock_expiry_follows_the_clock(bus: SqliteMessaging, clock: ManualClock) -> None:
    send(bus, "q", "a")
    first = bus.receive("q")[0]
    assert first.locked_until == clock.now() + LOCK
    clock.advance(29)
    assert bus.receive("q") == []
    clock.advance(1)
    second = bus.receive("q")[0]
    assert second.delivery_count == 2 and second.lock_token != first.lock_token
    with pytest.raises(LockLost):
        bus.complete("q", first)
    assert bus.renew_lock("q", second) == clock.now() + LOCK


def test_an_expired_lock_at_max_delivery_is_dead_lettered_on_the_next_look(
        bus: SqliteMessaging, clock: ManualClock) -> None:
    send(bus, "q", "a")
    for _ in range(3):
        assert bus.receive("q")
        clock.advance(31)
    assert bus.count(dead_letter_path("q")) == 1  # looking at the sub-queue is enough
    assert bus.count("q") == 0
    dead = bus.peek(dead_letter_path("q"))[0]
    assert dead.dead_letter_reason == MAX_DELIVERY_REASON
    assert dead.delivery_count == 3
    assert dead.dead_letter_description
    # in the dead-letter sub-queue a message is never dead-lettered again
    for _ in range(5):
        received = bus.receive(dead_letter_path("q"))[0]
        bus.abandon(dead_letter_path("q"), received)
    assert bus.count(dead_letter_path("q")) == 1


def test_a_scheduled_message_appears_at_its_time(bus: SqliteMessaging, clock: ManualClock) -> None:
    at = clock.now() + timedelta(hours=1)
    send(bus, "q", "later", scheduled_enqueue_time=at)
    send(bus, "q", "now")
    now = bus.receive("q", max_messages=5)
    assert [m.body for m in now] == [b"now"]
    bus.complete("q", now[0])
    clock.advance(3599)
    assert bus.receive("q") == []
    clock.advance(1)
    later = bus.receive("q")[0]
    assert later.body == b"later" and later.enqueued_time == at


def test_the_duplicate_window_counts_from_the_first_send(bus: SqliteMessaging, clock: ManualClock) -> None:
    send(bus, "q", "1", message_id="x")
    clock.advance(minutes=9)
    send(bus, "q", "2", message_id="x")  # dropped, and does not extend the window
    clock.advance(minutes=1)
    send(bus, "q", "3", message_id="x")  # 10 minutes after the first: accepted
    clock.advance(minutes=1)
    send(bus, "q", "4", message_id="x")  # within the new window
    assert [m.body for m in bus.receive("q", max_messages=10)] == [b"1", b"3"]


def test_duplicates_within_one_batch_are_dropped(bus: SqliteMessaging) -> None:
    send(bus, "q", "1", "2", message_id="same")
    assert bus.count("q") == 1


# -- the adapter's own rules -----------------------------------------------------------------------


def test_names_are_case_insensitive(bus: SqliteMessaging) -> None:
    bus.create_queue("Jobs")
    send(bus, "JOBS", "a")
    assert bus.entity_exists("jobs")
    assert bus.receive("jobs")[0].body == b"a"


def test_a_send_is_all_or_nothing(bus: SqliteMessaging) -> None:
    with pytest.raises(TypeError):
        bus.send("q", [OutgoingMessage(b"ok"),
                       OutgoingMessage(b"bad", application_properties={"x": [1]})])  # type: ignore[dict-item]
    assert bus.count("q") == 0


def test_send_each_is_one_transaction(bus: SqliteMessaging) -> None:
    """The job's event and its reply go together or not at all (one write on the embedded queues)."""
    bus.create_queue("replies")
    with pytest.raises(EntityNotFound):
        bus.send_each([("replies", [OutgoingMessage(b"reply")]), ("missing", [OutgoingMessage(b"x")])])
    assert bus.count("replies") == 0
    bus.send_each([("replies", [OutgoingMessage(b"one")]), ("replies", [OutgoingMessage(b"two")])])
    assert [m.body for m in bus.receive("replies", 5)] == [b"one", b"two"]


def test_scheduled_times_must_be_timezone_aware(bus: SqliteMessaging, clock: ManualClock) -> None:
    with pytest.raises(ValueError):
        send(bus, "q", "a", scheduled_enqueue_time=clock.now().replace(tzinfo=None))


def test_a_peeked_message_cannot_be_settled(bus: SqliteMessaging) -> None:
    send(bus, "q", "a")
    with pytest.raises(LockLost):
        bus.complete("q", bus.peek("q")[0])


def test_topics_are_sent_to_and_subscriptions_received_from(bus: SqliteMessaging) -> None:
    bus.create_topic("t")
    bus.create_subscription("t", "s")
    with pytest.raises(EntityNotFound):
        bus.receive("t")
    with pytest.raises(EntityNotFound):
        send(bus, subscription_path("t", "s"), "a")
    with pytest.raises(EntityNotFound):
        send(bus, dead_letter_path("q"), "a")
    with pytest.raises(MessagingError):
        bus.create_queue("t")  # one namespace for queues and topics


def test_close_ends_a_waiting_receive(bus: SqliteMessaging) -> None:
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            bus.receive("q", max_wait=5)
        except MessagingError as exc:
            errors.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.1)
    started = time.monotonic()
    bus.close()
    waiter.join(timeout=2)
    assert time.monotonic() - started < 1 and len(errors) == 1


# -- waking and sharing ------------------------------------------------------------------------------


@pytest.mark.parametrize("to, source", [("q", "q"), ("t", subscription_path("t", "s"))], ids=["queue", "topic"])
def test_a_send_in_this_process_wakes_a_waiting_receive_at_once(tmp_path: Path, to: str, source: str) -> None:
    """A send wakes one waiting receiver per message (each subscription's, for a topic), at once."""
    bus = SqliteMessaging(tmp_path / "bus.db")
    bus.create_queue("q")
    bus.create_topic("t")
    bus.create_subscription("t", "s")
    bus.create_subscription("t", "other")  # its own receivers are not the ones woken for "s"
    latencies: list[float] = []
    try:
        for _ in range(15):
            got: list[float] = []
            waiter = threading.Thread(target=lambda: bus.receive(source, max_wait=3) and got.append(time.perf_counter()))
            waiter.start()
            time.sleep(0.02)  # let it start waiting
            sent = time.perf_counter()
            send(bus, to, "x")
            waiter.join(timeout=5)
            latencies.append(got[0] - sent)
    finally:
        bus.close()
    assert statistics.median(latencies) < 0.01, latencies  # far below the 50 ms poll


def test_another_instance_on_the_same_file_is_seen_by_polling(tmp_path: Path) -> None:
    receiver, sender = SqliteMessaging(tmp_path / "bus.db"), SqliteMessaging(tmp_path / "bus.db")
    timer = threading.Timer(0.2, lambda: send(sender, "q", "from elsewhere"))
    try:
        receiver.create_queue("q")
        timer.start()
        started = time.monotonic()
        got = receiver.receive("q", max_wait=3)
        assert [m.body for m in got] == [b"from elsewhere"]
        assert time.monotonic() - started < 1
    finally:
        # The sender's thread may still be finishing its COMMIT when the message is seen: closing
        # its connection under it crashes the sqlite3 module, so it ends first.
        timer.join(5)
        receiver.close()
        sender.close()


_CHILD = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from shared.adapters.local.sqlite_messaging import SqliteMessaging
    from shared.ports.messaging import OutgoingMessage

    bus = SqliteMessaging(Path(sys.argv[1]))
    name = sys.argv[2]
    bus.send("q", [OutgoingMessage(f"{name}-{i}".encode(), message_id=f"{name}-{i}") for i in range(50)])
    seen, idle_since = [], time.monotonic()
    while time.monotonic() - idle_since < 1.0:
        got = bus.receive("q", max_messages=7, max_wait=0.2)
        if got:
            idle_since = time.monotonic()
        for m in got:
            bus.complete("q", m)
            seen.append(m.message_id)
    print(json.dumps(seen))
""")


def test_processes_sharing_the_file_never_get_the_same_message(tmp_path: Path) -> None:
    path = tmp_path / "bus.db"
    bus = SqliteMessaging(path)
    bus.create_queue("q", EntityOptions(duplicate_detection_window=None))
    bus.send("q", [OutgoingMessage(f"parent-{i}".encode(), message_id=f"parent-{i}") for i in range(200)])
    children = [subprocess.Popen([sys.executable, "-c", _CHILD, str(path), f"child{n}"], cwd=REPO,
                                 stdout=subprocess.PIPE, text=True) for n in range(3)]
    seen: list[str] = []
    for child in children:
        out, _ = child.communicate(timeout=60)
        assert child.returncode == 0
        seen += json.loads(out)
    expected = [f"parent-{i}" for i in range(200)] + [f"child{n}-{i}" for n in range(3) for i in range(50)]
    assert sorted(seen) == sorted(expected)
    assert bus.count("q") == 0
    bus.close()


def test_the_duplicate_detection_table_keeps_only_ids_within_their_window(bus: SqliteMessaging,
                                                                           clock: ManualClock) -> None:
    """Message ids are forgotten once their window has passed, so the table holds only recent sends
    (a deep lane whose jobs wait for hours does not keep growing it)."""
    bus.create_queue("lane", EntityOptions(duplicate_detection_window=timedelta(minutes=10)))
    bus.send("lane", [OutgoingMessage(b"x", message_id=f"old-{n}") for n in range(50)])
    clock.advance(minutes=11)
    bus.send("lane", [OutgoingMessage(b"x", message_id="new")])
    rows = bus._conn().execute("SELECT message_id FROM dedup").fetchall()
    assert rows == [("new",)]
    bus.send("lane", [OutgoingMessage(b"x", message_id="new")])  # still a duplicate
    assert bus.count("lane") == 51
