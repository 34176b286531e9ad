"""`batchai` end to end: every command against the real local host, with real agents and jobs.

The host keeps its state in `<folder>/.batchai` and the commands run in `<folder>` with no
configuration at all: they find the host by themselves. Most commands run in this process
(`shared.cli.main`, output captured); the ones that must be seen from outside — streaming a file
while the job still runs, a user's mistake without a traceback — run as real `batchai` processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from shared.cli.main import main
from shared.client import ApiError, BatchAIClient, resolve
from tests.e2e.polling import wait_until
from tests.e2e.hosts import running_host
from tests.integration.test_event_delivery import Receiver

ACCOUNT, KEY = "clistorage", "a storage key the CLI never shows"
HOST_ENV = {"BATCHAI_HEARTBEAT_SECONDS": "0.5"}
# A job as Batch AI's config files wrote it: the node expands the variables.
JOB_FILE = {"properties": {
    "nodeCount": 1,
    "stdOutErrPathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/afs",
    "outputDirectories": [{"id": "MODEL", "pathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/afs"}],
    "environmentVariables": [{"name": "GREETING", "value": "hello"}],
    "customToolkitSettings": {"commandLine": (
        # line 1, then hold until the test has seen it (the file `go` in the share; at most 60 s), so the
        # stream is shown while the job runs however slowly the stream's process starts on a loaded machine
        "echo line 1; for w in $(seq 600); do [ -e $AZ_BATCHAI_MOUNT_ROOT/afs/go ] && break; sleep 0.1; done; "
        "for i in 2 3 4 5 6; do echo line $i; sleep 0.2; done; echo \"$GREETING from $AZ_BATCHAI_MOUNT_ROOT\"; "
        "mkdir -p $AZ_BATCHAI_OUTPUT_MODEL/weights && echo trained > $AZ_BATCHAI_OUTPUT_MODEL/weights/model.txt")},
}}


@dataclass
class Result:
    code: int
    out: str
    err: str


Batchai = Callable[..., Result]  # batchai("job", "show", ...)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder with a local host started in it, as `batchai local up` would be there."""
    where = tmp_path_factory.mktemp("cli")
    with running_host(where / ".batchai", HOST_ENV):
        yield where


def clean_env(folder: Path) -> dict[str, str]:
    """The environment of a user who configured nothing (the storage account aside)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BATCHAI_", "AZURE_BATCHAI_"))}
    return {**env, "BATCHAI_CONFIG_FILE": str(folder / "cli-config"), "AZURE_BATCHAI_STORAGE_ACCOUNT": ACCOUNT,
            "AZURE_BATCHAI_STORAGE_KEY": KEY}


@pytest.fixture
def batchai(folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Batchai:
    """Run `batchai ARGS...` in this process, in the host's folder, and return its exit code and output."""
    monkeypatch.chdir(folder)
    for name in list(os.environ):
        if name.startswith(("BATCHAI_", "AZURE_BATCHAI_")):
            monkeypatch.delenv(name)
    for name, value in clean_env(folder).items():
        monkeypatch.setenv(name, value)
    (folder / "cli-config").unlink(missing_ok=True)
    return in_process(capsys)


def in_process(capsys: pytest.CaptureFixture[str]) -> Batchai:
    """`batchai ARGS...` run by `shared.cli.main` in this process: its exit code and output."""

    def run(*args: str) -> Result:
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def ok(result: Result) -> str:
    assert result.code == 0, result.out + result.err
    return result.out


def as_json(result: Result) -> Any:
    return json.loads(ok(result))


def one_line_error(result: Result, code: int = 1) -> str:
    assert result.code == code, result.out + result.err
    assert "Traceback" not in result.out + result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("batchai: error: "), result.err
    return lines[0]


def client(folder: Path) -> BatchAIClient:
    return BatchAIClient(resolve(env={}, cwd=folder))


def wait_idle(folder: Path, group: str, workspace: str, cluster: str, count: int) -> None:
    with client(folder) as c:
        wait_until(f"{count} idle nodes", lambda: (
            c.clusters.get(group, workspace, cluster).properties.node_state_counts.idle_node_count == count),
            timeout=60)


# -- workspaces, experiments, configuration --------------------------------------------------------
def test_workspace_commands_in_every_output_format(batchai: Batchai) -> None:
    created = ok(batchai("workspace", "create", "-g", "rg", "-n", "ws1", "-l", "westeurope"))
    assert "ws1" in created and "westeurope" in created and "succeeded" in created
    shown = as_json(batchai("workspace", "show", "-g", "rg", "-n", "ws1", "-o", "json"))
    assert shown["name"] == "ws1" and shown["location"] == "westeurope"
    assert shown["id"].endswith("/resourceGroups/rg/providers/Microsoft.BatchAI/workspaces/ws1")
    assert "ws1\trg\twesteurope\tsucceeded" in ok(batchai("workspace", "list", "-g", "rg", "-o", "tsv")).splitlines()
    assert "ws1" in [w["name"] for w in as_json(batchai("workspace", "list", "-o", "json"))]  # the subscription's
    assert "Deleted the workspace ws1" in ok(batchai("workspace", "delete", "-g", "rg", "-n", "ws1", "--yes"))
    error = one_line_error(batchai("workspace", "show", "-g", "rg", "-n", "ws1"))
    assert "ResourceNotFound" in error and "ws1" in error


def test_experiment_commands(batchai: Batchai) -> None:
    ok(batchai("workspace", "create", "-g", "rg", "-n", "exps"))
    ok(batchai("experiment", "create", "-g", "rg", "-w", "exps", "-n", "first"))
    ok(batchai("experiment", "create", "-g", "rg", "-w", "exps", "-n", "second"))
    where = ("-g", "rg", "-w", "exps")
    assert as_json(batchai("experiment", "show", *where, "-n", "first", "-o", "json"))["name"] == "first"
    listed = as_json(batchai("experiment", "list", *where, "-o", "json"))
    assert sorted(e["name"] for e in listed) == ["first", "second"]
    ok(batchai("experiment", "delete", *where, "-n", "second", "-y"))
    assert [e["name"] for e in as_json(batchai("experiment", "list", *where, "-o", "json"))] == ["first"]


def test_configure_saves_defaults_that_flags_and_environment_override(batchai: Batchai, folder: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    shown = ok(batchai("configure", "-g", "rg", "-w", "conf"))
    assert "local host" in shown  # the endpoint, found in this folder
    assert "rg" in shown and str(folder / "cli-config") in shown
    ok(batchai("workspace", "create", "-n", "conf"))  # the configured group
    ok(batchai("experiment", "create", "-n", "e"))  # the configured group and workspace
    assert as_json(batchai("experiment", "list", "-o", "json"))[0]["name"] == "e"
    one_line_error(batchai("experiment", "list", "-w", "missing"))  # a flag wins over the file
    monkeypatch.setenv("BATCHAI_WORKSPACE", "missing")
    one_line_error(batchai("experiment", "list"))  # so does the environment
    ok(batchai("configure", "--workspace", ""))  # an empty value removes a default
    monkeypatch.delenv("BATCHAI_WORKSPACE")
    assert "No workspace" in one_line_error(batchai("experiment", "list"))


# -- clusters ---------------------------------------------------------------------------------------
def test_cluster_from_flags_resize_auto_scale_nodes_and_delete(batchai: Batchai, folder: Path) -> None:
    ok(batchai("workspace", "create", "-g", "rg", "-n", "clusters"))
    where = ("-g", "rg", "-w", "clusters")
    created = as_json(batchai("cluster", "create", *where, "-n", "cpu", "-s", "STANDARD_D2_V2", "-t", "1",
                              "-u", "alice", "-p", "a password never shown", "--afs-name", "share",
                              "--setup-task", "echo ready", "--setup-task-output", "$AZ_BATCHAI_MOUNT_ROOT/afs",
                              "-o", "json"))
    props = created["properties"]
    assert props["vmSize"] == "STANDARD_D2_V2" and props["scaleSettings"] == {"manual": {
        "targetNodeCount": 1, "nodeDeallocationOption": "requeue"}}
    assert props["userAccountSettings"] == {"adminUserName": "alice"}  # no password in the answer
    share = props["nodeSetup"]["mountVolumes"]["azureFileShares"][0]
    assert share["accountName"] == ACCOUNT and share["relativeMountPath"] == "afs"
    assert share["azureFileUrl"] == f"https://{ACCOUNT}.file.core.windows.net/share"
    wait_idle(folder, "rg", "clusters", "cpu", 1)
    table = ok(batchai("cluster", "show", *where, "-n", "cpu"))
    assert "cpu" in table and "steady" in table
    nodes = as_json(batchai("cluster", "list-nodes", *where, "-n", "cpu", "-o", "json"))
    assert [n["ipAddress"].startswith("127.0.0.") for n in nodes] == [True]
    resized = as_json(batchai("cluster", "resize", *where, "-n", "cpu", "-t", "2", "-o", "json"))
    assert resized["properties"]["scaleSettings"]["manual"]["targetNodeCount"] == 2
    wait_idle(folder, "rg", "clusters", "cpu", 2)
    auto = as_json(batchai("cluster", "auto-scale", *where, "-n", "cpu", "--min", "0", "--max", "3", "-o", "json"))
    assert auto["properties"]["scaleSettings"]["autoScale"]["maximumNodeCount"] == 3
    assert "cpu" in [c["name"] for c in as_json(batchai("cluster", "list", *where, "-o", "json"))]
    ok(batchai("cluster", "delete", *where, "-n", "cpu", "-y"))
    assert as_json(batchai("cluster", "list", *where, "-o", "json")) == []


def test_cluster_from_a_batch_ai_config_file_with_storage_placeholders(batchai: Batchai, folder: Path) -> None:
    ok(batchai("workspace", "create", "-g", "rg", "-n", "fromfile"))
    config = {"properties": {
        "vmSize": "STANDARD_NC6", "vmPriority": "lowpriority",
        "scaleSettings": {"manual": {"targetNodeCount": 0}},
        "userAccountSettings": {"adminUserName": "bob", "adminUserPassword": "never shown either"},
        "nodeSetup": {"mountVolumes": {"azureFileShares": [{
            "accountName": "<AZURE_BATCHAI_STORAGE_ACCOUNT>",
            "azureFileUrl": "https://<AZURE_BATCHAI_STORAGE_ACCOUNT>.file.core.windows.net/data",
            "credentials": {"accountKey": "<AZURE_BATCHAI_STORAGE_KEY>"}, "relativeMountPath": "data"}]}}}}
    (folder / "cluster.json").write_text(json.dumps(config))
    created = as_json(batchai("cluster", "create", "-g", "rg", "-w", "fromfile", "-n", "gpu", "-f", "cluster.json",
                              "-t", "1", "-o", "json"))
    props = created["properties"]
    assert props["vmPriority"] == "lowpriority" and props["scaleSettings"]["manual"]["targetNodeCount"] == 1
    share = props["nodeSetup"]["mountVolumes"]["azureFileShares"][0]
    assert share["accountName"] == ACCOUNT and share["azureFileUrl"] == f"https://{ACCOUNT}.file.core.windows.net/data"
    assert KEY not in json.dumps(created) and "never shown" not in json.dumps(created)
    ok(batchai("cluster", "delete", "-g", "rg", "-w", "fromfile", "-n", "gpu", "-y"))


def test_file_server_commands(batchai: Batchai) -> None:
    ok(batchai("workspace", "create", "-g", "rg", "-n", "files"))
    where = ("-g", "rg", "-w", "files")
    created = as_json(batchai("file-server", "create", *where, "-n", "nfs", "-s", "STANDARD_D2_V2",
                              "--disk-count", "2", "--disk-size", "10", "-u", "carol", "-p", "hidden", "-o", "json"))
    assert created["properties"]["dataDisks"]["diskCount"] == 2 and "hidden" not in json.dumps(created)
    assert "nfs" in ok(batchai("file-server", "show", *where, "-n", "nfs"))
    assert [f["name"] for f in as_json(batchai("file-server", "list", *where, "-o", "json"))] == ["nfs"]
    ok(batchai("file-server", "delete", *where, "-n", "nfs", "-y"))
    assert "(no file servers)" in ok(batchai("file-server", "list", *where))


def test_a_cluster_made_with_auto_scale_bounds_is_shown_and_listed(batchai: Batchai, folder: Path) -> None:
    """The service fills in initialNodeCount 0 for {min 1, max 1}; the CLI reads its own service's answers."""
    ok(batchai("workspace", "create", "-g", "rg", "-n", "bounds"))
    where = ("-g", "rg", "-w", "bounds")
    with client(folder) as c:  # as the SDK or a config file sends it
        made = c.clusters.create("rg", "bounds", "auto", {"properties": {
            "vmSize": "Standard_NC6", "userAccountSettings": {"adminUserName": "me"},
            "scaleSettings": {"autoScale": {"minimumNodeCount": 1, "maximumNodeCount": 1}}}})
        assert made.properties and made.properties.scale_settings and made.properties.scale_settings.auto_scale
    created = batchai("cluster", "create", *where, "-n", "c", "-s", "Standard_NC6", "--min", "1", "--max", "1")
    assert created.code == 0 and "Traceback" not in created.err, created.err
    shown = as_json(batchai("cluster", "show", *where, "-n", "auto", "-o", "json"))
    assert shown["properties"]["scaleSettings"]["autoScale"]["minimumNodeCount"] == 1
    assert "auto 1-1" in ok(batchai("cluster", "show", *where, "-n", "auto"))
    assert sorted(c["name"] for c in as_json(batchai("cluster", "list", *where, "-o", "json"))) == ["auto", "c"]
    assert "auto 1-1" in ok(batchai("cluster", "list", *where))
    for name in ("auto", "c"):
        ok(batchai("cluster", "delete", *where, "-n", name, "-y"))


def test_query_picks_from_the_answer_as_az_did(batchai: Batchai) -> None:
    ok(batchai("workspace", "create", "-g", "rg", "-n", "query", "-l", "westeurope"))
    assert json.loads(ok(batchai("workspace", "show", "-g", "rg", "-n", "query", "--query", "location"))) == (
        "westeurope")
    assert ok(batchai("workspace", "show", "-g", "rg", "-n", "query", "--query", "[name, resourceGroup]",
                      "-o", "tsv")) == "query\nrg\n"  # as az: each item of a list a row
    assert ok(batchai("workspace", "show", "-g", "rg", "-n", "query", "--query", "{n: name, g: resourceGroup}",
                      "-o", "tsv")) == "query\trg\n"
    listed = json.loads(ok(batchai("--query", "[?name=='query'].provisioningState", "workspace", "list", "-g", "rg")))
    assert listed == ["succeeded"]
    assert "--query" in one_line_error(batchai("workspace", "list", "--query", "[?"))
    ok(batchai("workspace", "delete", "-g", "rg", "-n", "query", "-y"))


# -- jobs -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def job_cluster(folder: Path) -> tuple[str, ...]:
    """A 1-node cluster mounting a share, made through the CLI's own client."""
    with client(folder) as c:
        c.workspaces.create("rg", "jobs")
        c.clusters.create("rg", "jobs", "cpu", {"properties": {
            "vmSize": "STANDARD_D2_V2", "scaleSettings": {"manual": {"targetNodeCount": 1}},
            "userAccountSettings": {"adminUserName": "me"},
            "nodeSetup": {"mountVolumes": {"azureFileShares": [{
                "accountName": ACCOUNT, "azureFileUrl": f"https://{ACCOUNT}.file.core.windows.net/jobs",
                "credentials": {"accountKey": KEY}, "relativeMountPath": "afs"}]}}}})
        c.experiments.create("rg", "jobs", "exp")
    wait_idle(folder, "rg", "jobs", "cpu", 1)
    return ("-g", "rg", "-w", "jobs")


def test_a_job_from_a_config_file_streams_its_stdout_while_it_runs_then_downloads(
        batchai, folder: Path, job_cluster: tuple[str, ...], tmp_path: Path) -> None:
    where = job_cluster
    (folder / "job.json").write_text(json.dumps(JOB_FILE))
    created = as_json(batchai("job", "create", *where, "-e", "exp", "-n", "lines", "-c", "cpu", "-f", "job.json",
                              "--priority", "high", "-o", "json"))
    assert created["properties"]["cluster"]["id"].endswith("/workspaces/jobs/clusters/cpu")
    assert created["properties"]["schedulingPriority"] == "high"
    assert created["properties"]["customToolkitSettings"]["commandLine"] == JOB_FILE["properties"][
        "customToolkitSettings"]["commandLine"]  # the variables are the node's to expand

    # `file stream` as a real process with no configuration, in the host's folder
    stream = subprocess.Popen([sys.executable, "-m", "shared.cli", "job", "file", "stream", *where, "-j", "lines",
                               "-e", "exp", "--interval", "0.2"], cwd=folder, env=clean_env(folder),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert stream.stdout is not None
        first = stream.stdout.readline()
        with client(folder) as c:
            state_at_first_line = c.jobs.get("rg", "jobs", "exp", "lines").properties.execution_state
        (folder / ".batchai" / "storage" / "fileshares" / ACCOUNT / "jobs" / "go").touch()  # the job may go on
        rest = stream.stdout.read()  # from the same buffer as readline (communicate() would skip what it holds)
        stream.wait(60)
        err = stream.stderr.read() if stream.stderr else ""
    finally:
        stream.kill()
    assert first == "line 1\n" and state_at_first_line == "running"  # shown while the job still ran
    mount_root = rest.splitlines()[-1].removeprefix("hello from ")
    assert rest.splitlines()[:5] == [f"line {i}" for i in range(2, 7)] and mount_root.startswith("/")
    assert stream.returncode == 0, err

    waited = batchai("job", "wait", *where, "-e", "exp", "-n", "lines")
    assert waited.code == 0 and "Job lines succeeded (exit code 0)" in waited.out
    shown = ok(batchai("job", "show", *where, "-e", "exp", "-n", "lines"))
    assert "succeeded" in shown and "pytorch" not in shown
    assert [j["name"] for j in as_json(batchai("job", "list", *where, "-e", "exp", "-o", "json"))].count("lines") == 1
    files = as_json(batchai("job", "file", "list", *where, "-e", "exp", "-j", "lines", "-o", "json"))
    assert {"stdout.txt", "stderr.txt"} <= {f["name"] for f in files}
    assert all(f["downloadUrl"].startswith("http://127.0.0.1") for f in files if f["fileType"] == "file")
    table = ok(batchai("job", "file", "list", *where, "-e", "exp", "-j", "lines", "-d", "MODEL"))
    assert "weights" in table and "directory" in table
    ok(batchai("job", "file", "download", *where, "-e", "exp", "-j", "lines", "-d", "MODEL", "--path", "weights",
               "--dest", str(tmp_path / "got")))
    assert (tmp_path / "got" / "weights" / "model.txt").read_text() == "trained\n"
    ok(batchai("job", "file", "download", *where, "-e", "exp", "-j", "lines", "-f", "stdout.txt",
               "--dest", str(tmp_path / "log")))
    assert (tmp_path / "log" / "stdout.txt").read_text().startswith("line 1\n")
    missing = one_line_error(batchai("job", "file", "download", *where, "-e", "exp", "-j", "lines", "-f", "nope.txt"))
    assert "nope.txt" in missing
    # A file the ended job never made (a custom job has no per-task files): "not found", exit code 1.
    never = one_line_error(batchai("job", "file", "stream", *where, "-e", "exp", "-j", "lines", "-f",
                                   "stdout-wk-0.txt", "--interval", "0.2"))
    assert "'stdout-wk-0.txt' not found" in never and "stdout.txt" in never, never
    ok(batchai("job", "delete", *where, "-e", "exp", "-n", "lines", "-y"))
    assert "ResourceNotFound" in one_line_error(batchai("job", "show", *where, "-e", "exp", "-n", "lines"))


def test_a_running_job_lists_its_nodes_and_terminates(batchai: Batchai, folder: Path,
                                                      job_cluster: tuple[str, ...]) -> None:
    where = job_cluster
    (folder / "sleep.json").write_text(json.dumps({"properties": {
        "cluster": {"id": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/"
                          "Microsoft.BatchAI/workspaces/jobs/clusters/cpu"},
        "nodeCount": 1, "stdOutErrPathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/afs",
        "customToolkitSettings": {"commandLine": "echo started; sleep 60"}}}))
    ok(batchai("job", "create", *where, "-e", "exp", "-n", "sleeper", "-f", "sleep.json"))
    with client(folder) as c:
        wait_until("the job running",
                   lambda: c.jobs.get("rg", "jobs", "exp", "sleeper").properties.execution_state == "running")
    nodes = as_json(batchai("job", "node", "list", *where, "-e", "exp", "-j", "sleeper", "-o", "json"))
    assert len(nodes) == 1 and nodes[0]["ipAddress"].startswith("127.0.0.") and nodes[0]["port"] == 22
    assert "Terminating the job sleeper" in ok(batchai("job", "terminate", *where, "-e", "exp", "-n", "sleeper", "-y"))
    waited = batchai("job", "wait", *where, "-e", "exp", "-n", "sleeper", "--interval", "0.2", "--timeout", "30")
    assert waited.code == 1 and "Job sleeper failed" in waited.out and "JobTerminated" in waited.err


def test_wait_gives_up_after_its_timeout(batchai: Batchai, folder: Path, job_cluster: tuple[str, ...]) -> None:
    where = job_cluster
    (folder / "long.json").write_text(json.dumps({"properties": {
        "nodeCount": 1, "stdOutErrPathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/afs",
        "customToolkitSettings": {"commandLine": "sleep 60"}}}))
    ok(batchai("job", "create", *where, "-e", "exp", "-n", "long", "-c", "cpu", "-f", "long.json"))
    try:
        error = one_line_error(batchai("job", "wait", *where, "-e", "exp", "-n", "long", "--timeout", "1",
                                       "--interval", "0.2"))
        assert "did not end within 1 s" in error
    finally:
        ok(batchai("job", "delete", *where, "-e", "exp", "-n", "long", "-y"))


# -- event subscriptions ----------------------------------------------------------------------------
def test_event_subscription_commands(batchai: Batchai) -> None:
    ok(batchai("workspace", "create", "-g", "rg", "-n", "events"))
    where = ("-g", "rg", "-w", "events")
    receiver = Receiver()
    try:
        created = as_json(batchai("event-subscription", "create", *where, "-n", "hook", "--url", receiver.url,
                                  "-e", "exp", "--event-type", "JobSucceeded", "--event-type", "JobFailed",
                                  "--secret", "signing secret", "-o", "json"))
    finally:
        receiver.stop()
    props = created["properties"]
    assert props["filter"] == {"experiments": ["exp"], "eventTypes": ["Microsoft.BatchAI.JobSucceeded",
                                                                        "Microsoft.BatchAI.JobFailed"]}
    assert props["hasSecret"] is True and "signing secret" not in json.dumps(created)
    table = ok(batchai("event-subscription", "show", *where, "-n", "hook"))
    assert "JobSucceeded, JobFailed" in table and receiver.url in table
    assert [s["name"] for s in as_json(batchai("event-subscription", "list", *where, "-o", "json"))] == ["hook"]
    assert as_json(batchai("event-subscription", "dead-letters", *where, "-n", "hook", "-o", "json")) == []
    ok(batchai("event-subscription", "delete", *where, "-n", "hook", "-y"))
    assert "(no event subscriptions)" in ok(batchai("event-subscription", "list", *where))


# -- mistakes -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("args", "code", "says"), [
    (("cluster", "showw"), 2, "No such command 'showw'"),
    (("cluster", "show", "-g", "rg", "-w", "jobs"), 2, "Missing option '--name'"),
    (("cluster", "create", "-g", "rg", "-w", "jobs", "-n", "x", "-t", "many"), 2, "'--target'"),
    (("cluster", "create", "-g", "rg", "-w", "jobs", "-n", "x", "--min", "1"), 1, "needs both --min and --max"),
    (("cluster", "create", "-g", "rg", "-w", "jobs", "-n", "x", "--image", "windows"), 1, "Unknown image 'windows'"),
    (("cluster", "show", "-n", "cpu"), 1, "No resource group"),
    (("job", "create", "-g", "rg", "-w", "jobs", "-e", "exp", "-n", "j", "-f", "absent.json"), 1,
     "'absent.json' does not exist"),
    (("job", "create", "-g", "rg", "-w", "jobs", "-e", "exp", "-n", "j", "-f", "broken.json"), 1, "not valid JSON"),
    (("job", "create", "-g", "rg", "-w", "jobs", "-e", "exp", "-n", "j", "-f", "nocluster.json"), 1,
     "needs a cluster"),
    (("job", "create", "-g", "rg", "-w", "jobs", "-e", "exp", "-n", "j", "-c", "cpu", "-f", "nocluster.json",
      "--priority", "urgent"), 1, "schedulingPriority"),
    (("experiment", "delete", "-g", "rg", "-w", "jobs", "-n", "exp"), 1, "--yes"),
])
def test_a_mistake_is_one_line_and_an_exit_code(batchai: Batchai, folder: Path, job_cluster: tuple[str, ...],
                                                args: tuple[str, ...], code: int, says: str) -> None:
    (folder / "broken.json").write_text('{"properties": {"nodeCount": 1,,}}')
    (folder / "nocluster.json").write_text(json.dumps({"properties": {
        "nodeCount": 1, "stdOutErrPathPrefix": "/tmp", "customToolkitSettings": {"commandLine": "true"}}}))
    assert says in one_line_error(batchai(*args), code)


def test_a_mistake_in_a_real_process_shows_no_traceback(folder: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "shared.cli", "job", "show", "-g", "rg", "-w", "jobs", "-e", "exp",
                           "-n", "never-made"], cwd=folder, env=clean_env(folder), capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("batchai: error: ResourceNotFound:") and done.stderr.count("\n") == 1
    unreachable = subprocess.run([sys.executable, "-m", "shared.cli", "--endpoint", "http://127.0.0.1:9",
                                  "workspace", "list"], env=clean_env(folder), capture_output=True, text=True,
                                 timeout=30)
    assert unreachable.returncode == 1 and "Cannot reach the service at http://127.0.0.1:9" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr


def test_an_answer_no_one_foresaw_is_one_line_not_a_traceback(folder: Path) -> None:
    """The top-level guard: a service answering 200 with something that is not JSON."""
    import http.server
    import threading

    class NotJson(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html>a proxy's page</html>")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotJson)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        done = subprocess.run([sys.executable, "-m", "shared.cli", "--endpoint",
                               f"http://127.0.0.1:{server.server_address[1]}", "workspace", "list"],
                              env=clean_env(folder), capture_output=True, text=True, timeout=30)
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("batchai: error: unexpected JSONDecodeError") and done.stderr.count("\n") == 1


# -- the Python client --------------------------------------------------------------------------------
def test_the_python_client_answers_with_the_models_and_raises_cloud_errors(folder: Path,
                                                                          job_cluster: tuple[str, ...]) -> None:
    from shared.models import Cluster, Job

    with client(folder) as c:
        cluster = c.clusters.get("rg", "jobs", "cpu")
        assert isinstance(cluster, Cluster) and cluster.properties and cluster.properties.vm_size == "STANDARD_D2_V2"
        share = cluster.properties.node_setup.mount_volumes.azure_file_shares[0]  # type: ignore[union-attr]
        assert share.credentials.account_key is None  # never returned
        job = c.jobs.create("rg", "jobs", "exp", "typed", {"properties": {
            "cluster": {"id": cluster.id}, "nodeCount": 1, "stdOutErrPathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/afs",
            "customToolkitSettings": {"commandLine": "echo typed"}}})
        assert isinstance(job, Job)
        done = c.jobs.wait("rg", "jobs", "exp", "typed", timeout=60, interval=0.2)
        assert done.properties and done.properties.execution_state == "succeeded"
        assert "typed" in [j.name for j in c.jobs.list("rg", "jobs", "exp")]
        stdout = next(f for f in c.jobs.list_output_files("rg", "jobs", "exp", "typed") if f.name == "stdout.txt")
        assert c.download(stdout.download_url or "") == b"typed\n"
        with pytest.raises(ApiError) as refused:
            c.jobs.create("rg", "jobs", "exp", "bad", {"properties": {"nodeCount": 0}})
        assert refused.value.status == 400 and refused.value.target
        c.jobs.delete("rg", "jobs", "exp", "typed")
