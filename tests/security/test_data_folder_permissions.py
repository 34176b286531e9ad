"""Secrets at rest are private (invariant 7): the real local host, started on a new data folder,
makes it 0700 and every file in it 0600 — databases with their WAL and shared-memory files, the
endpoint, the owner token, the URL-signing key, the pools' and nodes' files, storage and blob
folders, a job's own outputs — and a folder left readable by others is tightened at start with one
warning line."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import httpx

from shared.localhost.process import LocalHostProcess
from tests.e2e.hosts import running_host
from tests.e2e.polling import wait_until
from tests.security.one_node_cluster import one_node_cluster

WS = "/subscriptions/sec/resourceGroups/rg/providers/Microsoft.BatchAI/workspaces/private"
CLUSTER = f"{WS}/clusters/one"
Q = {"api-version": "2018-05-01"}


def loose_entries(folder: Path) -> list[str]:
    """Everything below `folder` (links aside) that group or others may use: 'mode path' each."""
    found = []
    for here, _, files in os.walk(folder):
        for path in (here, *(os.path.join(here, f) for f in files)):
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode):
                continue
            wanted = 0o700 if stat.S_ISDIR(info.st_mode) else 0o600
            if stat.S_IMODE(info.st_mode) & ~wanted:
                found.append(f"{stat.S_IMODE(info.st_mode):o} {os.path.relpath(path, folder)}")
    return found


def run_a_job(host: LocalHostProcess) -> None:
    """A workspace, a one-node cluster and a job that writes an output file and a log: the host,
    the pool, the agent and the job each make files."""
    with httpx.Client(base_url=host.endpoint, params=Q, timeout=30, headers=host.headers) as http:
        one_node_cluster(http, WS)
        http.put(f"{WS}/experiments/e/jobs/j", json={"properties": {
            "cluster": {"id": CLUSTER}, "nodeCount": 1, "stdOutErrPathPrefix": "$AZ_BATCHAI_JOB_TEMP",
            "outputDirectories": [{"id": "OUT", "pathPrefix": "$AZ_BATCHAI_JOB_TEMP"}],
            "customToolkitSettings": {"commandLine": "echo model > $AZ_BATCHAI_OUTPUT_OUT/model.txt; echo done"},
        }}).raise_for_status()
        wait_until("the job to succeed", lambda: http.get(f"{WS}/experiments/e/jobs/j").json()["properties"]
                   ["executionState"] == "succeeded", timeout=90)
        listed = http.post(f"{WS}/experiments/e/jobs/j/listOutputFiles",
                           params={**Q, "outputdirectoryid": "OUT"}).json()["value"]
        assert "model.txt" in [f["name"] for f in listed]


def test_a_new_data_folder_and_everything_in_it_is_private(tmp_path: Path) -> None:
    data = tmp_path / "new" / "state"
    with running_host(data) as host:
        run_a_job(host)
        made = {p.name for p in data.iterdir()}
        assert {"token", "endpoint", "url-signing.key", "state.sqlite3", "state.sqlite3-wal",
                "state.sqlite3-shm", "messages.sqlite3", "pools"} <= made, made
        assert any(p.name == "model.txt" for p in (data / "pools").rglob("*"))
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        assert loose_entries(data) == []
    assert not [line for line in host.output if "readable by others" in line]  # nothing to tighten
    assert loose_entries(data) == []


def test_a_looser_existing_folder_is_tightened_with_one_warning(tmp_path: Path) -> None:
    data = tmp_path / "state"
    (data / "pools" / "old").mkdir(parents=True)
    for folder in (data, data / "pools", data / "pools" / "old"):
        folder.chmod(0o755)
    for path in (data / "notes.txt", data / "pools" / "old" / "notes.txt"):
        path.write_text("x")
        path.chmod(0o644)
    outside = tmp_path / "outside"
    outside.mkdir(mode=0o755)
    outside.chmod(0o755)
    (data / "outside-link").symlink_to(outside)  # a link is not followed: what it leads to stays as it is
    with running_host(data) as host:
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        assert loose_entries(data) == []
        warnings = [line for line in host.output if "readable by others" in line]
        assert len(warnings) == 1 and str(data) in warnings[0], host.output[:10]
    assert stat.S_IMODE(outside.stat().st_mode) == 0o755
