"""Batch AI's own recipes, as a migrating user types them: the `az batchai ...` lines of
Azure/BatchAI's `recipes/*/cli-instructions.md` with `az` changed to `batchai`, and the recipes' job
files as they are (copies in tests/e2e/recipes, see its README.md), against the real local host.

- every recipe's `cluster create` line is accepted as written (its --generate-ssh-keys making a key
  pair in a temporary HOME, as az did), and so is the documentation's `file-server create` line;
- every one of the 17 job files is accepted through its recipe's `job create` line, and GET gives
  back every field of the file in the spec's casing;
- the TensorFlow-distributed, PyTorch-gloo, Horovod-PyTorch and Chainer recipes run on 2 local nodes
  with stand-in scripts (tests/e2e/job_scripts/recipe_*.py) that check what the launcher gave them,
  then the recipe's `job file stream -f <name>` and `job show --query` lines show what they did;
- a recipe job with containerSettings on a node without a container engine fails at once, naming
  the image, without running its preparation on the node.

The jobs of the acceptance tests wait on clusters of 0 nodes: the recipes' job preparations
(`apt install ...`, `pip install horovod`) are meant for their images and never run on this machine.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.cli.ssh_keys import ensure_rsa_key_pair
from tests.e2e.hosts import running_host
from tests.e2e.polling import wait_until
from tests.e2e.test_cli import Batchai, as_json, client, in_process, ok

RECIPES = Path(__file__).with_name("recipes")
SCRIPTS = Path(__file__).with_name("job_scripts")
ACCOUNT, KEY = "batchairecipestorage", "the recipes' storage key"
USER, PASSWORD = "recipeuser", "Recipe-Passw0rd-never-shown"
GROUP, WORKSPACE = "batchai.recipes", "recipe_workspace"
OLD_GROUP = "batchaitests"  # the two BrainScript recipes, written for the 2017 CLI (no workspaces)
HOST_ENV = {"BATCHAI_HEARTBEAT_SECONDS": "0.5"}


def az(line: str) -> list[str]:
    """A recipe's `az batchai ...` line as `batchai` arguments, its placeholders filled in as a user would."""
    for placeholder, value in (("<storage account name>", ACCOUNT), ("<user_name>", USER),
                               ("<password>", PASSWORD), ("$USER", USER)):
        line = line.replace(placeholder, value)
    words = shlex.split(line)
    assert words[:2] == ["az", "batchai"], line
    return words[2:]


# -- the recipes' lines, as written in Azure/BatchAI's recipes/*/cli-instructions.md ---------------
CLUSTER_LINES = {
    "nc6 -t 2": "az batchai cluster create -n nc6 -g batchai.recipes -w recipe_workspace -s Standard_NC6 -t 2 "
                "--generate-ssh-keys",
    "nc6 -t 1": "az batchai cluster create -n nc6 -g batchai.recipes -w recipe_workspace -s Standard_NC6 -t 1 "
                "--generate-ssh-keys",
    "nc24r": "az batchai cluster create -n nc24r -g batchai.recipes -w recipe_workspace -s Standard_NC24R -t 2 "
             "--generate-ssh-keys",
    "nc24r lower case": "az batchai cluster create -n nc24r -g batchai.recipes -w recipe_workspace "
                        "-s Standard_NC24r -t 2 --generate-ssh-keys",
    "BrainScript key": "az batchai cluster create -l eastus -g batchaitests --storage-account-name "
                       "<storage account name> -n nc6 -s Standard_NC6 --min 2 --max 2 --afs-name batchaisample "
                       "--afs-mount-path external -u $USER -k ~/.ssh/id_rsa.pub",
    "BrainScript password": "az batchai cluster create -l eastus -g batchaitests --storage-account-name "
                            "<storage account name> -n nc6 -s Standard_NC6 --min 1 --max 1 --afs-name "
                            "batchaisample --afs-mount-path external -u <user_name> -p <password>",
    # documentation/using-azure-cli-20.md
    "docs shares": "az batchai cluster create -g demoGroup -w demoWorkspace -n demoCluster "
                         "--storage-account-name demobatchaicli --afs-name demoafs --afs-mount-path azurefileshare "
                         "--bfs-name democontainer --bfs-mount-path azurecontainer -s Standard_NC6 -i UbuntuLTS -t 1 "
                         "--generate-ssh-keys",
}
FILE_SERVER_LINE = ("az batchai file-server create -g demoGroup -w demoWorkspace -n demoNFS --disk-count 4 "
                    "--disk-size 1024 -s Standard_DS14 --generate-ssh-keys")


def job_line(name: str, cluster: str, experiment: str, file: str = "job.json") -> str:
    return (f"az batchai job create -c {cluster} -n {name} -g batchai.recipes -w recipe_workspace -e {experiment} "
            f"-f {file} --storage-account-name <storage account name>")


# (job file, its recipe's `job create` line). The two BrainScript recipes' line is the 2017 CLI's
# (`az batchai job create -l eastus -g batchaitests -n cntk -r nc6 -c job.json`: no workspace, no
# experiment, -r for the cluster and -c for the file); it is given here as the 2018 CLI wrote it.
JOBS = {
    "Batch-Scoring/Distributed-Batch-Scoring-in-Tensorflow-with-GPU/job.json":
        "az batchai job create -n batch_scoring -c nc6 -g batchai.recipes -w recipe_workspace "
        "-e batch_scoring_experiment -f job.json --storage-account-name <storage account name>",
    "CNTK/CNTK-GPU-BrainScript-Distributed/job.json":
        "az batchai job create -g batchaitests -n distributed_cntk -c nc6 -e cntk_experiment -f job.json",
    "CNTK/CNTK-GPU-BrainScript/job.json":
        "az batchai job create -g batchaitests -n cntk -c nc6 -e cntk_experiment -f job.json",
    "CNTK/CNTK-GPU-Python-Distributed-Infiniband/job.json":
        job_line("distributed_cntk_python_ib", "nc24r", "cntk_experiment"),
    "CNTK/CNTK-GPU-Python-Distributed/job.json": job_line("distributed_cntk_python", "nc6", "cntk_experiment"),
    "CNTK/CNTK-GPU-Python/job.json": job_line("cntk_python", "nc6", "cntk_experiment"),
    "Caffe2/Caffe2-GPU-Distributed/job.json":
        "az batchai job create -n distributed_caffe2 -c nc6 -g batchai.recipes -w recipe_workspace "
        "-e caffe2_experiment -f job.json --storage-account-name <storage account name>",
    "Chainer/Chainer-GPU-Distributed-Infiniband/job.json":
        "az batchai job create -n distributed_chainer_ib -c nc24r -g batchai.recipes -w recipe_workspace "
        "-e chainer_experiment -f job.json --storage-account-name <storage account name>",
    "Chainer/Chainer-GPU-Distributed/job.json":
        "az batchai job create -n distributed_chainer -c nc6 -g batchai.recipes -w recipe_workspace "
        "-e chainer_experiment -f job.json --storage-account-name <storage account name>",
    "Horovod/Horovod-Infiniband-Benchmark/job.json": job_line("horovod_benchmark", "nc24r", "horovod_experiment"),
    "Horovod/Horovod-PyTorch/job.json": job_line("horovod_pytorch", "nc6", "horovod_experiment"),
    "Horovod/Horovod-Tensorflow/job.json": job_line("horovod_tensorflow", "nc6", "horovod_experiment"),
    # The Keras recipe fetches job_tensorflow.json (or, "alternatively", job_cntk.json) as job.json.
    "Keras/Keras-GPU/job_tensorflow.json": job_line("keras_tensorflow", "nc6", "keras_experiment"),
    "Keras/Keras-GPU/job_cntk.json": job_line("keras_tensorflow", "nc6", "keras_experiment"),
    "PyTorch/PyTorch-GPU-Distributed-Gloo/job.json": job_line("distributed_pytorch", "nc6", "pytorch_experiment"),
    "TensorFlow/TensorFlow-GPU-Distributed/job.json":
        job_line("distributed_tensorflow", "nc6", "tensorflow_experiment"),
    "TensorFlow/TensorFlow-GPU/job.json": job_line("tensorflow", "nc6", "tensorflow_experiment"),
}


# -- the host, and `batchai` run in this process as a user who configured only the storage account ---
@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    where = tmp_path_factory.mktemp("recipes")
    (where / "home").mkdir()
    with running_host(where / ".batchai", HOST_ENV):
        yield where


@pytest.fixture
def batchai(folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Batchai:
    """`batchai ARGS...` in the host's folder, HOME a temporary folder (for ~/.ssh), the recipes'
    storage account in AZURE_BATCHAI_STORAGE_ACCOUNT/_KEY, and the workspace the 2017 lines lack."""
    monkeypatch.chdir(folder)
    for name in list(os.environ):
        if name.startswith(("BATCHAI_", "AZURE_BATCHAI_")):
            monkeypatch.delenv(name)
    for name, value in {"HOME": str(folder / "home"), "BATCHAI_CONFIG_FILE": str(folder / "cli-config"),
                        "BATCHAI_WORKSPACE": WORKSPACE, "AZURE_BATCHAI_STORAGE_ACCOUNT": ACCOUNT,
                        "AZURE_BATCHAI_STORAGE_KEY": KEY}.items():
        monkeypatch.setenv(name, value)
    return in_process(capsys)


@pytest.fixture(scope="module")
def workspaces(folder: Path) -> None:
    with client(folder) as c:
        for group, workspace in ((GROUP, WORKSPACE), (OLD_GROUP, WORKSPACE), ("demoGroup", "demoWorkspace")):
            c.workspaces.create(group, workspace, "eastus")
        for experiment in ("batch_scoring_experiment", "cntk_experiment", "caffe2_experiment", "chainer_experiment",
                           "horovod_experiment", "keras_experiment", "pytorch_experiment", "tensorflow_experiment"):
            c.experiments.create(GROUP, WORKSPACE, experiment)
        c.experiments.create(OLD_GROUP, WORKSPACE, "cntk_experiment")


def cluster_state(folder: Path, group: str, name: str) -> Any:
    with client(folder) as c:
        return c.clusters.get(group, WORKSPACE, name).properties


# -- workspace, experiment, cluster and file-server lines ---------------------------------------------
def test_the_recipes_workspace_and_experiment_lines_are_accepted_as_written(batchai: Batchai,
                                                                           workspaces: None) -> None:
    ok(batchai(*az("az batchai workspace create -g batchai.recipes -n recipe_workspace -l eastus")))
    ok(batchai(*az("az batchai experiment create -g batchai.recipes -w recipe_workspace -n pytorch_experiment")))
    listed = as_json(batchai("experiment", "list", "-g", GROUP, "-w", WORKSPACE, "-o", "json"))
    assert "pytorch_experiment" in [e["name"] for e in listed]


@pytest.mark.parametrize("line", CLUSTER_LINES.values(), ids=CLUSTER_LINES.keys())
def test_every_recipe_cluster_line_is_accepted_as_written(batchai: Batchai, folder: Path, workspaces: None,
                                                         line: str) -> None:
    if "-k ~/.ssh/id_rsa.pub" in line:
        ensure_rsa_key_pair(folder / "home")  # the user of that recipe has a key already
    args = az(line)
    where = args[args.index("-g"):args.index("-g") + 2] + (
        args[args.index("-w"):args.index("-w") + 2] if "-w" in args else [])
    name = args[args.index("-n") + 1]
    if batchai("cluster", "show", *where, "-n", name).code == 0:  # made by another line of the same name
        ok(batchai("cluster", "delete", *where, "-n", name, "-y"))
    ok(batchai(*args))
    props = as_json(batchai("cluster", "show", *where, "-n", name, "-o", "json"))["properties"]
    try:
        account = props["userAccountSettings"]
        if "-p" in args:
            assert account["adminUserName"] == USER and "adminUserSshPublicKey" not in account
            assert PASSWORD not in json.dumps(props)
        else:
            public = (folder / "home" / ".ssh" / "id_rsa.pub").read_text().strip()
            assert account["adminUserSshPublicKey"] == public and public.startswith("ssh-rsa ")
        if "--min" in args:  # --min 2 --max 2 (or 1 and 1): a fixed size, as az made it
            low = int(args[args.index("--min") + 1])
            assert props["scaleSettings"]["manual"]["targetNodeCount"] == low, props["scaleSettings"]
        else:
            target = int(args[args.index("-t") + 1])
            assert props["scaleSettings"]["manual"]["targetNodeCount"] == target
        for share in (props.get("nodeSetup") or {}).get("mountVolumes", {}).get("azureFileShares", []):
            assert share["azureFileUrl"] == f"https://{share['accountName']}.file.core.windows.net/" + (
                args[args.index("--afs-name") + 1])
            assert "accountKey" not in json.dumps(share)
    finally:
        ok(batchai("cluster", "delete", *where, "-n", name, "-y"))


def test_the_documentation_file_server_line_is_accepted_as_written(batchai: Batchai, folder: Path,
                                                                   workspaces: None) -> None:
    ok(batchai(*az(FILE_SERVER_LINE)))
    props = as_json(batchai("file-server", "show", "-g", "demoGroup", "-w", "demoWorkspace", "-n", "demoNFS",
                            "-o", "json"))["properties"]
    assert props["dataDisks"]["diskCount"] == 4 and props["dataDisks"]["diskSizeInGB"] == 1024
    public = (folder / "home" / ".ssh" / "id_rsa.pub").read_text().strip()
    assert props["sshConfiguration"]["userAccountSettings"]["adminUserSshPublicKey"] == public
    ok(batchai("file-server", "delete", "-g", "demoGroup", "-w", "demoWorkspace", "-n", "demoNFS", "-y"))


def test_auto_storage_mounts_a_local_account_on_a_local_host(batchai: Batchai, folder: Path, workspaces: None) -> None:
    ok(batchai("cluster", "create", "-g", "demoGroup", "-w", "demoWorkspace", "-n", "auto", "-s", "Standard_NC6",
               "-t", "0", "--use-auto-storage", "--generate-ssh-keys"))
    volumes = as_json(batchai("cluster", "show", "-g", "demoGroup", "-w", "demoWorkspace", "-n", "auto",
                              "-o", "json"))["properties"]["nodeSetup"]["mountVolumes"]
    share, container = volumes["azureFileShares"][0], volumes["azureBlobFileSystems"][0]
    assert share["azureFileUrl"].endswith(".file.core.windows.net/batchaishare")
    assert share["relativeMountPath"] == "autoafs"
    assert (container["containerName"], container["relativeMountPath"]) == ("batchaicontainer", "autobfs")
    assert share["accountName"] == container["accountName"] != ACCOUNT  # its own account, not the one configured
    ok(batchai("cluster", "delete", "-g", "demoGroup", "-w", "demoWorkspace", "-n", "auto", "-y"))


# -- every job file ---------------------------------------------------------------------------------
@pytest.fixture
def queued_only(batchai: Batchai, folder: Path, workspaces: None) -> None:
    """The recipes' clusters with 0 nodes: jobs made there stay queued (nothing of theirs runs here)."""
    for group, name, flags in ((GROUP, "nc6", []), (GROUP, "nc24r", []),
                               (OLD_GROUP, "nc6", ["--afs-name", "batchaisample", "--afs-mount-path", "external"])):
        shown = batchai("cluster", "show", "-g", group, "-n", name, "-o", "json")
        if shown.code != 0:
            ok(batchai("cluster", "create", "-g", group, "-n", name, "-s", "Standard_NC6", "-t", "0", *flags))
        elif json.loads(shown.out)["properties"]["scaleSettings"].get("manual", {}).get("targetNodeCount") != 0:
            ok(batchai("cluster", "resize", "-g", group, "-n", name, "-t", "0"))
        wait_until(f"{name} without nodes", lambda: cluster_state(folder, group, name).current_node_count == 0,
                   timeout=60)


def expected_back(properties: dict[str, Any]) -> dict[str, Any]:
    """What GET must give back of a job file: everything, with the storage account in place of its
    placeholder and filled in where az filled it in (accountName); keys are never given back."""
    text = json.dumps(properties).replace("<AZURE_BATCHAI_STORAGE_ACCOUNT>", ACCOUNT)
    expected = json.loads(text)
    for share in (expected.get("mountVolumes") or {}).get("azureFileShares", []):
        share.setdefault("accountName", ACCOUNT)
    return expected


def differences(expected: Any, actual: Any, where: str = "properties") -> list[str]:
    """Where `actual` does not hold `expected` exactly (same names, same casing, same values)."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where}: {actual!r} is not an object"]
        return [d for key, value in expected.items()
                for d in (differences(value, actual[key], f"{where}.{key}") if key in actual
                          else [f"{where}.{key} missing (the file gave {value!r})"])]
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{where}: {actual!r} is not {expected!r}"]
        return [d for i, (e, a) in enumerate(zip(expected, actual, strict=True))
                for d in differences(e, a, f"{where}[{i}]")]
    return [] if expected == actual else [f"{where}: {actual!r} given back for {expected!r}"]


@pytest.mark.parametrize(("path", "line"), JOBS.items(), ids=[p.rsplit("/", 2)[-2] + "/" + p.rsplit("/", 1)[-1]
                                                               for p in JOBS])
def test_every_recipe_job_file_is_accepted_and_given_back_faithfully(batchai: Batchai, folder: Path, queued_only: None,
                                                                      path: str, line: str) -> None:
    args = az(line)
    name, experiment, group = (args[args.index(flag) + 1] for flag in ("-n", "-e", "-g"))
    where = ["-g", group, "-w", WORKSPACE, "-e", experiment]
    if batchai("job", "show", *where, "-n", name).code == 0:
        ok(batchai("job", "delete", *where, "-n", name, "-y"))
    shutil.copy(RECIPES / path, folder / "job.json")
    created = batchai(*args)
    assert created.code == 0, created.out + created.err
    got = as_json(batchai("job", "show", *where, "-n", name, "-o", "json"))["properties"]
    try:
        file = json.loads((RECIPES / path).read_text())["properties"]
        assert differences(expected_back(file), got) == []
        assert got["cluster"]["id"].endswith(f"/resourceGroups/{group}/providers/Microsoft.BatchAI/workspaces/"
                                             f"{WORKSPACE}/clusters/{args[args.index('-c') + 1]}")
        assert KEY not in json.dumps(got)
    finally:
        ok(batchai("job", "delete", *where, "-n", name, "-y"))


# -- four recipes run on two local nodes -------------------------------------------------------------
STAND_INS = {  # where the recipe's job file looks for its script: the stand-in put there
    "tensorflow/mnist_replica.py": "recipe_tf_replica.py",
    "pytorch/mnist_trainer.py": "recipe_pytorch_trainer.py",
    "horovod/pytorch_mnist.py": "recipe_mpi_rank.py",
    "chainer/train_mnist.py": "recipe_mpi_rank.py",
}


@pytest.fixture
def two_nodes(batchai: Batchai, folder: Path, workspaces: None) -> Path:
    """nc6 with 2 nodes (the recipes' own line when it is not there yet), and the stand-in scripts on
    the recipes' `scripts` share (locally a folder of the host's storage). The share's folder."""
    if batchai("cluster", "show", "-g", GROUP, "-w", WORKSPACE, "-n", "nc6").code != 0:
        ok(batchai(*az(CLUSTER_LINES["nc6 -t 2"])))
    else:
        ok(batchai("cluster", "resize", "-g", GROUP, "-w", WORKSPACE, "-n", "nc6", "-t", "2"))
    scripts = folder / ".batchai" / "storage" / "fileshares" / ACCOUNT / "scripts"
    for target, source in STAND_INS.items():
        (scripts / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SCRIPTS / source, scripts / target)
        shutil.copy(SCRIPTS / "contract.py", (scripts / target).parent / "contract.py")
    with client(folder) as c:
        wait_until("2 idle nodes on nc6", lambda: (
            (c.clusters.get(GROUP, WORKSPACE, "nc6").properties.node_state_counts.idle_node_count or 0) == 2),
            timeout=60)
    return scripts


def without_a_container(path: str) -> dict[str, Any]:
    """The recipe's job file as a user without Docker runs it: no containerSettings, no preparation
    meant for the image (`apt install ...; pip install horovod`), and PATH leading to this Python."""
    config = json.loads((RECIPES / path).read_text())
    props = config["properties"]
    props.pop("containerSettings")
    props.pop("jobPreparation", None)
    path_value = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    props["environmentVariables"] = [{"name": "PATH", "value": path_value}]
    return config


RUNS = {  # job file: (what its recipe's `job file stream` line must show, the lines of the other ranks too)
    "TensorFlow/TensorFlow-GPU-Distributed/job.json": ("stdout-wk-0.txt", ["worker 0 ok: master of "]),
    "PyTorch/PyTorch-GPU-Distributed-Gloo/job.json": ("stdout-0.txt", ["rank 0 of 2 over gloo: sum 1, 10 epochs"]),
    "Horovod/Horovod-PyTorch/job.json": ("stdout.txt", ["pytorch_mnist.py rank 0 of 2 ok",
                                                        "pytorch_mnist.py rank 1 of 2 ok"]),
    "Chainer/Chainer-GPU-Distributed/job.json": ("stdout.txt", ["train_mnist.py rank 0 of 2 ok: -g -o /",
                                                                "train_mnist.py rank 1 of 2 ok: -g -o /"]),
}


@pytest.mark.parametrize("path", RUNS, ids=[p.split("/")[1] for p in RUNS])
def test_a_recipe_runs_on_two_nodes_and_its_lines_show_what_it_did(batchai: Batchai, folder: Path, two_nodes: Path,
                                                                   path: str) -> None:
    stream_file, expected_lines = RUNS[path]
    args = az(JOBS[path])
    name, experiment = args[args.index("-n") + 1], args[args.index("-e") + 1]
    where = ["-g", GROUP, "-w", WORKSPACE, "-e", experiment]
    if batchai("job", "show", *where, "-n", name).code == 0:
        ok(batchai("job", "delete", *where, "-n", name, "-y"))
    (folder / "job.json").write_text(json.dumps(without_a_container(path)))
    ok(batchai(*args))
    waited = batchai("job", "wait", *where, "-n", name, "--interval", "0.5", "--timeout", "180")
    if waited.code != 0:
        files = as_json(batchai("job", "file", "list", "-j", name, *where, "-o", "json"))
        with client(folder) as c:
            logs = {f["name"]: c.download(f["downloadUrl"]).decode(errors="replace") for f in files
                    if f.get("downloadUrl")}
        pytest.fail(f"{name} did not succeed: {waited.out}{waited.err}\n{json.dumps(logs, indent=1)}")

    # the recipe's `az batchai job file stream -j <job> -g batchai.recipes -w recipe_workspace -e <exp> -f <file>`
    streamed = ok(batchai(*az(f"az batchai job file stream -j {name} -g batchai.recipes -w recipe_workspace "
                              f"-e {experiment} -f {stream_file}")))
    for line in expected_lines:
        assert line in streamed, streamed
    # and its `az batchai job show -n <job> ... --query jobOutputDirectoryPathSegment`
    segment = json.loads(ok(batchai(*az(f"az batchai job show -n {name} -g batchai.recipes -w recipe_workspace "
                                        f"-e {experiment} --query jobOutputDirectoryPathSegment"))))
    job = as_json(batchai("job", "show", *where, "-n", name, "-o", "json"))
    assert segment == job["properties"]["jobOutputDirectoryPathSegment"] and f"/jobs/{name}/" in segment
    left = {"TensorFlow": {"model.ckpt-0", "model.ckpt-1"}, "Chainer": {"model.npz"}}.get(path.split("/")[0])
    if left:  # what the stand-ins left where the recipe's arguments (-o, --checkpoint_dir) told them
        model = {f["name"] for f in as_json(batchai("job", "file", "list", "-j", name, *where, "-d", "MODEL",
                                                    "-o", "json"))}
        assert left <= model, model


def test_a_recipe_job_in_a_container_fails_at_once_on_a_node_without_one(batchai: Batchai, folder: Path,
                                                                          two_nodes: Path) -> None:
    """Chainer-GPU-Distributed-Infiniband as written: its image, and a preparation script (here a
    stand-in that leaves a mark) meant to run in that image."""
    path = "Chainer/Chainer-GPU-Distributed-Infiniband/job.json"
    (two_nodes / "chainer" / "jobprep.sh").write_text("touch $AZ_BATCHAI_JOB_MOUNT_ROOT/logs/prepared-on-the-node\n")
    marker = two_nodes.parent / "logs" / "prepared-on-the-node"
    args = az(JOBS[path])
    name, experiment = args[args.index("-n") + 1], args[args.index("-e") + 1]
    where = ["-g", GROUP, "-w", WORKSPACE, "-e", experiment]
    if batchai("cluster", "show", "-g", GROUP, "-w", WORKSPACE, "-n", "nc24r").code != 0:
        ok(batchai(*az(CLUSTER_LINES["nc24r"])))
    else:
        ok(batchai("cluster", "resize", "-g", GROUP, "-w", WORKSPACE, "-n", "nc24r", "-t", "2"))
    try:
        if batchai("job", "show", *where, "-n", name).code == 0:
            ok(batchai("job", "delete", *where, "-n", name, "-y"))
        shutil.copy(RECIPES / path, folder / "job.json")
        ok(batchai(*args))
        waited = batchai("job", "wait", *where, "-n", name, "--interval", "0.5", "--timeout", "90")
        assert waited.code == 1, waited.out + waited.err
        info = as_json(batchai("job", "show", *where, "-n", name, "-o", "json"))["properties"]["executionInfo"]
        error = info["errors"][0]
        assert error["code"] == "ContainerUnavailable", error
        assert "batchaitraining/chainermn:IntelMPI" in error["message"], error
        started, ended = (info[k] for k in ("startTime", "endTime"))
        assert started <= ended
        assert not marker.exists(), "the preparation meant for the image ran on the node"
        files = {f["name"] for f in as_json(batchai("job", "file", "list", "-j", name, *where, "-o", "json"))}
        assert not any(f.startswith("stdout-job_prep") for f in files), files
    finally:
        ok(batchai("cluster", "resize", "-g", GROUP, "-w", WORKSPACE, "-n", "nc24r", "-t", "0"))
