"""A plain HTTP server on 127.0.0.1 served from a thread of the test process, for the fakes of
Azure services: each request is handed to one function (nothing to stop but the thread)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

Handle = Callable[[BaseHTTPRequestHandler], None]


class LoopbackServer:
    def __init__(self, handle: Handle, name: str) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # One write per answer, sent at once: else delayed ACKs cost ~40 ms a request.
            wbufsize = -1
            disable_nagle_algorithm = True

            def do_GET(self) -> None: handle(self)  # noqa: E704, N802
            def do_PUT(self) -> None: handle(self)  # noqa: E704, N802
            def do_POST(self) -> None: handle(self)  # noqa: E704, N802
            def do_PATCH(self) -> None: handle(self)  # noqa: E704, N802
            def do_DELETE(self) -> None: handle(self)  # noqa: E704, N802

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=name, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def read_json_request(handler: BaseHTTPRequestHandler) -> tuple[str, dict[str, str], bytes, Any]:
    """(path, query with the last value of each name, raw body, body as JSON — or as text if it is not JSON)."""
    url = urlsplit(handler.path)
    query = {k: v[-1] for k, v in parse_qs(url.query).items()}
    length = int(handler.headers.get("Content-Length") or 0)
    raw = handler.rfile.read(length) if length else b""
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = raw.decode(errors="replace")
    return url.path, query, raw, body
