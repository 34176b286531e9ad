"""Parameter sweeps on local nodes: the real local host, real agents, the demo's spirals training
as the trials. A Bayesian sweep over the learning rate (LOG) and the hidden size (discrete) with
median stopping survives a SIGKILL of the host mid-way; grid sweeps run exactly the utilities'
documented values; a file parameter makes a trial per matching file; bad sweeps are 400s."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.localhost.process import LocalHostProcess, start_local_host
from tests.e2e.hosts import kill_agents
from tests.e2e.polling import wait_until
from tests.integration.test_event_delivery import Receiver

WS = "/subscriptions/e2e/resourceGroups/rg/providers/Microsoft.BatchAI/workspaces/sw"
EXP = f"{WS}/experiments/e"
CLUSTER = f"{WS}/clusters/four"
Q = {"api-version": "2018-05-01"}
TRAIN_SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "pytorch" / "train.py"
ACCOUNT, SHARE = "sweepstorage", "jobs"
AFS = "$AZ_BATCHAI_MOUNT_ROOT/afs"
HOST_ENV = {"BATCHAI_AUTOSCALE_IDLE_SECONDS": "1", "BATCHAI_HEARTBEAT_SECONDS": "0.5"}
SECRET = "sw33p-" + "secret-never-shown"
ACCURACY = r"epoch\s+(?P<step>\d+)\s+loss \S+\s+test accuracy (?P<value>[0-9.]+)"

CLUSTER_BODY = {"properties": {
    "vmSize": "STANDARD_D1_V2", "scaleSettings": {"manual": {"targetNodeCount": 4}},
    "userAccountSettings": {"adminUserName": "u", "adminUserPassword": "p"},
    "nodeSetup": {"mountVolumes": {"azureFileShares": [{
        "accountName": ACCOUNT, "azureFileUrl": f"https://{ACCOUNT}.file.core.windows.net/{SHARE}",
        "credentials": {"accountKey": "key"}, "relativeMountPath": "afs"}]}},
}}


def spirals_template(epochs: int = 8) -> dict[str, Any]:
    """One PyTorch process on one node; lr and hidden size come from the sweep's placeholders."""
    return {"cluster": {"id": CLUSTER}, "nodeCount": 1, "stdOutErrPathPrefix": AFS,
            "outputDirectories": [{"id": "MODEL", "pathPrefix": AFS}],
            "pyTorchSettings": {"pythonScriptFilePath": f"{AFS}/scripts/train.py", "processCount": 1,
                                "commandLineArgs": f"--world-size 1 --epochs {epochs} --samples 800 --pause 0.7 "
                                                   "--lr {{LR}} --hidden {{HIDDEN}}"}}


def spirals_sweep(**changes: Any) -> dict[str, Any]:
    props = {
        "jobTemplate": spirals_template(),
        "parameters": [
            {"paramType": "NumParam", "parameterName": "LR", "dataType": "REAL", "start": 1e-4, "end": 1e-1,
             "scale": "LOG", "numValues": 4},
            {"paramType": "DiscreteParam", "parameterName": "HIDDEN", "values": [8, 32, 64]}],
        "sampling": {"algorithm": "bayesian", "seed": 7},
        "objective": {"metricName": "accuracy", "goal": "maximize", "source": "log", "logFile": "stdout-0.txt",
                      "regex": ACCURACY},
        "budget": {"maxTrials": 16, "maxConcurrentTrials": 4},
        "earlyTermination": {"policy": "median", "minCompletedTrials": 3, "delayEvaluation": 2},
    }
    return {"properties": props | changes}


class Api:
    def __init__(self, host: LocalHostProcess) -> None:
        self.host = host
        self.http = httpx.Client(base_url=host.endpoint, params=Q, timeout=30, headers=host.headers)

    def sweep(self, name: str) -> dict[str, Any]:
        return self.http.get(f"{EXP}/sweeps/{name}").raise_for_status().json()

    def trials(self, name: str) -> list[dict[str, Any]]:
        return self.http.get(f"{EXP}/sweeps/{name}/trials").raise_for_status().json()["value"]

    def ended(self, name: str) -> dict[str, Any] | None:
        sweep = self.sweep(name)
        return sweep if sweep["properties"]["executionState"] != "running" else None

    def final_jobs(self) -> dict[str, dict[str, Any]] | None:
        """The experiment's jobs by name, once none of them is still queued, running or terminating."""
        jobs = {j["name"]: j for j in self.http.get(f"{EXP}/jobs").raise_for_status().json()["value"]}
        ended = all(j["properties"]["executionState"] in ("succeeded", "failed") for j in jobs.values())
        return jobs if ended else None

    def job(self, name: str) -> dict[str, Any]:
        return self.http.get(f"{EXP}/jobs/{name}").raise_for_status().json()

    def files(self, job: str, output: str = "stdouterr") -> dict[str, dict[str, Any]]:
        answer = self.http.post(f"{EXP}/jobs/{job}/listOutputFiles", params={"outputdirectoryid": output})
        return {f["name"]: f for f in answer.raise_for_status().json()["value"]}

    def text(self, job: str, file: str = "stdout-0.txt") -> str:
        entry = self.files(job).get(file)
        return httpx.get(entry["downloadUrl"]).text if entry else ""


def prepare(host: LocalHostProcess) -> Api:
    share = host.data_dir / "storage" / "fileshares" / ACCOUNT / SHARE
    (share / "scripts").mkdir(parents=True, exist_ok=True)
    shutil.copy(TRAIN_SCRIPT, share / "scripts" / "train.py")
    api = Api(host)
    api.http.put(WS, json={"location": "local"}).raise_for_status()
    api.http.put(EXP, json={}).raise_for_status()
    api.http.put(CLUSTER, json=CLUSTER_BODY).raise_for_status()
    wait_until("4 idle nodes", lambda: api.http.get(CLUSTER).json()["properties"]["nodeStateCounts"]
               ["idleNodeCount"] == 4, 60)
    return api


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    data_dir = tmp_path_factory.mktemp("sweeps") / "state"
    host = start_local_host(data_dir, env=HOST_ENV)
    try:
        yield prepare(host)
        assert host.stop() == 0, "\n".join(host.output[-40:])
    finally:
        host.kill()
        kill_agents(data_dir)


def test_a_bayesian_sweep_of_the_spirals_survives_a_host_sigkill(tmp_path: Path) -> None:
    data_dir = tmp_path / "state"
    host = start_local_host(data_dir, env=HOST_ENV)
    try:
        api = prepare(host)
        api.http.put(f"{EXP}/sweeps/spirals", json=spirals_sweep()).raise_for_status()
        wait_until("5 trials to end", lambda: sum(t["state"] not in ("queued", "running")
                                                  for t in api.trials("spirals")) >= 5, 240, 0.5)
        before = {t["number"]: t for t in api.trials("spirals")}
        host.kill()  # SIGKILL, mid-way: trials run, others are to be asked for
        host = start_local_host(data_dir, env=HOST_ENV)
        api = Api(host)
        sweep = wait_until("the sweep to end", lambda: api.ended("spirals"), 600, 1)
        trials = api.trials("spirals")
        props = sweep["properties"]
        assert props["executionState"] == "succeeded", props
        assert [t["number"] for t in trials] == list(range(16))  # no trial lost, none asked twice
        for number, old in before.items():  # what was recorded before the kill is kept
            assert trials[number]["parameters"] == old["parameters"]
        # The sweep ends with its last round; a trial that round stopped has its job still terminating.
        jobs = wait_until("every trial's job to end", lambda: api.final_jobs(), 120, 0.5)
        assert sorted(jobs) == [f"spirals-{n:04d}" for n in range(16)]  # one job per trial
        for trial in trials:
            params = trial["parameters"]
            assert 1e-4 <= params["LR"] <= 1e-1 and params["HIDDEN"] in (8, 32, 64)
            job = jobs[trial["jobName"]]["properties"]
            assert f"--lr {params['LR']:.10g} --hidden {params['HIDDEN']}" in job["pyTorchSettings"]["commandLineArgs"]
            variables = {v["name"]: v["value"] for v in job["environmentVariables"]}
            assert variables["PARAM_HIDDEN"] == str(params["HIDDEN"])
            stdout = api.text(trial["jobName"])
            assert f"PARAM_HIDDEN={params['HIDDEN']}" in stdout and f"PARAM_LR={params['LR']:.10g}" in stdout
            if trial["state"] == "succeeded":
                assert trial["finalMetric"] == float(re.findall(r"test accuracy ([0-9.]+)", stdout)[-1])
                assert [p["step"] for p in trial["intermediate"]] == list(range(1, 9))
            else:
                assert trial["state"] == "stopped", trial  # nothing fails here but by the policy
                assert trial["reason"].startswith("Stopped by the median early-termination policy at step")
                assert job["executionState"] == "failed"
                assert job["executionInfo"]["errors"][0]["code"] == "JobTerminated"
        assert any(t["state"] == "stopped" for t in trials), "median stopping stopped some trial"
        best = props["bestTrial"]
        assert best["finalMetric"] == max(t["finalMetric"] for t in trials if t["state"] == "succeeded")
        assert props["trialCounts"]["succeeded"] + props["trialCounts"]["stopped"] == 16
        model = api.files(best["jobName"], "MODEL")["model.pt"]
        assert len(httpx.get(model["downloadUrl"]).content) > 1000  # the best trial's model downloads
        assert host.stop() == 0, "\n".join(host.output[-40:])
    finally:
        host.kill()
        kill_agents(data_dir)


def shell_sweep(parameters: list[dict[str, Any]], command: str, **changes: Any) -> dict[str, Any]:
    """A quick custom-toolkit sweep whose trials print their parameters and a metric."""
    props = {
        "jobTemplate": {"cluster": {"id": CLUSTER}, "nodeCount": 1, "stdOutErrPathPrefix": AFS,
                        "customToolkitSettings": {"commandLine": command}},
        "parameters": parameters,
        "sampling": {"algorithm": "grid"},
        "objective": {"metricName": "score", "goal": "minimize", "source": "metricsFile"},
        "budget": {"maxTrials": 20, "maxConcurrentTrials": 4},
    }
    return {"properties": props | changes}


SCORE = 'echo "{\\"name\\": \\"score\\", \\"value\\": $PARAM_N, \\"step\\": 1}" >> $AZ_BATCHAI_STDOUTERR_DIR/metrics.jsonl'


def test_a_grid_sweep_runs_exactly_the_utilities_values(api: Api) -> None:
    receiver = Receiver()
    subscription = {"properties": {"destination": {"endpointUrl": receiver.url},
                                   "filter": {"eventTypes": ["Microsoft.BatchAI.SweepCompleted"]}}}
    api.http.put(f"{WS}/eventSubscriptions/sweeps", json=subscription).raise_for_status()
    parameters = [
        {"paramType": "NumParam", "parameterName": "N", "dataType": "INTEGER", "start": 10, "end": 50,
         "scale": "LINEAR", "step": 10},
        {"paramType": "NumParam", "parameterName": "LR", "dataType": "REAL", "start": 1e-4, "end": 1e-1,
         "scale": "LOG", "numValues": 4}]
    body = shell_sweep(parameters, f"echo n={{{{N}}}} lr={{{{LR}}}}; {SCORE}")
    body["properties"]["jobTemplate"]["secrets"] = [{"name": "TOKEN", "value": SECRET}]
    body["properties"]["jobTemplate"]["mountVolumes"] = {"azureFileShares": [{
        "accountName": ACCOUNT, "azureFileUrl": f"https://{ACCOUNT}.file.core.windows.net/{SHARE}",
        "credentials": {"accountKey": SECRET}, "relativeMountPath": "jobafs"}]}
    created = api.http.put(f"{EXP}/sweeps/grid", json=body).raise_for_status()
    assert SECRET not in created.text and created.json()["properties"]["jobTemplate"]["secrets"] == [{"name": "TOKEN"}]
    sweep = wait_until("the grid sweep to end", lambda: api.ended("grid"), 240, 0.5)
    trials = api.trials("grid")
    for answer in (api.http.get(f"{EXP}/sweeps/grid"), api.http.get(f"{EXP}/sweeps"),
                   api.http.get(f"{EXP}/sweeps/grid/trials"), api.http.get(f"{EXP}/jobs/grid-0000")):
        assert SECRET not in answer.text  # never returned by a read (invariant 7)
    assert [(t["parameters"]["N"], t["parameters"]["LR"]) for t in trials] == [
        (n, lr) for n in (10, 20, 30, 40, 50) for lr in (1e-4, 1e-3, 1e-2, 1e-1)]
    assert all(t["state"] == "succeeded" for t in trials)
    assert api.text(trials[5]["jobName"], "stdout.txt").strip() == "n=20 lr=0.001"
    assert [t["finalMetric"] for t in trials] == [float(t["parameters"]["N"]) for t in trials]
    assert sweep["properties"]["bestTrial"]["parameters"]["N"] == 10  # goal: minimize
    assert sweep["properties"]["executionState"] == "succeeded"
    try:  # subscribers hear of it once: SweepCompleted, with the best trial
        events = wait_until("the SweepCompleted event", lambda: [e for e in receiver.events()
                                                                 if e["source"].endswith("/sweeps/grid")], 30, 0.2)
    finally:
        api.http.delete(f"{WS}/eventSubscriptions/sweeps")
        receiver.stop()
    assert [e["type"] for e in events] == ["Microsoft.BatchAI.SweepCompleted"]
    assert events[0]["subject"] == "experiments/e/sweeps/grid"
    assert events[0]["data"]["state"] == "succeeded" and events[0]["data"]["bestTrial"]["parameters"]["N"] == 10
    assert events[0]["data"]["trialCounts"]["succeeded"] == 20


def test_a_file_parameter_makes_a_trial_per_matching_file(api: Api) -> None:
    data = api.host.data_dir / "storage" / "fileshares" / ACCOUNT / SHARE / "data"
    data.mkdir(parents=True, exist_ok=True)
    for name in ("a.csv", "b.csv", "c.csv", "notes.txt"):
        (data / name).write_text(name)
    parameters = [{"paramType": "FileParam", "parameterName": "DATA", "storageAccountName": ACCOUNT,
                   "storageType": "FILE", "fileshare": SHARE, "mountMethod": "CLUSTER", "mountPath": "afs",
                   "directory": "data", "filterStr": r".*\.csv$"},
                  {"paramType": "DiscreteParam", "parameterName": "N", "values": [1]}]
    body = shell_sweep(parameters, f"cat {{{{DATA}}}}; {SCORE}")
    api.http.put(f"{EXP}/sweeps/files", json=body).raise_for_status()
    wait_until("the file sweep to end", lambda: api.ended("files"), 120, 0.5)
    trials = api.trials("files")
    assert [t["parameters"]["DATA"] for t in trials] == [f"$AZ_BATCHAI_MOUNT_ROOT/afs/data/{n}.csv"
                                                          for n in "abc"]
    assert [api.text(t["jobName"], "stdout.txt") for t in trials] == ["a.csv", "b.csv", "c.csv"]


BAD = [
    ("an empty space", {"parameters": []}, "properties.parameters"),
    ("an unknown placeholder", {"jobTemplate": spirals_template() | {"nodeCount": "{{NODES}}"}},
     "properties.jobTemplate.nodeCount"),
    ("a template that is not a job", {"jobTemplate": spirals_template() | {"nodeCount": "two"}},
     "properties.jobTemplate.nodeCount"),
    ("a grid larger than the budget", {"sampling": {"algorithm": "grid"}, "budget": {"maxTrials": 5}},
     "properties.budget.maxTrials"),
    ("a regex that does not compile", {"objective": {"metricName": "a", "goal": "maximize", "regex": "(["}},
     "properties.objective"),
    ("a template of a missing cluster", {"jobTemplate": spirals_template() | {"cluster": {"id": CLUSTER + "x"}}},
     "properties.jobTemplate.cluster.id"),
]


@pytest.mark.parametrize(("what", "change", "target"), BAD, ids=[b[0] for b in BAD])
def test_a_bad_sweep_is_a_400_naming_the_field_and_nothing_is_created(api: Api, what: str, change: dict[str, Any],
                                                                       target: str) -> None:
    answer = api.http.put(f"{EXP}/sweeps/bad", json={"properties": spirals_sweep()["properties"] | change})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["target"] == target, answer.json()
    assert api.http.get(f"{EXP}/sweeps/bad").status_code == 404
    assert not [j for j in api.http.get(f"{EXP}/jobs").json()["value"] if j["name"].startswith("bad-")]


def test_cancel_stops_the_trials_and_delete_removes_them(api: Api) -> None:
    body = shell_sweep([{"paramType": "DiscreteParam", "parameterName": "N", "values": [1, 2, 3]}],
                       "sleep 60 # {{N}}")
    api.http.put(f"{EXP}/sweeps/long", json=body).raise_for_status()
    wait_until("a trial to run", lambda: any(t["state"] == "running" for t in api.trials("long")), 60, 0.3)
    api.http.post(f"{EXP}/sweeps/long/cancel").raise_for_status()
    sweep = wait_until("the sweep to end", lambda: api.ended("long"), 30, 0.3)
    assert sweep["properties"]["executionState"] == "canceled"
    assert {t["state"] for t in api.trials("long")} == {"canceled"}
    assert all(t["reason"] == "The sweep was canceled." for t in api.trials("long"))
    wait_until("its jobs to be terminated", lambda: all(
        api.job(t["jobName"])["properties"]["executionState"] == "failed" for t in api.trials("long")), 30, 0.3)
    assert api.http.delete(f"{EXP}/sweeps/long").status_code == 200
    assert api.http.get(f"{EXP}/sweeps/long").status_code == 404
    assert not [j for j in api.http.get(f"{EXP}/jobs").json()["value"] if j["name"].startswith("long-")]
    listed = api.http.get(f"{EXP}/sweeps").json()["value"]
    assert "long" not in {s["name"] for s in listed}


def test_the_cli_creates_waits_for_and_shows_a_sweep(api: Api, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BATCHAI_", "AZURE_BATCHAI_"))}
    env |= {"BATCHAI_ENDPOINT": api.host.endpoint, "BATCHAI_TOKEN": (api.host.data_dir / "token").read_text().strip(),
            "BATCHAI_SUBSCRIPTION": "e2e", "BATCHAI_CONFIG_FILE": str(tmp_path / "cli-config")}
    where = ["-g", "rg", "-w", "sw", "-e", "e", "-n", "cli"]

    def batchai(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "shared.cli", *args], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)

    body = shell_sweep([{"paramType": "DiscreteParam", "parameterName": "N", "values": [3, 1, 2]}], SCORE)
    body["properties"]["jobTemplate"].pop("cluster")
    (tmp_path / "sweep.json").write_text(json.dumps(body))
    created = batchai("sweep", "create", *where, "-f", "sweep.json", "-c", "four")
    assert created.returncode == 0 and "cli" in created.stdout, created.stdout + created.stderr
    waited = batchai("sweep", "wait", *where, "--interval", "0.5")
    assert waited.returncode == 0, waited.stdout + waited.stderr
    assert "Best trial: cli-0001 (N=1) score 1" in waited.stdout
    trials = json.loads(batchai("sweep", "trials", *where, "-o", "json").stdout)
    assert [(t["parameters"]["N"], t["state"], t["finalMetric"]) for t in trials] == [
        (3, "succeeded", 3.0), (1, "succeeded", 1.0), (2, "succeeded", 2.0)]
    shown = batchai("sweep", "show", *where)
    assert "succeeded" in shown.stdout and "cli-0001" in shown.stdout, shown.stdout
    listed = json.loads(batchai("sweep", "list", "-g", "rg", "-w", "sw", "-e", "e", "-o", "json").stdout)
    assert "cli" in {s["name"] for s in listed}
