"""A job with containerSettings on nodes whose `docker` is a stand-in (tests/e2e/job_scripts/fake_docker.py:
this machine has no container engine): each node starts one container for the attempt, runs the job
preparation and then its tasks in it, and removes it at the end (the spec: the preparation runs "in the
same container as job", so what it installs is there for the job). A container that cannot start fails
the job, naming the image, before the preparation runs. What a real engine does with the container
is Docker's business; tests/e2e/test_toolkits.py covers a node without any engine.

The nodes here have a stand-in `nvidia-smi` that lists a GPU, so their containers get `--gpus all`;
the stand-in docker knows one private registry (REGISTRY, its password's hash in registry.json)."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.localhost.process import start_local_host
from tests.e2e.polling import wait_until
from tests.e2e.test_toolkits import AFS, CLUSTER, SCRIPTS, WS, Jobs, script

REGISTRY = "private.example"
REGISTRY_PASSWORD = "r3gistry-" + "pa55word-that-must-not-leak"
JOBS = f"{WS}/experiments/e/jobs"
NVIDIA_SMI = "#!/bin/sh\necho 'GPU 0: Tesla V100-PCIE-16GB (UUID: GPU-e2e)'\n"


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jobs]:
    root = tmp_path_factory.mktemp("container")
    bin_dir = root / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").symlink_to(SCRIPTS / "fake_docker.py")
    (bin_dir / "nvidia-smi").write_text(NVIDIA_SMI)
    (bin_dir / "nvidia-smi").chmod(0o755)
    (root / "docker").mkdir()
    (root / "docker" / "registry.json").write_text(json.dumps({
        "server": REGISTRY, "username": "me", "sha256": hashlib.sha256(REGISTRY_PASSWORD.encode()).hexdigest()}))
    path = os.pathsep.join([str(bin_dir), os.environ.get("PATH", "")])
    host = start_local_host(root / "state", env={"PATH": path, "FAKE_DOCKER_STATE": str(root / "docker")})
    try:
        jobs = Jobs(host)
        jobs.path = os.pathsep.join([str(bin_dir), jobs.path])  # the job's PATH: the node's docker first
        yield jobs
        jobs.http.close()
    finally:
        assert host.stop() == 0, "\n".join(host.output[-40:])


def containers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def docker_calls(jobs: Jobs, command: str, image: str | None = None) -> list[dict[str, Any]]:
    """The stand-in docker's calls of `command` (of the containers of `image` when given)."""
    calls = [json.loads(line) for line in (docker_state(jobs) / "calls.jsonl").read_text().splitlines()]
    calls = [c for c in calls if c["argv"][0] == command]
    if image is not None:
        names = {c["argv"][c["argv"].index("--name") + 1] for c in docker_calls(jobs, "run") if image in c["argv"]}
        calls = [c for c in calls if image in c["argv"] or any(n in c["argv"] for n in names)]
    return calls


def docker_state(jobs: Jobs) -> Path:
    return jobs.host.data_dir.parent / "docker"


def test_preparation_and_tasks_run_in_one_container_per_node_removed_at_the_end(jobs: Jobs) -> None:
    image = "caffe2ai/caffe2"
    props = jobs.succeeded("c2", {
        "environmentVariables": [{"name": "PATH", "value": jobs.path}, {"name": "GREETING", "value": "hello"}],
        "containerSettings": {"imageSourceRegistry": {"image": image}},
        "jobPreparation": {"commandLine": "echo $FAKE_CONTAINER > $AZ_BATCHAI_JOB_TEMP/prepared-in"},
        "caffe2Settings": {"pythonScriptFilePath": script("in_container.py")}})
    assert props["containerSettings"]["imageSourceRegistry"]["image"] == image
    first, second = jobs.text("c2", "stdout-0.txt"), jobs.text("c2", "stdout-1.txt")
    assert first.startswith("ok in a container") and "task 0 in batchai-" in first, jobs.logs("c2")
    assert "task 1 in batchai-" in second and first.split()[-1] != second.split()[-1]  # a container per node
    wait_until("both containers removed", lambda: containers(docker_state(jobs)) == [])
    calls = (docker_state(jobs) / "calls.log").read_text().splitlines()
    assert calls.count("run --detach") == 2 and calls.count("rm --force") == 2
    assert calls.count("exec -e") == 4  # on each node: the preparation, then the task


def test_a_container_that_cannot_start_fails_the_job_naming_the_image_before_the_preparation(jobs: Jobs) -> None:
    props = jobs.run("nopull", {"nodeCount": 1,
                                "containerSettings": {"imageSourceRegistry": {"image": "missing/image"}},
                                "jobPreparation": {"commandLine": f"touch {AFS}/prep-ran"},
                                "customToolkitSettings": {"commandLine": "true"}})
    assert props["executionState"] == "failed"
    error = props["executionInfo"]["errors"][0]
    assert error["code"] == "ContainerStartFailed" and "'missing/image'" in error["message"], error
    assert not (jobs.share / "prep-ran").exists()
    assert "Unable to find image" in jobs.text("nopull", "stderr-job_prep.txt")


def test_mpi_across_two_nodes_runs_every_rank_in_its_nodes_container(jobs: Jobs) -> None:
    """mpirun runs in the master's container; container_rsh.sh starts Open MPI's daemon in the other
    node's container (here through the stand-in's `exec`), so the ranks there run in it."""
    image = "horovod/horovod"
    outputs = jobs.host.data_dir.parent / "outputs"  # an output folder outside every other mounted one
    inputs = jobs.host.data_dir.parent / "inputs"
    inputs.mkdir(exist_ok=True)
    jobs.succeeded("mpi", {
        "containerSettings": {"imageSourceRegistry": {"image": image}, "shmSize": "1g"},
        "outputDirectories": [{"id": "OUT", "pathPrefix": str(outputs)}],
        "inputDirectories": [{"id": "DATA", "path": str(inputs)}],
        "customMpiSettings": {"commandLine": f"python3 {script('mpi_in_containers.py')}", "processCount": 4}})
    stdout = jobs.text("mpi")
    ranks = dict(re.findall(r"rank (\d) of 4 in (batchai-[0-9a-f]+): sum 6", stdout))
    runs = docker_calls(jobs, "run", image)
    names = [run["argv"][run["argv"].index("--name") + 1] for run in runs]
    # 2 slots a node: ranks 0 and 1 in the master's container, 2 and 3 in the other node's
    assert ranks.get("0") == ranks.get("1") != ranks.get("2") == ranks.get("3"), (stdout, jobs.logs("mpi"))
    assert len(runs) == 2 and {ranks["0"], ranks["2"]} == set(names)
    for run in runs:
        argv = run["argv"]
        assert argv[argv.index("--network") + 1] == "host" and argv[argv.index("--shm-size") + 1] == "1g"
        assert argv[argv.index("--gpus") + 1] == "all"  # the stand-in nvidia-smi lists a GPU
        mounts = [argv[i + 1] for i, word in enumerate(argv) if word == "-v"]
        assert any(m.endswith("/container_rsh.sh:ro") for m in mounts), mounts
        assert any(m.startswith(f"{outputs}/") and m.count(":") == 1 for m in mounts), mounts
        assert f"{inputs}:{inputs}:ro" in mounts
    mpirun = [c for c in docker_calls(jobs, "exec", image) if "mpirun" in c["argv"][-1]]
    assert len(mpirun) == 1 and "container_rsh.sh --containers" in mpirun[0]["argv"][-1]
    wait_until("both containers removed", lambda: not set(names) & set(containers(docker_state(jobs))))


def test_pytorch_gloo_ranks_in_two_nodes_containers_meet_over_the_hosts_network(jobs: Jobs) -> None:
    """Each node's rank runs in its own container; the rendezvous address and backend reach them by name."""
    image = "pytorch/pytorch"
    jobs.succeeded("torch", {"containerSettings": {"imageSourceRegistry": {"image": image}},
                             "pyTorchSettings": {"pythonScriptFilePath": script("pytorch_ranks.py"),
                                                 "commandLineArgs": "2 gloo", "communicationBackend": "gloo"}})
    assert "rank 0 of 2: sum 1" in jobs.text("torch", "stdout-0.txt"), jobs.logs("torch")
    assert "rank 1 of 2: sum 1" in jobs.text("torch", "stdout-1.txt"), jobs.logs("torch")
    tasks = [c["argv"] for c in docker_calls(jobs, "exec", image) if "pytorch_ranks.py" in c["argv"][-1]]
    assert len(tasks) == 2 and all("AZ_BATCHAI_PYTORCH_INIT_METHOD" in argv for argv in tasks)
    assert len({argv[argv.index("bash") - 1] for argv in tasks}) == 2  # a container each


def test_a_private_registrys_image_is_pulled_with_its_password_which_is_never_shown(jobs: Jobs) -> None:
    image = f"{REGISTRY}/team/train:1"
    registry = {"image": image, "serverUrl": REGISTRY,
                "credentials": {"username": "me", "password": REGISTRY_PASSWORD}}
    job_secret = "job-" + "secret-in-the-container-only"
    props = jobs.succeeded("private", {
        "nodeCount": 1, "containerSettings": {"imageSourceRegistry": registry},
        "secrets": [{"name": "API_TOKEN", "value": job_secret}],
        "jobPreparation": {"commandLine": "env > $AZ_BATCHAI_STDOUTERR_DIR/prep-env.txt"},
        "customToolkitSettings": {"commandLine": "env > $AZ_BATCHAI_STDOUTERR_DIR/job-env.txt; echo trained"}})
    assert props["containerSettings"]["imageSourceRegistry"]["credentials"] == {"username": "me"}
    for answer in (jobs.http.get(f"{JOBS}/private"), jobs.http.get(JOBS)):
        assert answer.status_code == 200 and REGISTRY_PASSWORD not in answer.text
    files = jobs.files("private")
    assert {"prep-env.txt", "job-env.txt", "stdout-job_prep.txt"} <= set(files)
    for dump in ("prep-env.txt", "job-env.txt"):  # the job's secret reached the container, by name only
        assert f"API_TOKEN={job_secret}" in jobs.text("private", dump).splitlines()
    assert job_secret not in (docker_state(jobs) / "calls.jsonl").read_text()
    for name in files:  # the job's outputs, its logs and its execution log
        assert REGISTRY_PASSWORD not in jobs.text("private", name), name
    assert "Login Succeeded" in jobs.text("private", "stdout-job_prep.txt")
    assert "docker login --username me --password-stdin private.example" in jobs.logs("private")
    run, = docker_calls(jobs, "run", image)
    login = next(call for call in docker_calls(jobs, "login") if call["DOCKER_CONFIG"] == run["DOCKER_CONFIG"])
    assert login["config_mode"] == "0o700" and run["DOCKER_CONFIG"] == login["DOCKER_CONFIG"]
    assert not Path(login["DOCKER_CONFIG"]).exists()  # removed once the container ran
    assert all(call["DOCKER_CONFIG"] is None for call in docker_calls(jobs, "exec", image))
    assert REGISTRY_PASSWORD not in (docker_state(jobs) / "calls.jsonl").read_text()  # no docker argv has it
    assert REGISTRY_PASSWORD not in "\n".join(jobs.host.output)
    node_files = [p for p in (jobs.host.data_dir / "pools").rglob("*") if p.is_file()]
    assert any(p.name == "agent.log" for p in node_files)  # the nodes' folders: agent logs, job folders
    for path in node_files:
        assert REGISTRY_PASSWORD.encode() not in path.read_bytes(), path


def test_a_wrong_registry_password_fails_the_job_naming_the_registry_and_user(jobs: Jobs) -> None:
    image = f"{REGISTRY}/team/train:1"
    registry = {"image": image, "serverUrl": REGISTRY, "credentials": {"username": "me", "password": "wrong"}}
    props = jobs.run("badlogin", {"nodeCount": 1, "containerSettings": {"imageSourceRegistry": registry},
                                  "customToolkitSettings": {"commandLine": "true"}})
    assert props["executionState"] == "failed"
    error = props["executionInfo"]["errors"][0]
    assert error["code"] == "RegistryLoginFailed" and f"'{image}'" in error["message"] and "'me'" in error["message"]
    assert "incorrect username or password" in jobs.text("badlogin", "stderr-job_prep.txt")


def test_a_registry_password_in_key_vault_is_refused_naming_the_field(jobs: Jobs) -> None:
    reference = {"sourceVault": {"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/v"},
                 "secretUrl": "https://v.vault.azure.net/secrets/registry"}
    credentials = {"username": "me", "passwordSecretReference": reference}
    body = {"properties": {"cluster": {"id": CLUSTER}, "nodeCount": 1, "stdOutErrPathPrefix": AFS,
                           "containerSettings": {"imageSourceRegistry": {"image": "me/x", "credentials": credentials}},
                           "customToolkitSettings": {"commandLine": "true"}}}
    answer = jobs.http.put(f"{JOBS}/kv", json=body)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["target"] == "properties.containerSettings.imageSourceRegistry.credentials.passwordSecretReference"
    assert "Key Vault" in error["message"]
    assert jobs.http.get(f"{JOBS}/kv").status_code == 404
