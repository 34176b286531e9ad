"""Property tests of the running local host against its own OpenAPI document (GET /openapi.json):
schemathesis generates requests for every Batch AI operation and the event subscriptions, and checks
that none gets a 5xx and that every answer conforms to the document (status, content type, schema).

Generated bodies are made harmless before they are sent: clusters get no nodes (a node is a local
agent process that would run generated commands), and webhooks point at a stand-in on 127.0.0.1
(the create's validation handshake would otherwise reach out to generated hosts)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,
                                               status_code_conformance)

from shared.api import openapi
from shared.localhost.process import LocalHostProcess
from tests.e2e.hosts import running_host

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = 12  # per operation: 34 operations stay well under a minute on 2 cores


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHostProcess]:
    with running_host(tmp_path_factory.mktemp("schemathesis") / "state") as host:
        yield host


@pytest.fixture(scope="module")
def webhook() -> Iterator[str]:
    """A webhook that passes the CloudEvents validation handshake and accepts every delivery."""

    class Handler(BaseHTTPRequestHandler):
        def do_OPTIONS(self) -> None:  # noqa: N802 - http.server's naming
            self.send_response(200)
            self.send_header("WebHook-Allowed-Origin", "*")
            self.end_headers()

        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("content-length", 0)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def api_schema(host: LocalHostProcess) -> Any:
    """The document as the host serves it, with the host as base URL and valid data only."""
    document = httpx.get(host.endpoint + "/openapi.json", headers=host.headers, timeout=30).json()
    schema = schemathesis.openapi.from_dict(document)
    schema.config.update(base_url=host.endpoint)
    schema.config.generation.update(modes=[GenerationMode.POSITIVE])
    return schema


def harmless(operation_id: str, body: Any, webhook: str) -> Any:
    """The generated body with node counts at zero and the webhook on 127.0.0.1."""
    if not isinstance(body, dict) or not isinstance(body.get("properties"), dict):
        return body
    props = body["properties"]
    if operation_id in ("Clusters_Create", "Clusters_Update") and isinstance(props.get("scaleSettings"), dict):
        for settings_ in props["scaleSettings"].values():
            if isinstance(settings_, dict):
                for key in ("targetNodeCount", "minimumNodeCount", "maximumNodeCount", "initialNodeCount"):
                    if key in settings_:
                        settings_[key] = 0
    if operation_id == "EventSubscriptions_Create" and isinstance(props.get("destination"), dict):
        props["destination"]["endpointUrl"] = webhook
    return body


@pytest.mark.parametrize("operation_id", [op for op, _, _ in openapi.routes()])
def test_the_api_answers_as_its_document_says(operation_id: str, api_schema: Any, host: LocalHostProcess,
                                              webhook: str) -> None:
    operation = api_schema.find_operation_by_id(operation_id)

    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck), database=None)
    def answers_as_documented(case: Any) -> None:
        case.body = harmless(operation_id, case.body, webhook)
        case.call_and_validate(headers=host.headers, checks=CHECKS, timeout=30)

    answers_as_documented()
