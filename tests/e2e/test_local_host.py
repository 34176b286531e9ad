"""`batchai local up`: serves the app's functions, answers /health, stops on Ctrl-C, keeps state."""

from __future__ import annotations

from pathlib import Path

import httpx

from shared.localhost.process import start_local_host

from conftest import API_VERSION, SUBSCRIPTION

WS = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg/providers/Microsoft.BatchAI/workspaces/ws"


def test_health_and_the_function_list(local_host) -> None:  # type: ignore[no-untyped-def]
    assert httpx.get(local_host.endpoint + "/health").status_code == 200
    listed = [line for line in local_host.output if line.startswith("  ")]
    assert sum("Jobs_Create: [PUT]" in line for line in listed) == 1
    # the 29 operations, 9 of the agents', files, /health, 5 of event subscriptions, 8 of role assignments,
    # the OpenAPI document, a job's events, the web page's 2, 6 of sweeps
    assert len([line for line in listed if "[" in line]) == 63
    assert any(line.endswith(f"Web page: {local_host.endpoint}/ui/ (`batchai ui` opens it signed in; or paste "
                             f"the token of {local_host.data_dir / 'token'})") for line in local_host.output)
    assert any("ClusterWork: serviceBusTrigger cluster-work" in line for line in listed)
    assert any("ReconcileClusters: timerTrigger" in line for line in listed)
    assert (local_host.data_dir / "endpoint").read_text().strip() == local_host.endpoint


def test_ctrl_c_stops_cleanly_and_a_restart_keeps_all_state(tmp_path: Path) -> None:
    data = tmp_path / "state"
    first = start_local_host(data)
    try:
        with httpx.Client(base_url=first.endpoint, params={"api-version": API_VERSION}, headers=first.headers) as http:
            created = http.put(WS, json={"location": "eastus", "tags": {"k": "v"}}).json()
            http.put(WS + "/experiments/exp")
    finally:
        assert first.stop() == 0, first.output[-20:]
    assert first.output[-1] == "Batch AI local host stopped"
    assert not (data / "endpoint").exists()

    second = start_local_host(data)
    try:
        with httpx.Client(base_url=second.endpoint, params={"api-version": API_VERSION}, headers=second.headers) as http:
            assert http.get(WS).json() == created
            assert [e["name"] for e in http.get(WS + "/experiments").json()["value"]] == ["exp"]
    finally:
        assert second.stop() == 0
