"""Logging of the local host and the node agent: text for people, or one JSON object per line for log
collectors (`settings.log_format`), and never a secret in either (invariant 7). Every record passes a
filter that redacts bearer tokens, node credentials, URL signatures, connection-string keys and the
values of the API's secret fields, in its message, its exception text and its extra fields.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import IO, Any

from shared.settings import Settings

MASK = "***"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Field names whose values are secrets: the API's secret fields (shared/models _secret_fields), the
# agents' token and credential, and the settings that hold keys.
SECRET_FIELDS = ("adminUserPassword", "accountKey", "password", "instrumentationKey", "secret", "token",
                 "credential", "cosmos_key", "servicebus_connection", "auth_function_keys")
_QUOTED_OR_BARE = r"(?:\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|[^\s,;&}\]]+)"


def _masked(match: re.Match[str]) -> str:
    """The name part kept, the value masked in the same quotes it had."""
    value = match.group(2)
    quote = value[0] if value[:1] in ("'", '"') else ""
    return f"{match.group(1)}{quote}{MASK}{quote}"


_PATTERNS: tuple[tuple[re.Pattern[str], Any], ...] = (
    # A private key (a cluster's ssh key) between its armour lines.
    (re.compile(r"(-----BEGIN [A-Z ]*PRIVATE KEY-----)[\s\S]*?(?=-----END [A-Z ]*PRIVATE KEY-----)"),
     lambda m: f"{m.group(1)}{MASK}"),
    (re.compile(r"(\bBearer\s+)([^\s\"',;]+)", re.IGNORECASE), _masked),
    (re.compile(r"(x-batchai-node-credential[\"']?\s*[:=]\s*)(" + _QUOTED_OR_BARE + ")", re.IGNORECASE), _masked),
    (re.compile(r"(\bsig=)([^&\s\"']+)", re.IGNORECASE), _masked),
    (re.compile(r"(\b(?:AccountKey|SharedAccessKey)=)([^;\s\"']+)", re.IGNORECASE), _masked),
    (re.compile(r"([\"']?\b(?:" + "|".join(SECRET_FIELDS) + r")[\"']?\s*[:=]\s*)(" + _QUOTED_OR_BARE + ")"),
     _masked),
)
# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "taskName"}
_INSTALLED = "_batchai_handler"


def redact(text: str) -> str:
    """The text with every secret it holds replaced by ***."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactSecrets(logging.Filter):
    """Rewrites the record in place (message, exception, extras), so every handler sees it redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key in extra_fields(record):
            setattr(record, key, _redact_value(key, getattr(record, key)))
        return True


def _redact_value(key: str, value: Any) -> Any:
    if key in SECRET_FIELDS:
        return MASK
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact_value("", v) for v in value]
    return value


def extra_fields(record: logging.LogRecord) -> list[str]:
    return [key for key in record.__dict__ if key not in _STANDARD and not key.startswith("_")]


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the record's extra fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {  # why: one JSON log line
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace(
                "+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in extra_fields(record):
            entry.setdefault(key, getattr(record, key))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure(settings: Settings, *, level: int = logging.WARNING, stream: IO[str] | None = None) -> logging.Handler:
    """Send the process's logs to `stream` (stderr) in the configured format, secrets redacted.

    Calling it again replaces the handler it installed before, and leaves other handlers alone."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _INSTALLED, False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(stream or sys.stderr)
    setattr(handler, _INSTALLED, True)
    handler.addFilter(RedactSecrets())
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(level)
    return handler
