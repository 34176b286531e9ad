"""Every toolkit launched for real: the local host, two agents on 127.0.0.x, a file share mounted on
both, and jobs whose scripts (tests/e2e/job_scripts) check what their launcher gave them. A script
that finds something wrong exits non-zero, so the job fails; the test then reads the job's logs
through listOutputFiles and the download URLs, as a user would.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from node_bootstrap.attempt import docker_engine_answers
from shared.localhost.process import LocalHostProcess, start_local_host
from tests.e2e.polling import wait_until

WS = "/subscriptions/e2e/resourceGroups/rg/providers/Microsoft.BatchAI/workspaces/tk"
CLUSTER = f"{WS}/clusters/two"
Q = {"api-version": "2018-05-01"}
SCRIPTS = Path(__file__).with_name("job_scripts")
TRAIN_SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "pytorch" / "train.py"
ACCOUNT, SHARE = "teststorage", "jobs"
AFS = "$AZ_BATCHAI_MOUNT_ROOT/afs"
SECRET = "pa55-" + "w0rd-that-must-not-leak"


CLUSTER_BODY = {"properties": {
    "vmSize": "STANDARD_D1_V2", "scaleSettings": {"manual": {"targetNodeCount": 2}},
    "userAccountSettings": {"adminUserName": "u", "adminUserPassword": "p"},
    "nodeSetup": {"mountVolumes": {"azureFileShares": [{
        "accountName": ACCOUNT, "azureFileUrl": f"https://{ACCOUNT}.file.core.windows.net/{SHARE}",
        "credentials": {"accountKey": "key"}, "relativeMountPath": "afs"}]}},
}}


class Jobs:
    """A workspace with a 2-node cluster whose nodes mount one file share at $AZ_BATCHAI_MOUNT_ROOT/afs."""

    def __init__(self, host: LocalHostProcess) -> None:
        self.host = host
        self.http = httpx.Client(base_url=host.endpoint, params=Q, timeout=30, headers=host.headers)
        self.share = host.data_dir / "storage" / "fileshares" / ACCOUNT / SHARE
        shutil.copytree(SCRIPTS, self.share / "scripts")
        shutil.copy(TRAIN_SCRIPT, self.share / "scripts" / "train.py")  # the demo's training
        bin_dir = self.share / "bin"
        bin_dir.mkdir()
        for tool in ("cntk", "caffe"):  # neither is packaged here: a stand-in records its arguments
            (bin_dir / tool).symlink_to(self.share / "scripts" / "fake_tool.py")
        self.path = os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), os.environ.get("PATH", "")])
        self.http.put(WS, json={"location": "local"}).raise_for_status()
        self.http.put(f"{WS}/experiments/e", json={}).raise_for_status()
        self.http.put(CLUSTER, json=CLUSTER_BODY).raise_for_status()
        wait_until("2 idle nodes", lambda: self.http.get(CLUSTER).json()["properties"]["nodeStateCounts"]
                 ["idleNodeCount"] == 2)

    def run(self, name: str, properties: dict[str, Any], timeout: float = 120) -> dict[str, Any]:
        """Submit a job on the 2-node cluster and wait for it to end; its properties."""
        body = {"cluster": {"id": CLUSTER}, "nodeCount": 2, "stdOutErrPathPrefix": AFS,
                "environmentVariables": [{"name": "PATH", "value": self.path}]} | properties
        self.http.put(f"{WS}/experiments/e/jobs/{name}", json={"properties": body}).raise_for_status()
        return wait_until(f"job {name} to end", lambda: self.ended(name), timeout)

    def ended(self, name: str) -> dict[str, Any] | None:
        props = self.http.get(f"{WS}/experiments/e/jobs/{name}").json()["properties"]
        return props if props["executionState"] in ("succeeded", "failed") else None

    def files(self, name: str, output: str = "stdouterr", **params: Any) -> dict[str, dict[str, Any]]:
        answer = self.http.post(f"{WS}/experiments/e/jobs/{name}/listOutputFiles",
                                params={"outputdirectoryid": output, **params})
        answer.raise_for_status()
        return {f["name"]: f for f in answer.json()["value"]}

    def text(self, name: str, file: str = "stdout.txt") -> str:
        entry = self.files(name).get(file)
        return httpx.get(entry["downloadUrl"]).text if entry else ""

    def logs(self, name: str) -> str:
        """Everything the job's stdouterr directory holds, for failure messages."""
        return "\n".join(f"--- {f}\n{self.text(name, f)}" for f in sorted(self.files(name)))

    def succeeded(self, name: str, properties: dict[str, Any], timeout: float = 120) -> dict[str, Any]:
        props = self.run(name, properties, timeout)
        assert props["executionState"] == "succeeded", (props.get("executionInfo"), self.logs(name))
        return props


def processes_running(jobs: Jobs, script_name: str) -> list[int]:
    """Live processes of this host's nodes running the script (its path is below the host's folder)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes()
            if script_name.encode() in text and str(jobs.host.data_dir).encode() in text:
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jobs]:
    host = start_local_host(tmp_path_factory.mktemp("toolkits") / "state")
    try:
        jobs = Jobs(host)
        yield jobs
        jobs.http.close()
    finally:
        assert host.stop() == 0, "\n".join(host.output[-40:])


def script(name: str) -> str:
    return f"{AFS}/scripts/{name}"


def test_pytorch_gloo_training_on_two_nodes_saves_a_model_that_downloads(jobs: Jobs) -> None:
    jobs.succeeded("pytorch", {
        "outputDirectories": [{"id": "MODEL", "pathPrefix": AFS, "pathSuffix": "models"}],
        "pyTorchSettings": {"pythonScriptFilePath": script("train.py"),
                            "commandLineArgs": "--world-size 2 --epochs 25 --output $AZ_BATCHAI_OUTPUT_MODEL",
                            "communicationBackend": "gloo"}})  # as the recipe: processCount is nodeCount
    stdout = jobs.text("pytorch", "stdout-0.txt")  # the file the PyTorch recipe streams
    assert "epoch  25" in stdout and "model saved" in stdout, stdout
    assert {"stdout-0.txt", "stderr-0.txt", "stdout-1.txt", "stderr-1.txt"} <= set(jobs.files("pytorch"))
    model = jobs.files("pytorch", "MODEL")["model.pt"]
    assert model["fileType"] == "file" and model["properties"]["contentLength"] > 1000
    assert httpx.get(model["downloadUrl"]).content[:2] == b"PK"  # torch.save writes a zip archive


def test_custom_mpi_all_reduces_across_four_ranks_on_two_nodes(jobs: Jobs) -> None:
    jobs.succeeded("mpi", {"customMpiSettings": {"commandLine": f"python3 {script('mpi_allreduce.py')}",
                                                 "processCount": 4}})
    stdout = jobs.text("mpi")  # mpirun forwards every rank's output; lines of ranks may interleave
    assert sorted(re.findall(r"rank (\d) of 4 on [^:]+: sum 6", stdout)) == ["0", "1", "2", "3"], stdout


def test_tensorflow_one_parameter_server_and_two_workers(jobs: Jobs) -> None:
    jobs.succeeded("tf", {"tensorFlowSettings": {
        "pythonScriptFilePath": script("tf_roles.py"), "parameterServerCount": 1, "workerCount": 2,
        "masterCommandLineArgs": "master", "workerCommandLineArgs": "worker",
        "parameterServerCommandLineArgs": "ps"}})
    everything = jobs.logs("tf")
    # ENVIRONMENT.md "Per-task log files": the recipes stream stdout-wk-0.txt
    assert "master 0 ok" in jobs.text("tf", "stdout-wk-0.txt"), everything
    assert "worker 1 ok" in jobs.text("tf", "stdout-wk-1.txt") and "ps 0 ok" in jobs.text("tf", "stdout-ps-0.txt")
    assert {"stderr-wk-0.txt", "stderr-wk-1.txt", "stderr-ps-0.txt"} <= set(jobs.files("tf"))
    wait_until("the parameter server to be stopped once the workers ended", lambda: not processes_running(jobs, "tf_roles.py"))


@pytest.mark.parametrize("toolkit", ["horovodSettings", "chainerSettings"])
def test_horovod_and_chainer_run_the_script_under_mpirun(jobs: Jobs, toolkit: str) -> None:
    name = toolkit.removesuffix("Settings")
    jobs.succeeded(name, {
        "inputDirectories": [{"id": "DATA", "path": f"{AFS}/data"}],
        toolkit: {"pythonScriptFilePath": script("mpi_script.py"), "processCount": 3,
                  "commandLineArgs": "3 2 --data $AZ_BATCHAI_INPUT_DATA lit"}})
    assert jobs.text(name).count(" of 3 done") == 3, jobs.logs(name)


def test_cntk_brainscript_runs_cntk_with_its_config_file_under_mpirun(jobs: Jobs) -> None:
    jobs.succeeded("cntkbs", {"cntkSettings": {"languageType": "BrainScript",
                                               "configFilePath": f"{AFS}/scripts/model.cntk",
                                               "commandLineArgs": "epochs=2 out=$AZ_BATCHAI_JOB_TEMP",
                                               "processCount": 2}})
    stdout = jobs.text("cntkbs")
    assert stdout.count("cntk arguments: ['configFile=") == 2, stdout
    assert "model.cntk', 'epochs=2', 'out=/" in stdout and "cntk rank 1 of 2" in stdout, stdout


@pytest.mark.parametrize(("name", "language", "reported"), [
    ("cntkpy", "Python", "Python"), ("cntkpy-lower", "python", "python"), ("cntkpy-keras", None, "Python")])
def test_cntk_python_runs_the_script_under_mpirun(jobs: Jobs, name: str, language: str | None, reported: str) -> None:
    """languageType in any case, or none with a script (the Keras recipe's CNTK job): Python."""
    settings = {"pythonScriptFilePath": script("mpi_script.py"),
                "commandLineArgs": "2 2 --data $AZ_BATCHAI_INPUT_DATA lit"}
    props = jobs.succeeded(name, {"inputDirectories": [{"id": "DATA", "path": f"{AFS}/data"}],
                                  "cntkSettings": settings | ({"languageType": language} if language else {})})
    assert props["cntkSettings"]["languageType"] == reported and props["cntkSettings"]["processCount"] == 2
    assert jobs.text(name).count(" of 2 done") == 2


def test_caffe_with_a_solver_runs_caffe_train_once_without_mpirun(jobs: Jobs) -> None:
    jobs.succeeded("caffecfg", {"nodeCount": 1, "caffeSettings": {
        "configFilePath": f"{AFS}/scripts/solver.prototxt", "commandLineArgs": "-gpu all"}})
    stdout = jobs.text("caffecfg")
    assert "caffe arguments: ['train', '--solver=" in stdout and "solver.prototxt', '-gpu', 'all']" in stdout
    assert "caffe rank" not in stdout, stdout


def test_caffe_python_with_two_processes_runs_under_mpirun(jobs: Jobs) -> None:
    jobs.succeeded("caffepy", {
        "inputDirectories": [{"id": "DATA", "path": f"{AFS}/data"}],
        "caffeSettings": {"pythonScriptFilePath": script("mpi_script.py"), "processCount": 2,
                          "commandLineArgs": "2 2 --data $AZ_BATCHAI_INPUT_DATA lit"}})
    assert jobs.text("caffepy").count(" of 2 done") == 2


def test_caffe2_runs_one_process_per_node_that_meet_in_the_shared_temp(jobs: Jobs) -> None:
    jobs.succeeded("caffe2", {"caffe2Settings": {"pythonScriptFilePath": script("caffe2_nodes.py"),
                                                 "commandLineArgs": "2"}})
    everything = jobs.logs("caffe2")
    assert "caffe2 node 0 of 2 ok" in jobs.text("caffe2", "stdout-0.txt"), everything
    assert "caffe2 node 1 of 2 ok" in jobs.text("caffe2", "stdout-1.txt"), everything
    assert {"stderr-0.txt", "stderr-1.txt"} <= set(jobs.files("caffe2"))  # the Caffe2 recipe streams stderr-0.txt


@pytest.mark.parametrize(("backend", "variable"), [("GLOO", "gloo"), (None, "gloo")])
def test_pytorch_processes_get_ranks_one_rendezvous_and_the_backend(jobs: Jobs, backend: str | None,
                                                                    variable: str) -> None:
    name = f"ranks-{backend}".lower()
    settings = {"pythonScriptFilePath": script("pytorch_ranks.py"), "commandLineArgs": f"4 {variable}",
                "processCount": 4, "communicationBackend": backend}
    props = jobs.succeeded(name, {"pyTorchSettings": {k: v for k, v in settings.items() if v is not None}})
    assert props["pyTorchSettings"].get("communicationBackend") == backend  # echoed as given
    everything = jobs.logs(name)
    assert all(f"rank {r} of 4: sum 6" in jobs.text(name, f"stdout-{r}.txt") for r in range(4)), everything
    assert "ok backend" in jobs.text(name, "stdout-3.txt"), everything


def test_custom_toolkit_runs_once_on_the_master_with_everything_expanded(jobs: Jobs) -> None:
    command = ("test $(wc -l < $AZ_BATCHAI_MPI_HOST_FILE) = 2 && echo \"hosts $(cat $AZ_BATCHAI_MPI_HOST_FILE "
               "| cut -d' ' -f1 | tr '\\n' ' ')\" && echo \"in $AZ_BATCHAI_INPUT_DATA out $AZ_BATCHAI_OUTPUT_OUT "
               "greeting $GREETING\" && test -d $AZ_BATCHAI_OUTPUT_OUT && touch $AZ_BATCHAI_OUTPUT_OUT/done && "
               "mkdir $AZ_BATCHAI_OUTPUT_OUT/sub && echo a > $AZ_BATCHAI_OUTPUT_OUT/sub/a && "
               "echo bb > $AZ_BATCHAI_OUTPUT_OUT/sub/b")
    props = jobs.succeeded("custom", {
        "inputDirectories": [{"id": "DATA", "path": "$AZ_BATCHAI_MOUNT_ROOT/afs/$DATASET"}],
        "outputDirectories": [{"id": "OUT", "pathPrefix": AFS, "pathSuffix": "results"}],
        "environmentVariables": [{"name": "PATH", "value": jobs.path}, {"name": "DATASET", "value": "cifar"},
                                 {"name": "GREETING", "value": "hello"}],
        "customToolkitSettings": {"commandLine": command}})
    stdout = jobs.text("custom")
    assert stdout.startswith("hosts 127.0.0."), stdout
    assert "/afs/cifar out " in stdout and stdout.rstrip().endswith("/results greeting hello"), stdout
    segment = props["jobOutputDirectoryPathSegment"]
    assert f"/{segment}/results" in stdout
    out = jobs.files("custom", "OUT")
    assert set(out) == {"done", "sub"} and out["sub"]["fileType"] == "directory" and "downloadUrl" not in out["sub"]
    sub = jobs.files("custom", "OUT", directory="sub")
    assert {n: f["properties"]["contentLength"] for n, f in sub.items()} == {"a": 2, "b": 3}
    assert httpx.get(sub["b"]["downloadUrl"]).text == "bb\n"
    page = jobs.http.post(f"{WS}/experiments/e/jobs/custom/listOutputFiles",
                          params={"outputdirectoryid": "OUT", "directory": "sub", "maxresults": 1}).json()
    assert [f["name"] for f in page["value"]] == ["a"]
    assert [f["name"] for f in httpx.get(page["nextLink"], headers=jobs.host.headers).json()["value"]] == ["b"]
    escape = jobs.http.post(f"{WS}/experiments/e/jobs/custom/listOutputFiles",
                            params={"outputdirectoryid": "OUT", "directory": "../.."})
    assert escape.status_code == 400 and escape.json()["error"]["target"] == "directory"
    files = jobs.files("custom")
    assert {"stdout.txt", "stderr.txt"} <= set(files) and any(f.startswith("execution-") for f in files), files


def test_a_failing_job_preparation_fails_the_job_and_its_log_is_listed(jobs: Jobs) -> None:
    props = jobs.run("badprep", {"nodeCount": 1, "jobPreparation": {"commandLine": "echo preparing; exit 7"},
                                 "customToolkitSettings": {"commandLine": "echo never"}})
    assert props["executionState"] == "failed" and props["executionInfo"]["exitCode"] == 7
    assert props["executionInfo"]["errors"][0]["code"] == "JobPreparationFailed"
    files = jobs.files("badprep")
    assert {"stdout-job_prep.txt", "stderr-job_prep.txt"} <= set(files)
    assert jobs.text("badprep", "stdout-job_prep.txt") == "preparing\n"
    assert "stdout.txt" not in files or jobs.text("badprep") == ""


def test_a_secret_reaches_the_process_and_no_read_log_or_output(jobs: Jobs) -> None:
    digest = hashlib.sha256(SECRET.encode()).hexdigest()
    jobs.succeeded("secret", {"nodeCount": 1, "secrets": [{"name": "API_TOKEN", "value": SECRET}],
                              "customToolkitSettings": {"commandLine": "printf %s \"$API_TOKEN\" | sha256sum"}})
    assert jobs.text("secret").split()[0] == digest
    job = jobs.http.get(f"{WS}/experiments/e/jobs/secret").text
    listing = jobs.http.get(f"{WS}/experiments/e/jobs").text
    assert SECRET not in job and SECRET not in listing and "API_TOKEN" in job
    assert SECRET not in jobs.logs("secret")
    for path in jobs.host.data_dir.rglob("*"):
        if path.is_file() and path.suffix in (".log", ".txt"):
            assert SECRET not in path.read_text(errors="replace"), path
    assert SECRET not in "\n".join(jobs.host.output)


def test_container_settings_fail_clearly_without_docker_before_the_preparation_runs(jobs: Jobs) -> None:
    """The Horovod-PyTorch recipe's shape: its preparation (`apt install ...; pip install horovod`) is
    meant for the image; on a node without a container engine it must never run on the node."""
    if docker_engine_answers():
        pytest.fail("this machine has a Docker engine: extend this test to run the container")
    image = "batchaitraining/pytorch:0.4.0-cp36-cuda9-cudnn7"
    props = jobs.run("docker", {"containerSettings": {"imageSourceRegistry": {"image": image}},
                                "jobPreparation": {"commandLine": f"touch {AFS}/prep-ran-$AZ_BATCHAI_NODE_IP"},
                                "horovodSettings": {"pythonScriptFilePath": script("mpi_script.py")}}, timeout=60)
    assert props["executionState"] == "failed"
    error = props["executionInfo"]["errors"][0]
    assert error["code"] == "ContainerUnavailable" and "docker" in error["message"].lower(), error
    assert f"'{image}'" in error["message"], error
    assert not list(jobs.share.glob("prep-ran-*")), "the job preparation ran on the node"
    assert not any(name.startswith(("stdout-job_prep", "stdout.txt")) for name in jobs.files("docker"))


def test_remote_login_information_lists_the_nodes(jobs: Jobs) -> None:
    nodes = jobs.http.post(f"{CLUSTER}/listRemoteLoginInformation").json()["value"]
    assert len(nodes) == 2 and all(n["ipAddress"].startswith("127.0.0.") and n["port"] == 22 for n in nodes)
    first = jobs.http.post(f"{CLUSTER}/listRemoteLoginInformation", params={"maxresults": 1}).json()
    assert len(first["value"]) == 1 and "nextLink" in first
    second = httpx.get(first["nextLink"], headers=jobs.host.headers).json()  # the SDK follows nextLink with GET
    assert [n["nodeId"] for n in first["value"] + second["value"]] == [n["nodeId"] for n in nodes]
    done = jobs.http.post(f"{WS}/experiments/e/jobs/custom/listRemoteLoginInformation").json()
    assert done["value"] == []  # a job that ended holds no nodes


def test_output_urls_expire_and_refuse_tampering(jobs: Jobs) -> None:
    url = jobs.files("custom")["stdout.txt"]["downloadUrl"]
    assert httpx.get(url).status_code == 200
    assert httpx.get(url.replace("sig=", "sig=A")).status_code == 403
    assert httpx.get(url.replace("stdout.txt", "stderr.txt")).status_code == 403
    expiry = jobs.files("custom", linkexpiryinminutes=5)["stdout.txt"]["downloadUrl"]
    assert "se=" in expiry
    bad = jobs.http.post(f"{WS}/experiments/e/jobs/custom/listOutputFiles",
                         params={"outputdirectoryid": "stdouterr", "linkexpiryinminutes": 4})
    assert bad.status_code == 400 and bad.json()["error"]["target"] == "linkexpiryinminutes"


def test_mpirun_starts_only_after_every_node_ran_its_job_preparation(jobs: Jobs) -> None:
    prep = ("[ \"$(head -1 $AZ_BATCHAI_MPI_HOST_FILE | cut -d' ' -f1)\" = \"$AZ_BATCHAI_NODE_IP\" ] || sleep 1; "
            "touch $AZ_BATCHAI_SHARED_JOB_TEMP/prepared-$AZ_BATCHAI_NODE_IP")
    jobs.succeeded("barrier", {"jobPreparation": {"commandLine": prep}, "customMpiSettings": {
        "commandLine": "bash -c 'test $(ls $AZ_BATCHAI_SHARED_JOB_TEMP | grep -c prepared-) = 2 && echo both prepared'",
        "processCount": 2}})
    assert jobs.text("barrier").count("both prepared") == 2
    assert jobs.text("barrier", "stdout-job_prep.txt") == ""
    assert any(name.startswith("stdout-job_prep-") for name in jobs.files("barrier"))  # the other node's


def test_terminating_a_running_job_stops_its_processes_on_every_node(jobs: Jobs) -> None:
    body = {"cluster": {"id": CLUSTER}, "nodeCount": 2, "stdOutErrPathPrefix": AFS,
            "caffe2Settings": {"pythonScriptFilePath": script("sleeper.py")}}
    jobs.http.put(f"{WS}/experiments/e/jobs/endless", json={"properties": body}).raise_for_status()
    wait_until("a sleeper on each node", lambda: len(processes_running(jobs, "sleeper.py")) == 2)
    jobs.http.post(f"{WS}/experiments/e/jobs/endless/terminate").raise_for_status()
    assert jobs.http.get(f"{WS}/experiments/e/jobs/endless").json()["properties"]["executionState"] in (
        "terminating", "failed")  # terminating until both nodes have stopped their sleeper
    wait_until("every sleeper to be stopped", lambda: not processes_running(jobs, "sleeper.py"), timeout=15)
    props = wait_until("the job to be final", lambda: jobs.ended("endless"), timeout=15)
    assert props["executionInfo"]["errors"][0]["code"] == "JobTerminated"


@pytest.mark.parametrize("deleted", ["job", "experiment", "workspace"])
def test_deleting_a_running_job_or_what_holds_it_stops_its_processes_on_every_node(jobs: Jobs, deleted: str) -> None:
    """Delete is terminate and more: the job's processes stop on every node within seconds."""
    ws = f"{WS}-del-{deleted}" if deleted == "workspace" else WS
    cluster = f"{ws}/clusters/two" if deleted == "workspace" else CLUSTER
    experiment = f"{ws}/experiments/del-{deleted}"
    if deleted == "workspace":
        jobs.http.put(ws, json={"location": "local"}).raise_for_status()
        jobs.http.put(cluster, json=CLUSTER_BODY).raise_for_status()
    jobs.http.put(experiment, json={}).raise_for_status()
    script_name = f"sleeper-{deleted}.py"
    shutil.copy(SCRIPTS / "sleeper.py", jobs.share / "scripts" / script_name)
    job = f"{experiment}/jobs/doomed"
    jobs.http.put(job, json={"properties": {
        "cluster": {"id": cluster}, "nodeCount": 2, "stdOutErrPathPrefix": AFS,
        "caffe2Settings": {"pythonScriptFilePath": script(script_name)}}}).raise_for_status()
    wait_until("a sleeper on each node", lambda: len(processes_running(jobs, script_name)) == 2, timeout=60)
    target = {"job": job, "experiment": experiment, "workspace": ws}[deleted]
    assert jobs.http.delete(target).status_code in (200, 202)
    wait_until("every sleeper to be stopped", lambda: not processes_running(jobs, script_name), timeout=15)
    assert jobs.http.get(job).status_code == 404
