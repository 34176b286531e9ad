"""The node agent's attempt, in this process with real folders and processes (local storage):
every way preparing or launching can fail ends in exactly one report whose error names the cause,
and the attempt then says it is no longer live (what its node's heartbeat tells the watchdog)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from node_bootstrap import attempt as attempt_module
from node_bootstrap.attempt import MESSAGE_LIMIT, Attempt, Outcome
from node_bootstrap.storage import NodeStorage
from shared.models.agent import Assignment, Problem

NODE = "node-0"


class Barrier:
    def prepared(self) -> None:
        pass

    def wait_all(self, stopped: threading.Event) -> bool:
        return True


class Reports:
    def __init__(self) -> None:
        self.outcomes: list[Outcome] = []
        self.arrived = threading.Event()

    def __call__(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)
        self.arrived.set()


def assignment(tmp_path: Path, **properties: Any) -> dict[str, Any]:
    props = {"cluster": {"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.BatchAI/workspaces/ws/clusters/c"},
             "nodeCount": 1, "stdOutErrPathPrefix": str(tmp_path / "logs"), "customToolkitSettings": {"commandLine": "true"}}
    return {"job": "job|rg|ws|e|j", "attempt": 1, "jobId": "/x/jobs/j", "master": True,
            "nodes": [{"nodeId": NODE, "address": "127.0.0.1"}], "properties": props | properties,
            "jobOutputDirectoryPathSegment": "s/ws/e/j/0000", "volumes": []}


def run(tmp_path: Path, wire: dict[str, Any], report: Any = None) -> tuple[Attempt, Reports]:
    """Start the attempt (its assignment read as the agent reads it); wait until it reported and no
    longer works toward its report."""
    reports = Reports()
    storage = NodeStorage(mode="local", storage_dir=tmp_path / "storage").for_job()
    assignment = Assignment.read(json.dumps(wire))
    attempt = Attempt(tmp_path / "node", NODE, "127.0.0.1", assignment, storage, report or reports, Barrier())
    attempt.start()
    for _ in range(200):
        if not attempt.live:
            break
        attempt.thread.join(0.05)
    assert not attempt.live, "the attempt is still working after 10 s"
    attempt.stop()
    attempt.thread.join(10)
    assert not attempt.thread.is_alive()
    return attempt, reports


def error_of(reports: Reports) -> Problem:
    [outcome] = reports.outcomes
    assert outcome.exit_code != 0 and outcome.error is not None, outcome
    assert len(outcome.error.message) <= MESSAGE_LIMIT
    return outcome.error


@pytest.fixture
def regular_file(tmp_path: Path) -> Path:
    path = tmp_path / "hostname"
    path.write_text("node\n")
    return path


def test_a_stdouterr_prefix_below_a_regular_file(tmp_path: Path, regular_file: Path) -> None:
    _, reports = run(tmp_path, assignment(tmp_path, stdOutErrPathPrefix=str(regular_file / "x")))
    error = error_of(reports)
    assert error.code == "InvalidStdOutErrPath" and "Not a directory" in error.message
    assert "properties.stdOutErrPathPrefix" in error.message and NODE in error.message


def test_a_stdouterr_prefix_with_a_nul(tmp_path: Path) -> None:
    _, reports = run(tmp_path, assignment(tmp_path, stdOutErrPathPrefix="/tmp/a\x00b"))
    error = error_of(reports)
    assert error.code == "InvalidStdOutErrPath" and "null byte" in error.message, error


def test_an_output_directory_below_a_regular_file(tmp_path: Path, regular_file: Path) -> None:
    outputs = [{"id": "OK", "pathPrefix": str(tmp_path / "out")}, {"id": "BAD", "pathPrefix": str(regular_file)}]
    _, reports = run(tmp_path, assignment(tmp_path, outputDirectories=outputs))
    error = error_of(reports)
    assert error.code == "InvalidOutputDirectory" and "properties.outputDirectories[1]" in error.message
    assert "'BAD'" in error.message and "Not a directory" in error.message


def test_a_mount_that_fails(tmp_path: Path) -> None:
    wire = assignment(tmp_path) | {"volumes": [{"kind": "azureFileShare", "relativeMountPath": "../../up",
                                                "account": "a", "share": "s", "key": "k"}]}
    _, reports = run(tmp_path, wire)
    error = error_of(reports)
    assert error.code == "MountFailed" and "relativeMountPath" in error.message


def test_a_volume_the_node_cannot_read_is_a_mount_failure(tmp_path: Path) -> None:
    wire = assignment(tmp_path) | {"volumes": [{"kind": "floppy", "relativeMountPath": "f"}]}
    error = error_of(run(tmp_path, wire)[1])
    assert error.code == "MountFailed" and "floppy" in error.message


def test_a_launch_that_cannot_exec(tmp_path: Path) -> None:
    """A NUL in a variable's value: execve cannot be given it, so the process never starts."""
    _, reports = run(tmp_path, assignment(tmp_path, environmentVariables=[{"name": "X", "value": "a\x00b"}]))
    error = error_of(reports)
    assert error.code == "JobLaunchFailed" and "null byte" in error.message


def test_a_job_preparation_that_cannot_exec(tmp_path: Path) -> None:
    _, reports = run(tmp_path, assignment(tmp_path, jobPreparation={"commandLine": "true\x00"}))
    assert error_of(reports).code == "JobLaunchFailed"


def test_anything_unexpected_is_the_agents_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(master: bool, node_id: str) -> None:
        raise KeyError("master")  # a bug of the agent's own, before the job's processes start

    monkeypatch.setattr(attempt_module, "log_names", broken)
    _, reports = run(tmp_path, assignment(tmp_path))
    error = error_of(reports)
    assert error.code == "NodeAgentError" and "KeyError" in error.message and "attempt 1" in error.message


def test_a_long_cause_is_cut_to_what_the_agent_api_takes(tmp_path: Path, regular_file: Path) -> None:
    deep = str(regular_file / ("d" * 200) / ("e" * 200) / ("f" * 200) / ("g" * 200) / ("h" * 200))
    error = error_of(run(tmp_path, assignment(tmp_path, stdOutErrPathPrefix=deep))[1])
    assert error.code == "InvalidStdOutErrPath"


def test_a_report_that_raises_still_ends_the_attempt(tmp_path: Path, regular_file: Path) -> None:
    calls: list[Outcome] = []

    def broken(outcome: Outcome) -> None:
        calls.append(outcome)
        raise RuntimeError("the network is gone")

    attempt, _ = run(tmp_path, assignment(tmp_path, stdOutErrPathPrefix=str(regular_file)), report=broken)
    assert len(calls) == 1 and attempt.ended_at is not None


def test_a_job_that_succeeds_reports_zero_and_is_not_live_after(tmp_path: Path) -> None:
    attempt, reports = run(tmp_path, assignment(tmp_path))
    assert [o.exit_code for o in reports.outcomes] == [0] and attempt.ended_at is not None


def test_an_error_never_shows_a_secret(tmp_path: Path, regular_file: Path) -> None:
    secret = "s3cr3t-value-that-must-not-leak"
    prefix = str(regular_file / secret)
    wire = assignment(tmp_path, stdOutErrPathPrefix=prefix, secrets=[{"name": "TOKEN", "value": secret}])
    error = error_of(run(tmp_path, wire)[1])
    assert error.code == "InvalidStdOutErrPath" and secret not in error.message and "***" in error.message
