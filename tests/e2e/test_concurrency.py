"""Concurrent writers on one resource: ETags make every read-modify-write safe, on both stores."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from shared.localhost.process import LocalHostProcess

from conftest import API_VERSION, SUBSCRIPTION

USER = {"adminUserName": "scientist", "adminUserPassword": "Pa55-secret-word"}
OPTIONS = ("requeue", "terminate", "waitforjobcompletion")
ROUNDS = 40


def in_parallel(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls at the same moment on their own threads; their results in order."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int, call: Callable[[], Any]) -> None:
        barrier.wait()
        results[index] = call()

    threads = [threading.Thread(target=run, args=pair) for pair in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_two_clients_racing_patches_lose_no_update(any_host: LocalHostProcess) -> None:
    rg = f"rg-race-{uuid.uuid4().hex[:6]}"
    cluster = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{rg}/providers/Microsoft.BatchAI/workspaces/ws/clusters/c"
    params = {"api-version": API_VERSION}
    with httpx.Client(base_url=any_host.endpoint, params=params, headers=any_host.headers) as a, \
            httpx.Client(base_url=any_host.endpoint, params=params, headers=any_host.headers) as b:
        assert a.put(cluster.rsplit("/clusters", 1)[0], json={"location": "eastus"}).status_code == 200
        assert a.put(cluster, json={"properties": {"vmSize": "STANDARD_D2", "userAccountSettings": USER}}
                     ).status_code == 200

        def patch(client: httpx.Client, manual: dict[str, Any]) -> Callable[[], httpx.Response]:
            body = {"properties": {"scaleSettings": {"manual": manual}}}
            return lambda: client.patch(cluster, json=body)

        for round_ in range(1, ROUNDS + 1):
            option = OPTIONS[round_ % len(OPTIONS)]
            answers = in_parallel(patch(a, {"targetNodeCount": round_}),
                                  patch(b, {"nodeDeallocationOption": option}))
            assert [r.status_code for r in answers] == [200, 200], [r.text for r in answers]
            # Each answer shows its own change; the resource shows both.
            assert answers[0].json()["properties"]["scaleSettings"]["manual"]["targetNodeCount"] == round_
            assert answers[1].json()["properties"]["scaleSettings"]["manual"]["nodeDeallocationOption"] == option
            manual = a.get(cluster).json()["properties"]["scaleSettings"]["manual"]
            assert manual == {"targetNodeCount": round_, "nodeDeallocationOption": option}, f"round {round_}"
