"""The test broker's HTTP side: the ATOM/XML management API that ServiceBusAdministrationClient calls.

Paths (query string ignored, names case-insensitive):
    PUT/GET/DELETE /<queue or topic>                          create / read / delete
    PUT/GET/DELETE /<topic>/Subscriptions/<subscription>
A create answers 201 with the entity's entry, or 409 if the name is taken; a read of a missing
entity answers 404; a delete answers 200 (404 if missing). An entry carries the settings the
client sent (lock duration, max delivery count, duplicate detection) and the runtime counts
(CountDetails), which is all the adapter reads. Authorization headers are not checked.

The server never listens itself: the AMQP server's accept loop (shared/localhost/amqp/server.py)
hands it the connections that do not start with an AMQP header, through `process_request`.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit
from xml.sax.saxutils import escape

from .store import Namespace, NotFound, Queue, Settings, Topic

ATOM = "http://www.w3.org/2005/Atom"
SB = "http://schemas.microsoft.com/netservices/2010/10/servicebus/connect"
SB_COUNTS = "http://schemas.microsoft.com/netservices/2011/06/servicebus"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
_FOREVER = "P10675199DT2H48M5.4775807S"
_DURATION = re.compile(r"^P(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>[\d.]+)S)?)?$")


def parse_duration(text: str | None, default: float) -> float:
    """Seconds in an ISO 8601 duration such as PT1M or PT0.5S (days, hours, minutes, seconds only)."""
    if not text:
        return default
    match = _DURATION.match(text.strip())
    if match is None:
        raise ValueError(f"unsupported duration {text!r}")
    parts = {k: float(v) if v else 0.0 for k, v in match.groupdict().items()}
    return parts["d"] * 86400 + parts["h"] * 3600 + parts["m"] * 60 + parts["s"]


def format_duration(seconds: float) -> str:
    whole, fraction = divmod(round(seconds * 1000), 1000)
    hours, rest = divmod(int(whole), 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{secs}.{fraction:03d}".rstrip("0").rstrip(".") if fraction else str(secs)
    return f"PT{hours}H{minutes}M{text}S"


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat().replace("+00:00", "Z")


def settings_from(body: bytes, kind: str) -> Settings:
    """The settings in a create request's <entry><content><XxxDescription>."""
    defaults = Settings()
    description = None
    if body.strip():
        root = ET.fromstring(body)
        description = root.find(f"{{{ATOM}}}content/{{{SB}}}{kind}Description")

    def text(name: str) -> str | None:
        element = description.find(f"{{{SB}}}{name}") if description is not None else None
        return element.text if element is not None else None

    return Settings(
        lock_duration=parse_duration(text("LockDuration"), defaults.lock_duration),
        max_delivery_count=int(text("MaxDeliveryCount") or defaults.max_delivery_count),
        duplicate_detection=(text("RequiresDuplicateDetection") or "false").lower() == "true",
        duplicate_window=parse_duration(text("DuplicateDetectionHistoryTimeWindow"), defaults.duplicate_window),
    )


def entry_xml(base_url: str, path: str, entity: Queue | Topic, kind: str, counts: dict[str, int]) -> str:
    """An ATOM entry as Service Bus answers it, with the fields the SDK's models read."""
    s = entity.settings
    created = _iso(entity.created_at)
    common = {
        "DefaultMessageTimeToLive": _FOREVER,
        "EnableBatchedOperations": "true",
        "Status": "Active",
        "CreatedAt": created,
        "UpdatedAt": created,
        "AccessedAt": created,
        "AutoDeleteOnIdle": _FOREVER,
        "EntityAvailabilityStatus": "Available",
    }
    if kind == "Queue":
        fields = {"LockDuration": format_duration(s.lock_duration), "MaxSizeInMegabytes": "1024",
                  "RequiresDuplicateDetection": str(s.duplicate_detection).lower(), "RequiresSession": "false",
                  "DeadLetteringOnMessageExpiration": "false",
                  "DuplicateDetectionHistoryTimeWindow": format_duration(s.duplicate_window),
                  "MaxDeliveryCount": str(s.max_delivery_count), "SizeInBytes": "0",
                  "MessageCount": str(counts["active"] + counts["scheduled"] + counts["dead"]),
                  "EnablePartitioning": "false", "EnableExpress": "false"}
    elif kind == "Topic":
        fields = {"MaxSizeInMegabytes": "1024", "RequiresDuplicateDetection": str(s.duplicate_detection).lower(),
                  "DuplicateDetectionHistoryTimeWindow": format_duration(s.duplicate_window), "SizeInBytes": "0",
                  "FilteringMessagesBeforePublishing": "false", "SupportOrdering": "true",
                  "SubscriptionCount": str(len(entity.subscriptions)) if isinstance(entity, Topic) else "0",
                  "EnablePartitioning": "false", "EnableExpress": "false"}
    else:
        fields = {"LockDuration": format_duration(s.lock_duration), "RequiresSession": "false",
                  "DeadLetteringOnMessageExpiration": "false", "DeadLetteringOnFilterEvaluationExceptions": "false",
                  "MessageCount": str(counts["active"] + counts["scheduled"] + counts["dead"]),
                  "MaxDeliveryCount": str(s.max_delivery_count)}
    fields.update(common)
    body = "".join(f"<{name}>{escape(value)}</{name}>" for name, value in fields.items())
    count_details = (
        f'<CountDetails xmlns:d2p1="{SB_COUNTS}">'
        f"<d2p1:ActiveMessageCount>{counts['active']}</d2p1:ActiveMessageCount>"
        f"<d2p1:DeadLetterMessageCount>{counts['dead']}</d2p1:DeadLetterMessageCount>"
        f"<d2p1:ScheduledMessageCount>{counts['scheduled']}</d2p1:ScheduledMessageCount>"
        "<d2p1:TransferMessageCount>0</d2p1:TransferMessageCount>"
        "<d2p1:TransferDeadLetterMessageCount>0</d2p1:TransferDeadLetterMessageCount>"
        "</CountDetails>"
    )
    url = escape(f"{base_url}/{path}")
    name = escape(path.rsplit("/", 1)[-1])
    return (
        f'<?xml version="1.0" encoding="utf-8"?><entry xmlns="{ATOM}">'
        f"<id>{url}</id><title type=\"text\">{name}</title><published>{created}</published>"
        f"<updated>{created}</updated><author><name>test-broker</name></author>"
        f'<link rel="self" href="{url}"/>'
        f'<content type="application/xml"><{kind}Description xmlns="{SB}" xmlns:i="{XSI}">'
        f"{body}{count_details}</{kind}Description></content></entry>"
    )


class AtomHandler(BaseHTTPRequestHandler):
    server: AtomServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass  # quiet: tests read the results, not an access log

    def _path(self) -> list[str]:
        return [unquote(p) for p in urlsplit(self.path).path.strip("/").split("/") if p]

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _answer(self, status: int, body: str = "") -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/atom+xml;type=entry;charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, detail: str) -> None:
        self._answer(status, f"<Error><Code>{status}</Code><Detail>{escape(detail)}</Detail></Error>")

    @staticmethod
    def _kind(parts: list[str], entity: Queue | Topic) -> str:
        if len(parts) == 3:
            return "Subscription"
        return "Topic" if isinstance(entity, Topic) else "Queue"

    def _entry(self, parts: list[str], status: int) -> None:
        namespace = self.server.namespace
        path = "/".join(parts)
        entity = namespace.get(path)
        if entity is None:
            self._error(404, f"Entity '{path}' was not found.")
            return
        self._answer(status, entry_xml(self.server.base_url, path, entity, self._kind(parts, entity),
                                       namespace.counts(path)))

    def do_GET(self) -> None:  # noqa: N802 - the base class's naming
        parts = self._path()
        if len(parts) not in (1, 3) or (len(parts) == 3 and parts[1].lower() != "subscriptions"):
            self._error(404, "not supported by the test broker")
            return
        self._entry(parts, 200)

    def do_PUT(self) -> None:  # noqa: N802
        parts = self._path()
        body = self._body()
        namespace = self.server.namespace
        try:
            if len(parts) == 1:
                kind = "Topic" if b"TopicDescription" in body else "Queue"
                settings = settings_from(body, kind)
                create = namespace.create_topic if kind == "Topic" else namespace.create_queue
                made = create(parts[0], settings)
            elif len(parts) == 3 and parts[1].lower() == "subscriptions":
                made = namespace.create_subscription(parts[0], parts[2], settings_from(body, "Subscription"))
            else:
                self._error(400, "not supported by the test broker")
                return
        except NotFound:
            self._error(404, f"Entity '{parts[0]}' was not found.")
            return
        except (ValueError, ET.ParseError) as exc:
            self._error(400, str(exc))
            return
        if made is None:
            self._error(409, f"Entity '{'/'.join(parts)}' already exists.")
            return
        self._entry(parts, 201)

    def do_DELETE(self) -> None:  # noqa: N802
        parts = self._path()
        if self.server.namespace.delete("/".join(parts)):
            self._answer(200)
        else:
            self._error(404, f"Entity '{'/'.join(parts)}' was not found.")


class AtomServer(ThreadingHTTPServer):
    """An HTTP server fed connections by the broker (it is never bound to a port itself)."""

    daemon_threads = True

    def __init__(self, namespace: Namespace, authority: str) -> None:
        super().__init__(("127.0.0.1", 0), AtomHandler, bind_and_activate=False)
        self.namespace = namespace
        self.base_url = f"https://{authority}"


__all__ = ["AtomServer", "format_duration", "parse_duration"]
