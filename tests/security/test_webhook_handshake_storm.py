"""Issue 16, item 3: validation handshakes may not hold the API's workers. 80 subscription creates at
once, all to an endpoint on 127.0.0.1 that accepts connections and never answers, against the real
local host: a plain GET made during the storm is about as fast as before it (at most a few handshakes
run at once; a create beyond that is answered 429 with Retry-After at once), every create gets a 4xx,
and nothing is stored."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.e2e.hosts import running_host
from tests.e2e.test_cluster_scheduling import WS, BatchAI
from tests.security.test_webhook_destinations import Silent

CREATES = 80


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BatchAI]:
    with running_host(tmp_path_factory.mktemp("handshake-storm") / "state") as host:
        client = BatchAI(host)
        yield client
        client.close()


def timed_get(client: httpx.Client) -> float:
    started = time.perf_counter()
    assert client.get(WS).status_code == 200
    return time.perf_counter() - started


def test_creates_to_an_endpoint_that_never_answers_do_not_slow_other_callers(api: BatchAI) -> None:
    silent = Silent(seconds=40, most=CREATES + 20)
    reader = httpx.Client(base_url=api.host.endpoint, headers=api.host.headers,
                          params={"api-version": "2018-05-01"}, timeout=60)
    try:
        before = [timed_get(reader) for _ in range(30)]
        storm_over = threading.Event()

        def create(i: int) -> httpx.Response:
            return api.http.put(f"{WS}/eventSubscriptions/storm-{i}",
                                json={"properties": {"destination": {"endpointUrl": silent.url}}})

        during: list[float] = []
        with ThreadPoolExecutor(CREATES) as pool:
            started = time.perf_counter()
            futures = [pool.submit(create, i) for i in range(CREATES)]
            threading.Thread(target=lambda: ([f.exception() for f in futures], storm_over.set()), daemon=True).start()
            time.sleep(0.3)  # the creates are in
            while not storm_over.is_set() and len(during) < 200:
                during.append(timed_get(reader))
            answers = [f.result() for f in futures]
            storm = time.perf_counter() - started
    finally:
        reader.close()
        silent.stop()
    statuses = sorted({a.status_code for a in answers})
    assert set(statuses) <= {400, 429}, [a.text for a in answers if a.status_code not in (400, 429)][:3]
    assert all(a.headers.get("Retry-After") for a in answers if a.status_code == 429)
    assert api.http.get(f"{WS}/eventSubscriptions").json()["value"] == [], "nothing is stored"
    slowest_before, slowest_during = max(before), max(during)
    print(f"GET before: median {statistics.median(before) * 1000:.1f} ms, max {slowest_before * 1000:.1f} ms; "
          f"during {len(during)} GETs: median {statistics.median(during) * 1000:.1f} ms, "
          f"max {slowest_during * 1000:.1f} ms; storm {storm:.1f} s, answers {statuses}")
    assert len(during) >= 5
    assert statistics.median(during) < statistics.median(before) + 0.1
    assert slowest_during < max(1.0, 3 * slowest_before)
