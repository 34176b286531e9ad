"""The request/response nodes: `$cbs` (claims-based security) and `<entity>/$management`.

A client sends a request message on a sender link to the node and reads the answer on a receiver
link of the same node; the answer's correlation-id is the request's message-id. These functions
only compute the answer; the handler (server.py) routes it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from proton import UNDESCRIBED, Array, Data, Message, symbol

from shared.localhost.amqp.namespace import AmqpNamespace, LockLost, NotFound, NotSupported
from shared.localhost.amqp.wire import as_uuid, encode_for_delivery, envelope, get, items, ms

LOCK_LOST = "com.microsoft:message-lock-lost"
Authorize = Callable[[str, str], bool]  # (token, audience) -> whether the token grants that audience


def put_token(request: Message, authorize: Authorize | None) -> tuple[Message, str | None]:
    """The answer to a CBS put-token, and the audience it grants (None when refused)."""
    audience = str(get(request.properties, "name") or "")
    if authorize is not None:
        token = request.body if isinstance(request.body, str) else ""
        try:
            granted = authorize(token, audience)
        except Exception:  # noqa: BLE001 - a token that cannot be read is a refused one
            granted = False
        if not granted:
            return Message(properties={"status-code": 401, "status-description": "Unauthorized"}), None
    return Message(properties={"status-code": 202, "status-description": "Accepted"}), audience


def management(namespace: AmqpNamespace, path: str, request: Message) -> Message:
    """The answer to one `$management` operation on the entity at path."""
    operation = str(get(request.properties, "operation") or "")
    body = request.body if isinstance(request.body, dict) else {}
    try:
        if operation == "com.microsoft:renew-lock":
            until = [namespace.renew(as_uuid(t)) for t in items(get(body, "lock-tokens"))]
            return ok({symbol("expirations"): _array(Data.TIMESTAMP, *[ms(u) for u in until])})
        if operation == "com.microsoft:peek-message":
            start = int(get(body, "from-sequence-number") or 0)
            count = int(get(body, "message-count") or 1)
            found = namespace.peek(path, start, count)
            if not found:
                return status(204, "No messages")
            return ok({symbol("messages"): [{symbol("message"): encode_for_delivery(m, None, peeked=True)}
                                            for m in found]})
        if operation == "com.microsoft:schedule-message":
            batch = [envelope(bytes(get(e, "message"))) for e in items(get(body, "messages"))]
            numbers = namespace.schedule(path, batch)
            return ok({symbol("sequence-numbers"): _array(Data.LONG, *numbers)})
        if operation == "com.microsoft:cancel-scheduled-message":
            namespace.cancel_scheduled(path, [int(n) for n in items(get(body, "sequence-numbers"))])
            return ok({})
        if operation == "com.microsoft:update-disposition":
            return _update_disposition(namespace, body)
        return status(501, f"operation {operation!r} is not supported here", "com.microsoft:not-implemented")
    except NotSupported as exc:
        return status(501, str(exc) or f"operation {operation!r} is not supported here",
                      "com.microsoft:not-implemented")
    except NotFound:
        return status(404, f"'{path}' does not exist", "amqp:not-found")
    except LockLost:
        return status(410, "The lock supplied is invalid.", LOCK_LOST)


def _update_disposition(namespace: AmqpNamespace, body: Any) -> Message:
    """Settle by lock token (messages received on another link, or deferred ones)."""
    disposition = str(get(body, "disposition-status") or "")
    for token in [as_uuid(t) for t in items(get(body, "lock-tokens"))]:
        if disposition == "completed":
            namespace.complete(token)
        elif disposition == "abandoned":
            namespace.abandon(token)
        elif disposition == "suspended":
            namespace.dead_letter(token, get(body, "deadletter-reason"), get(body, "deadletter-description"))
        else:
            return status(501, f"disposition {disposition!r} is not supported", "com.microsoft:not-implemented")
    return ok({})


def ok(body: dict[Any, Any]) -> Message:
    return Message(body=body, properties={"statusCode": 200, "statusDescription": "OK"})


def status(code: int, description: str, condition: str | None = None) -> Message:
    properties: dict[str, Any] = {"statusCode": code, "statusDescription": description}
    if condition:
        properties["errorCondition"] = symbol(condition)
    return Message(properties=properties)


def _array(kind: int, *elements: Any) -> Array:
    """An AMQP array of plain (undescribed) values."""
    return Array(UNDESCRIBED, kind, *elements)  # type: ignore[arg-type]  # proton: UNDESCRIBED is not in its own type
