"""Issue 16, item 3, at the API of the real local host: an event subscription may not point the
service at its own network. Each URL below is refused with a 400 naming
`properties.destination.endpointUrl` and nothing is stored: link-local and cloud metadata addresses
and names (whatever the settings), private, shared, unspecified, multicast and reserved ranges (the
local host allows only loopback by default), URLs that parsers read differently (numeric hosts, user
info, backslashes), and URLs that cannot be parsed at all (never a 500). A failed validation
handshake gives one neutral message, whatever the endpoint did; a receiver on loopback still works."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from shared.localhost.process import LocalHostProcess
from tests.e2e.hosts import running_host
from tests.e2e.test_cluster_scheduling import WS, BatchAI
from tests.integration.test_event_delivery import Receiver, receivers

__all__ = ["receivers"]
TARGET = "properties.destination.endpointUrl"
REFUSED = {
    # link-local and cloud metadata: never
    "metadata address": "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "link-local IPv4": "http://169.254.1.1:8080/hook",
    "link-local IPv6": "http://[fe80::1]/hook",
    "GCP metadata name": "http://metadata.google.internal/computeMetadata/v1/",
    "GCP metadata name, final dot": "http://metadata.google.internal./computeMetadata/v1/",
    "Azure metadata name": "http://metadata.azure.com/metadata/instance",
    "short metadata name": "http://metadata/computeMetadata/v1/",
    "EC2 IPv6 metadata": "http://[fd00:ec2::254]/latest/meta-data/",
    "Azure WireServer": "http://168.63.129.16/machine",
    "Alibaba metadata": "http://100.100.100.200/latest/meta-data/",
    "metadata as v4-mapped IPv6": "http://[::ffff:169.254.169.254]/",
    "metadata through NAT64": "http://[64:ff9b::a9fe:a9fe]/",
    "metadata through 6to4": "http://[2002:a9fe:a9fe::]/",
    # private and other non-public ranges: not unless the operator allows them
    "10/8": "http://10.0.0.1/hook",
    "172.16/12": "http://172.16.5.4:8443/hook",
    "192.168/16": "https://192.168.1.1/hook",
    "CGNAT 100.64/10": "http://100.64.0.1/hook",
    "unique local fc00::/7": "http://[fd12:3456::1]/hook",
    "private as v4-mapped IPv6": "http://[::ffff:10.0.0.1]/hook",
    "0.0.0.0": "http://0.0.0.0:7071/hook",
    "unspecified IPv6": "http://[::]/hook",
    "multicast": "http://224.0.0.1/hook",
    "reserved 240/4": "http://240.0.0.1/hook",
    "broadcast": "http://255.255.255.255/hook",
    "documentation range": "http://192.0.2.10/hook",
    # hosts that parsers read differently
    "decimal IPv4": "http://2852039166/",
    "hex IPv4": "http://0xa9.0xfe.0xa9.0xfe/",
    "octal IPv4": "http://0251.0376.0251.0376/",
    "leading zeros": "http://127.000.000.001/",
    "user info before metadata": "http://example.com@169.254.169.254/",
    "user info": "http://user:password@example.com/hook",
    "backslash": "http://169.254.169.254\\@example.com/",
    "IPv6 zone id": "http://[fe80::1%25eth0]/",
    # unparsable
    "tab in the host": "http://exa\tmple.com/hook",
    "CR/LF in the path": "http://example.com/hook\r\nX-Injected: 1",
    "space": "http://example.com/a hook",
    "non-ASCII": "http://exämple.com/hook",
    "64-character label": f"http://{'a' * 64}.example.com/hook",
    "254-character name": f"http://{'.'.join(['a' * 62] * 4)}.com/hook",
    "empty label": "http://example..com/hook",
    "port too large": "http://example.com:99999/hook",
    "port zero": "http://example.com:0/hook",
    "port not a number": "http://example.com:http/hook",
    "broken IPv6": "http://[::1/hook",
    "no host": "http:///hook",
    "no scheme": "//example.com/hook",
    "ftp": "ftp://example.com/hook",
    "file": "file:///etc/passwd",
    "gopher": "gopher://127.0.0.1:6379/_FLUSHALL",
    "javascript": "javascript:alert(1)",
}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BatchAI]:
    with running_host(tmp_path_factory.mktemp("webhook-destinations") / "state") as host:
        client = BatchAI(host)  # fails a case on any 5xx
        yield client
        client.close()


def put(api: BatchAI, name: str, url: str) -> Any:
    return api.http.put(f"{WS}/eventSubscriptions/{name}",
                        json={"properties": {"destination": {"endpointUrl": url}, "secret": "s"}})


@pytest.mark.parametrize("url", REFUSED.values(), ids=REFUSED.keys())
def test_a_destination_off_limits_or_unreadable_is_a_400_naming_the_field(api: BatchAI, url: str) -> None:
    answer = put(api, "refused", url)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["target"] == TARGET, error
    assert error["code"] in ("InvalidRequestContent", "WebHookEndpointNotAllowed"), "refused before any request"
    assert api.http.get(f"{WS}/eventSubscriptions/refused").status_code == 404, "nothing is stored"


class Silent:
    """A TCP listener on 127.0.0.1 that accepts and never answers (bounded: it closes after `seconds`)."""

    def __init__(self, seconds: float = 30, most: int = 200) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0), backlog=most)
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}/hook"
        self.accepted: list[socket.socket] = []
        self.socket.settimeout(0.2)
        self.done = threading.Event()
        self.deadline = seconds
        self.most = most
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        waited = 0.0
        while not self.done.is_set() and waited < self.deadline and len(self.accepted) < self.most:
            try:
                self.accepted.append(self.socket.accept()[0])
            except TimeoutError:
                waited += 0.2
        self.done.wait(max(0.0, self.deadline - waited))
        for connection in self.accepted:
            connection.close()
        self.socket.close()

    def stop(self) -> None:
        self.done.set()
        self.thread.join(5)


@pytest.fixture
def silent() -> Iterator[Silent]:
    listener = Silent()
    yield listener
    listener.stop()


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return int(probe.getsockname()[1])


def test_every_failed_handshake_gets_the_same_neutral_message(api: BatchAI, receivers: list[Receiver],
                                                              silent: Silent) -> None:
    class NotFound(BaseHTTPRequestHandler):
        def do_OPTIONS(self) -> None:  # noqa: N802 (http.server's naming)
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    answers_404 = ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=answers_404.serve_forever, daemon=True).start()
    no_origin, other_origin = Receiver(allow=None), Receiver(allow="someone-else.example")
    receivers.extend([no_origin, other_origin])
    try:
        endpoints = {"nothing listens": f"http://127.0.0.1:{free_port()}/hook",
                     "answers 404": f"http://127.0.0.1:{answers_404.server_address[1]}/hook",
                     "no allowed origin": no_origin.url, "another origin": other_origin.url,
                     "never answers": silent.url, "name that does not resolve": "http://receiver.invalid/hook"}
        errors = {}
        for why, url in endpoints.items():
            answer = put(api, "neutral", url)
            assert answer.status_code == 400, (why, answer.text)
            errors[why] = answer.json()["error"]
        assert len({(e["code"], e["message"], e["target"]) for e in errors.values()}) == 1, errors
        assert errors["answers 404"]["target"] == TARGET and "404" not in errors["answers 404"]["message"]
        assert api.http.get(f"{WS}/eventSubscriptions").json()["value"] == []
    finally:
        answers_404.shutdown()
        answers_404.server_close()


def test_a_receiver_on_loopback_is_accepted_by_the_local_host(api: BatchAI, receivers: list[Receiver]) -> None:
    receiver = Receiver()
    receivers.append(receiver)
    for url in (receiver.url, receiver.url.replace("127.0.0.1", "localhost")):
        answer = put(api, "mine", url)
        assert answer.status_code == 200, answer.text
    assert api.http.delete(f"{WS}/eventSubscriptions/mine").status_code in (200, 204)
