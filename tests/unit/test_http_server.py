"""The local host's HTTP app runs synchronous functions on its own few worker threads."""

from __future__ import annotations

import asyncio
import threading
import time

import azure.functions as func
import httpx

from shared.localhost.functions_index import IndexedFunction
from shared.localhost.http_server import FunctionsHttpApp
from shared.localhost.router import Router


def test_synchronous_functions_run_on_at_most_the_configured_threads() -> None:
    lock = threading.Lock()
    running, most, names = 0, 0, set()

    def slow(req: func.HttpRequest) -> func.HttpResponse:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
            names.add(threading.current_thread().name)
        time.sleep(0.05)
        with lock:
            running -= 1
        return func.HttpResponse(req.route_params["n"], status_code=200)

    app = FunctionsHttpApp(Router([IndexedFunction(name="Slow", trigger_type="httpTrigger", func=slow,
                                                   route="slow/{n}", methods=("GET",))]), 1024, threads=2)

    async def requests() -> list[str]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://h") as client:
            answers = await asyncio.gather(*(client.get(f"/slow/{n}") for n in range(8)))
        return [a.text for a in answers]

    try:
        assert asyncio.run(requests()) == [str(n) for n in range(8)]
    finally:
        app.close()
    assert most == 2
    assert names and all(name.startswith("http") for name in names)
