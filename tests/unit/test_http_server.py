"""The local host's HTTP app runs synchronous functions on its own few worker threads."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from pathlib import Path

import azure.functions as func
import httpx

from shared.localhost.functions_index import IndexedFunction
from shared.localhost.http_server import WAITING_FUNCTIONS, FunctionsHttpApp
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


def test_functions_that_wait_on_the_network_never_hold_the_threads_of_the_others() -> None:
    """Webhook handshakes to an endpoint that never answers hold their own threads only."""
    release = threading.Event()

    def waiting(req: func.HttpRequest) -> func.HttpResponse:
        release.wait(10)
        return func.HttpResponse("waited", status_code=200)

    def quick(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("quick", status_code=200)

    name = sorted(WAITING_FUNCTIONS)[0]
    app = FunctionsHttpApp(Router([
        IndexedFunction(name=name, trigger_type="httpTrigger", func=waiting, route="wait/{n}", methods=("PUT",)),
        IndexedFunction(name="Quick", trigger_type="httpTrigger", func=quick, route="quick", methods=("GET",)),
    ]), 1024, threads=2, waiting_threads=2)

    async def requests() -> tuple[str, list[str]]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://h") as client:
            held = [asyncio.create_task(client.put(f"/wait/{n}")) for n in range(6)]
            await asyncio.sleep(0.1)
            answer = await asyncio.wait_for(client.get("/quick"), 5)
            release.set()
            return answer.text, [a.text for a in await asyncio.gather(*held)]

    try:
        assert asyncio.run(requests()) == ("quick", ["waited"] * 6)
    finally:
        release.set()
        app.close()


def test_the_waiting_functions_are_functions_of_the_app() -> None:
    """Read from the sources: indexing the app a second time in one process is refused by azure-functions."""
    sources = (Path(__file__).parents[2] / "functions").glob("*.py")
    names = {m for source in sources for m in re.findall(r'function_name\("([^"]+)"\)', source.read_text())}
    assert WAITING_FUNCTIONS <= names
