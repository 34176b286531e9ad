"""Messages on the wire: batches split, what a client sent unpacked, stored messages dressed for delivery.

Service Bus clients (azure-servicebus 7.x, pyamqp) send a batch as one transfer of message format
0x80013700 whose data sections each hold one whole encoded message; proton does not expose the
format, so a body made only of encoded messages is taken for a batch. On delivery the broker adds
what Service Bus adds: the header's delivery count and the x-opt-* annotations, plus the
dead-letter reason and description as application properties of a dead-lettered message.
"""

from __future__ import annotations

import uuid
from typing import Any

from proton import Array, Data, Described, Message, symbol, timestamp

from shared.localhost.amqp.namespace import Envelope, StoredMessage

DEAD_LETTER_REASON = "DeadLetterReason"
DEAD_LETTER_DESCRIPTION = "DeadLetterErrorDescription"
_DATA = 0x75  # descriptor code of a data section
_SECTION_CODES = range(0x70, 0x79)  # header .. footer


def split_batch(raw: bytes) -> list[bytes]:
    """The messages in what a client sent: a batch's inner messages, or the message itself.

    A batch may also carry the first message's properties beside its data sections. A plain
    message's data section is opaque bytes, never mistaken for a batch unless it is itself a
    whole encoded AMQP message, which a client only sends inside a batch.
    """
    inner: list[bytes] = []
    rest = memoryview(raw)
    while rest:
        section = Data()
        used = section.decode(bytes(rest))
        rest = rest[used:]
        section.rewind()
        if not section.next() or section.type() != Data.DESCRIBED:
            return [raw]
        value = section.get_object()
        if not isinstance(value, Described) or value.descriptor != _DATA:
            continue
        if not isinstance(value.value, bytes | memoryview):  # a data section: binary (proton: a memoryview)
            return [raw]
        body = bytes(value.value)
        if not _is_encoded_message(body):
            return [raw]
        inner.append(body)
    return inner or [raw]


def _is_encoded_message(value: bytes) -> bool:
    if len(value) < 3 or value[0] != 0x00 or value[1] != 0x53 or value[2] not in _SECTION_CODES:
        return False
    try:
        Message().decode(value)
    except Exception:  # noqa: BLE001 - not a message: opaque bytes
        return False
    return True


def envelope(raw: bytes) -> Envelope:
    """(message id, encoded message, annotations by plain-string key) of one message a client sent."""
    message = Message()
    message.decode(raw)
    annotations = {str(k): v for k, v in (message.annotations or {}).items()}
    return message.id, raw, annotations


def encode_for_delivery(stored: StoredMessage, locked_until: float | None, *, peeked: bool = False) -> bytes:
    """The stored message with what the broker adds: header delivery count and x-opt-* annotations."""
    message = Message()
    message.decode(stored.raw)
    # The header counts earlier attempts; a peek shows the count so far.
    message.delivery_count = stored.deliveries if peeked else max(0, stored.deliveries - 1)
    annotations = dict(message.annotations or {})
    annotations[symbol("x-opt-sequence-number")] = int(stored.seq)
    annotations[symbol("x-opt-enqueued-time")] = ms(stored.enqueued_at)
    if stored.visible_at > stored.enqueued_at + 0.001:
        annotations[symbol("x-opt-scheduled-enqueue-time")] = ms(stored.visible_at)
    if locked_until is not None:
        annotations[symbol("x-opt-locked-until")] = ms(locked_until)
    if stored.dead_letter is not None:
        annotations[symbol("x-opt-deadletter-source")] = "queue"
    message.annotations = annotations
    if stored.dead_letter is not None:
        reason, description = stored.dead_letter
        properties = dict(message.properties or {})
        properties[DEAD_LETTER_REASON] = reason
        properties[DEAD_LETTER_DESCRIPTION] = description
        message.properties = properties  # type: ignore[assignment]  # proton: inferred None from __init__
    return bytes(message.encode())


def ms(seconds: float) -> timestamp:
    """An AMQP timestamp (milliseconds since the epoch)."""
    return timestamp(int(seconds * 1000))


def get(mapping: Any, key: str) -> Any:
    """A value of an AMQP map whose keys may be strings or symbols (None if absent or not a map)."""
    if not isinstance(mapping, dict):
        return None
    for candidate, value in mapping.items():
        if str(candidate) == key:
            return value
    return None


def items(value: Any) -> list[Any]:
    """The elements of an AMQP array or list (None: none)."""
    if value is None:
        return []
    return list(value.elements) if isinstance(value, Array) else list(value)


def as_uuid(value: Any) -> uuid.UUID:
    """A lock token as a management request carries it (uuid, or its 16 bytes)."""
    return value if isinstance(value, uuid.UUID) else uuid.UUID(bytes=bytes(value))
