"""An ASGI application that serves a FunctionApp's HTTP triggers, as the Functions host would."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import json
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qsl

import anyio
import azure.functions as func

from shared.errors import PayloadTooLarge, cloud_error
from shared.localhost.router import Router

log = logging.getLogger(__name__)
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
# A refused body is read and dropped up to this far past the limit, for at most this long, before the
# answer goes out (see _discard_rest).
DISCARD_BEYOND_LIMIT = 64 * 1024 * 1024
DISCARD_SECONDS = 30.0


# Functions that wait on the network: a subscription's create runs the webhook validation handshake
# (bounded by BATCHAI_WEBHOOK_HANDSHAKE_CONCURRENCY). They get threads of their own, so endpoints that
# never answer cannot hold the threads every other request needs.
WAITING_FUNCTIONS = frozenset({"EventSubscriptions_Create"})


class FunctionsHttpApp:
    """Routes each request to its function: synchronous functions run on `threads` worker threads, as
    the Functions Python worker runs them on PYTHON_THREADPOOL_THREAD_COUNT threads, and those in
    WAITING_FUNCTIONS on `waiting_threads` of their own.

    A few threads, not one per waiting request: the functions hold the GIL for most of their time, so
    more threads only take turns, and each turn is a context switch. A plain thread pool, not anyio's,
    whose hand-off costs more. Context switches per job create (bench/api_throughput.py's 16 clients,
    2 instances): 66-81 with anyio's 40 threads; 38 with one of these, 44-53 with 2, 58-62 with 4.
    Not one: a slow function (a listing of Azure Storage, say) holds one thread, and the rest serve."""

    def __init__(self, router: Router, max_body_bytes: int, threads: int = 4, waiting_threads: int = 5) -> None:
        self.router = router
        self.max_body_bytes = max_body_bytes
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="http")
        self._waiting = ThreadPoolExecutor(waiting_threads, thread_name_prefix="http-waiting")

    def close(self) -> None:
        """Let the worker threads end once their requests are answered."""
        self._executor.shutdown(wait=False)
        self._waiting.shutdown(wait=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if _declared_length(scope) > self.max_body_bytes:  # refused before a byte of the body is kept
            await self._discard_body(scope, receive)
            await self._too_large(send)
            return
        method, path = scope["method"], scope["path"]
        function, route_params = self.router.match(method, path)
        if function is None or not isinstance(route_params, dict):
            status, code = (405, "MethodNotAllowed") if route_params else (404, "NotFound")
            message = f"No operation answers {method} {path}." if status == 404 else \
                f"{method} is not allowed on {path}."
            await self._discard_body(scope, receive)
            await _send_json(send, status, cloud_error(code, message))
            return
        body = await _read_body(receive, self.max_body_bytes, self.max_body_bytes + DISCARD_BEYOND_LIMIT)
        if body is None:
            await self._too_large(send)
            return
        request = func.HttpRequest(method=method, url=_url(scope), headers=_headers(scope),
                                   params=dict(parse_qsl(scope["query_string"].decode("latin-1"),
                                                         keep_blank_values=True)),
                                   route_params=route_params, body=body)
        if inspect.iscoroutinefunction(function.func):
            response = await function.func(request)
        else:
            call = functools.partial(contextvars.copy_context().run, function.func, request)  # as asyncio.to_thread
            executor = self._waiting if function.name in WAITING_FUNCTIONS else self._executor
            response = await asyncio.get_running_loop().run_in_executor(executor, call)
        await _send_response(send, response)

    async def _discard_body(self, scope: Scope, receive: Receive) -> None:
        """Read and drop a body that will not be used, unless it is declared larger than the bound or
        the client waits to send it (Expect: 100-continue): see `_discard_rest`."""
        bound = self.max_body_bytes + DISCARD_BEYOND_LIMIT
        if _declared_length(scope) <= bound and _header(scope, b"expect").lower() != "100-continue":
            await _discard_rest(receive, bound)

    async def _too_large(self, send: Send) -> None:
        """413, the same CloudError as the operations' own check (functions/http_api.py)."""
        error = PayloadTooLarge(f"The request body is larger than {self.max_body_bytes} bytes, the most accepted.",
                                target="body")
        await _send_json(send, error.status, error.body())


def _declared_length(scope: Scope) -> int:
    """The Content-Length the client announced (0 without one: a streamed body is counted as it comes)."""
    try:
        return int(_header(scope, b"content-length") or 0)
    except ValueError:
        return 0


def _header(scope: Scope, name: bytes) -> str:
    """One request header's value ('' when absent); `name` in lower case."""
    return next((v.decode("latin-1") for k, v in scope["headers"] if k.lower() == name), "")


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _read_body(receive: Receive, limit: int, bound: int) -> bytes | None:
    """The whole body, or None as soon as it passes the limit (the rest is read up to `bound`, not kept)."""
    chunks, size = [], 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            if message.get("more_body"):
                await _discard_rest(receive, bound - size)
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def _discard_rest(receive: Receive, bound: int) -> None:
    """Read and drop the rest of a body, at most `bound` bytes and DISCARD_SECONDS: the server closes a
    connection after an early answer, and closing on unread data resets it under a client that is still
    sending (urllib reads only after it sent everything), which then never sees the answer."""
    with anyio.move_on_after(DISCARD_SECONDS):
        size = 0
        while size <= bound:
            message = await receive()
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                return


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}


def _url(scope: Scope) -> str:
    host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), None)
    if host is None:
        server = scope.get("server") or ("127.0.0.1", 80)
        host = f"{server[0]}:{server[1]}"
    query = scope["query_string"].decode("latin-1")
    path = scope.get("raw_path", b"").decode("latin-1") or scope["path"]
    return f"{scope.get('scheme', 'http')}://{host}{path}" + (f"?{query}" if query else "")


async def _send_json(send: Send, status: int, body: Any) -> None:
    await _send(send, status, [(b"content-type", b"application/json")], json.dumps(body).encode())


async def _send_response(send: Send, response: func.HttpResponse) -> None:
    headers = [(k.lower().encode("latin-1"), str(v).encode("latin-1")) for k, v in response.headers.items()]
    if response.mimetype and not any(k == b"content-type" for k, _ in headers):
        content_type = response.mimetype + (f"; charset={response.charset}" if response.charset else "")
        headers.append((b"content-type", content_type.encode("latin-1")))
    await _send(send, response.status_code, headers, response.get_body() or b"")


async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    headers = [h for h in headers if h[0] != b"content-length"] + [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
