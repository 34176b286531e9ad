"""Service Bus triggers on the local host: each queue-triggered function is fed from the embedded
messaging adapter with the Functions host's semantics — peek-lock, several messages at once,
complete on success, abandon on failure (so the delivery count rises and the queue's max delivery
count dead-letters a message that keeps failing), dead-letter at once when the function says the
message can never succeed (PoisonMessage).

Like the Functions host's prefetch and auto-complete, a pump thread locks up to PREFETCH messages
in one receive, runs the function on each in turn and completes the ones that succeeded together:
two queue writes for a batch instead of two per message. Once half a lock has passed, what succeeded
is completed and the messages still waiting have their locks renewed. (The Service Bus adapter hands
over one message per receive; see its receive.)"""

from __future__ import annotations

import inspect
import logging
import threading
from dataclasses import replace
from datetime import datetime
from typing import Any

from azure.functions.servicebus import ServiceBusMessage

from shared.localhost.functions_index import IndexedFunction
from shared.ports.clock import Clock, SystemClock
from shared.ports.messaging import Messaging, PoisonMessage, ReceivedMessage, subscription_path

log = logging.getLogger(__name__)
POLL_SECONDS = 0.5  # how long one receive waits; bounds how fast the pump notices a stop
PREFETCH = 16  # messages one receive may lock for one pump thread
# Functions that wait on the network take one message at a time, so one slow endpoint holds back no other.
ONE_AT_A_TIME = frozenset({"WebHookDelivery"})
# Functions whose work per message is a few store reads run on one thread per instance: the messages
# that arrive while it works are taken together by its next receive, so a burst of job events costs
# two queue writes per batch. With a thread per waiting message each receive got one event, and the
# fan-out threads cost more than the creates' own events (py-spy, bench/api_throughput.py).
ONE_THREAD = frozenset({"JobEventsFanOut"})
BATCH_GATHER_SECONDS = 0.02  # after a short batch, such a thread waits this long before its next receive


def trigger_message(message: ReceivedMessage) -> ServiceBusMessage:
    """The message as a Functions trigger receives it."""
    return ServiceBusMessage(
        body=message.body, message_id=message.message_id, application_properties=dict(message.application_properties),
        user_properties=dict(message.application_properties), correlation_id=message.correlation_id,
        delivery_count=message.delivery_count, enqueued_time_utc=message.enqueued_time,
        locked_until=message.locked_until, lock_token=message.lock_token, sequence_number=message.sequence_number,
        subject=message.subject, label=message.subject, reply_to=message.reply_to, session_id=message.session_id,
        reply_to_session_id=message.reply_to_session_id,
        dead_letter_reason=message.dead_letter_reason, dead_letter_error_description=message.dead_letter_description)


def entity_of(function: IndexedFunction) -> str | None:
    """What a Service Bus trigger reads: its queue, or its subscription of a topic."""
    if function.queue_name:
        return function.queue_name
    if function.topic_name and function.subscription_name:
        return subscription_path(function.topic_name, function.subscription_name)
    return None


class QueuePump:
    """`concurrency` threads per queue-triggered function (one for those in ONE_THREAD), until `stop()`."""

    def __init__(self, messaging: Messaging, functions: list[IndexedFunction], concurrency: int = 4,
                 clock: Clock | None = None) -> None:
        self.messaging = messaging
        self.clock = clock or SystemClock()  # the messaging's clock: locks are in its time
        self.functions = [f for f in functions if f.trigger_type == "serviceBusTrigger" and entity_of(f)]
        self.concurrency = concurrency
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for function in self.functions:
            for n in range(1 if function.name in ONE_THREAD else self.concurrency):
                thread = threading.Thread(target=self._pump, args=(function,), name=f"pump-{function.name}-{n}",
                                          daemon=True)
                thread.start()
                self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)

    def _pump(self, function: IndexedFunction) -> None:
        queue = entity_of(function)
        assert queue is not None
        prefetch = 1 if function.name in ONE_AT_A_TIME else PREFETCH
        while not self._stop.is_set():
            try:
                received = self.messaging.receive(queue, prefetch, max_wait=POLL_SECONDS)
            except Exception:
                log.exception("receiving from %s failed", queue)
                self._stop.wait(POLL_SECONDS)
                continue
            self._run_batch(function, queue, received)
            if function.name in ONE_THREAD and 0 < len(received) < prefetch:
                self._stop.wait(BATCH_GATHER_SECONDS)  # let the next events gather: one receive takes them

    def _run_batch(self, function: IndexedFunction, queue: str, received: list[ReceivedMessage]) -> None:
        waiting = list(received)
        succeeded: list[ReceivedMessage] = []
        renew_at = _half_way(waiting, self.clock.now())
        while waiting:
            if renew_at is not None and self.clock.now() >= renew_at:
                # Half a lock has passed: what succeeded goes now, and the rest keep their locks.
                self._complete(queue, succeeded)
                waiting = self._renewed(queue, waiting)
                renew_at = _half_way(waiting, self.clock.now())
                continue
            message = waiting.pop(0)
            if self._deliver(function, queue, message):
                succeeded.append(message)
        self._complete(queue, succeeded)

    def _deliver(self, function: IndexedFunction, queue: str, message: ReceivedMessage) -> bool:
        """Run the function on the message: True when it is to be completed (a failure is settled here)."""
        try:
            result: Any = function.func(trigger_message(message))
            if inspect.iscoroutine(result):
                raise TypeError("async queue-triggered functions are not supported by the local host")
        except PoisonMessage as poison:  # never retried: dead-lettered now, with the function's reason
            log.warning("function %s dead-lettered message %s: %s", function.name, message.message_id, poison.reason)
            reason, description = poison.reason, poison.description
            self._settle(lambda q, m: self.messaging.dead_letter(q, m, reason, description), queue, message)
            return False
        except Exception:
            log.exception("function %s failed on message %s (delivery %d)", function.name, message.message_id,
                          message.delivery_count)
            self._settle(self.messaging.abandon, queue, message)
            return False
        return True

    def _complete(self, queue: str, messages: list[ReceivedMessage]) -> None:
        """Complete what succeeded so far in one write, and forget it; a message whose lock was lost
        comes back and its (idempotent) function runs again."""
        if not messages:
            return
        try:
            lost = self.messaging.complete_all(queue, messages)
        except Exception:
            log.warning("could not complete %d messages on %s", len(messages), queue)
            lost = []
        for message in lost:
            log.warning("could not settle message %s on %s", message.message_id, queue)
        messages.clear()

    def _renewed(self, queue: str, messages: list[ReceivedMessage]) -> list[ReceivedMessage]:
        """The messages with fresh locks; one whose lock is lost already is not ours to run: it comes back."""
        kept = []
        for message in messages:
            try:
                kept.append(replace(message, locked_until=self.messaging.renew_lock(queue, message)))
            except Exception:
                log.warning("could not renew the lock of message %s on %s", message.message_id, queue)
        return kept

    @staticmethod
    def _settle(settle: Any, queue: str, message: ReceivedMessage) -> None:
        try:
            settle(queue, message)
        except Exception:  # lock lost: the message comes back and the (idempotent) function runs again
            log.warning("could not settle message %s on %s", message.message_id, queue)


def _half_way(messages: list[ReceivedMessage], now: datetime) -> datetime | None:
    """When the earliest of these locks is half spent (locks taken together run out together)."""
    ends = [m.locked_until for m in messages if m.locked_until is not None]
    return now + (min(ends) - now) / 2 if ends else None
