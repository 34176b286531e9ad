"""Structured logs (shared/logs.py): text or JSON lines, and never a secret in either (invariant 7)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from shared import logs
from shared.settings import Settings

SECRETS = {
    "Authorization: Bearer eyJhbGciOi.payload.sig": "eyJhbGciOi",
    "headers={'x-batchai-node': 'u|n1', 'x-batchai-node-credential': 'cred-123'}": "cred-123",
    "GET /files/a/stdout.txt?se=1767225600&sig=AbC%2Bdef": "AbC%2Bdef",
    "Endpoint=sb://h/;SharedAccessKeyName=Root;SharedAccessKey=c2VjcmV0Cg==;": "c2VjcmV0Cg==",
    "DefaultEndpointsProtocol=https;AccountName=acc;AccountKey=a2V5LWtleQ==;EndpointSuffix=x": "a2V5LWtleQ==",
    '{"adminUserName": "me", "adminUserPassword": "Pa55-word"}': "Pa55-word",
    "{'accountKey': 'storage-key', 'accountName': 'acc'}": "storage-key",
    "subscription secret=hook-secret given": "hook-secret",
    "Settings(cosmos_key='cosmos-key', store='cosmos')": "cosmos-key",
}


@pytest.fixture
def output() -> Iterator[tuple[logging.Logger, io.StringIO, list[logging.Handler]]]:
    stream, installed = io.StringIO(), []
    root = logging.getLogger()
    level = root.level
    yield logging.getLogger("tests.logs"), stream, installed
    for handler in installed:
        root.removeHandler(handler)
    root.setLevel(level)


def use(fmt: str, output: tuple[logging.Logger, io.StringIO, list[logging.Handler]]) -> None:
    installed = output[2]
    installed.append(logs.configure(Settings(log_format=fmt), level=logging.INFO, stream=output[1]))


@pytest.mark.parametrize("text, secret", SECRETS.items())
def test_redact_hides_each_kind_of_secret_and_keeps_the_rest(text: str, secret: str) -> None:
    redacted = logs.redact(text)
    assert secret not in redacted and logs.MASK in redacted
    assert redacted.split(logs.MASK)[0] == text.split(secret)[0]  # what comes before is untouched


def test_ordinary_text_is_left_alone() -> None:
    text = "listing jobs?api-version=2018-05-01&$skiptoken=abc&maxresults=10 took 3 ms; token count=5"
    assert logs.redact("listing jobs?api-version=2018-05-01&$skiptoken=abc") == \
        "listing jobs?api-version=2018-05-01&$skiptoken=abc"
    assert "count=5" in logs.redact(text)


def test_text_format_one_line_per_record_redacted(output) -> None:  # type: ignore[no-untyped-def]
    use("text", output)
    log, stream, _ = output
    log.info("calling %s with %s", "agent/heartbeat", {"x-batchai-node-credential": "cred-123"})
    line = stream.getvalue().strip()
    assert "INFO tests.logs: calling agent/heartbeat" in line
    assert "cred-123" not in line and "***" in line


def test_json_format_has_time_level_logger_message_and_extras(output) -> None:  # type: ignore[no-untyped-def]
    use("json", output)
    log, stream, _ = output
    log.warning("job %s failed", "train", extra={"job": "train", "attempt": 2, "token": "boot-token",
                                                 "url": "https://a/b?sig=xyz"})
    entry = json.loads(stream.getvalue().strip())
    assert entry["level"] == "WARNING" and entry["logger"] == "tests.logs" and entry["message"] == "job train failed"
    assert entry["time"].endswith("Z") and entry["job"] == "train" and entry["attempt"] == 2
    assert entry["token"] == logs.MASK and entry["url"] == "https://a/b?sig=***"


def test_exceptions_are_redacted_too(output) -> None:  # type: ignore[no-untyped-def]
    use("json", output)
    log, stream, _ = output
    try:
        raise RuntimeError("connect failed: AccountKey=a2V5;")
    except RuntimeError:
        log.exception("upload failed")
    entry = json.loads(stream.getvalue().strip())
    assert "RuntimeError" in entry["exception"] and "a2V5" not in entry["exception"]


def test_configure_again_replaces_its_own_handler(output) -> None:  # type: ignore[no-untyped-def]
    use("text", output)
    use("json", output)
    ours = [h for h in logging.getLogger().handlers if getattr(h, "_batchai_handler", False)]
    assert len(ours) == 1 and isinstance(ours[0].formatter, logs.JsonFormatter)
