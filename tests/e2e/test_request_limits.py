"""Every HTTP request to the local host is held to BATCHAI_MAX_REQUEST_BYTES (shared/localhost/
http_server.py): 413 with a CloudError naming the body, decided from Content-Length before the body
is read, or as soon as a streamed body passes the limit; on every route, not only Batch AI's."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from shared.localhost.process import LocalHostProcess
from tests.e2e.hosts import running_host

LIMIT = 4096
WS = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.BatchAI/workspaces/ws"
ROUTES = [
    ("POST", "/agent/register"),
    ("POST", "/agent/heartbeat"),
    ("PUT", WS + "/eventSubscriptions/hook"),
    ("PUT", WS + "/clusters/c"),
]


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHostProcess]:
    with running_host(tmp_path_factory.mktemp("limits") / "state", {"BATCHAI_MAX_REQUEST_BYTES": str(LIMIT)}) as host:
        yield host


@pytest.fixture(scope="module")
def client(host: LocalHostProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=host.endpoint, headers=host.headers, params={"api-version": "2018-05-01"},
                      timeout=30) as client:
        yield client


def assert_too_large(answer: httpx.Response) -> None:
    assert answer.status_code == 413, answer.text
    error = answer.json()["error"]
    assert error["code"] == "RequestEntityTooLarge" and error["target"] == "body" and str(LIMIT) in error["message"]


@pytest.mark.parametrize("method, path", [*ROUTES, ("PUT", "/no/such/route")])
def test_a_declared_length_over_the_limit_is_refused(client: httpx.Client, method: str, path: str) -> None:
    assert_too_large(client.request(method, path, content=b"{" + b" " * LIMIT + b"}"))


@pytest.mark.parametrize("method, path", ROUTES)
def test_a_streamed_body_is_refused_once_it_passes_the_limit(client: httpx.Client, method: str, path: str) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: sent chunked
        for _ in range(8):
            yield b" " * 1024

    answer = client.request(method, path, content=chunks())  # (an unknown route answers 404 unread)
    assert answer.request.headers.get("transfer-encoding") == "chunked"
    assert_too_large(answer)


def test_a_body_within_the_limit_goes_through(client: httpx.Client) -> None:
    answer = client.post("/agent/heartbeat", content=b"{}" + b" " * (LIMIT - 2))
    assert answer.status_code == 401  # reached the handler, which wants a node's credential


def test_many_megabytes_are_refused_without_being_read(client: httpx.Client) -> None:
    assert_too_large(client.put(WS + "/eventSubscriptions/big", content=b" " * (8 * 1024 * 1024)))
    assert client.get("/health").status_code == 200
