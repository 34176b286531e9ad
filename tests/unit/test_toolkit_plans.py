"""node_bootstrap/toolkits.py: what each node starts for each toolkit, per reference/ENVIRONMENT.md.
Pure, so every rule is checked here in milliseconds (tests/integration/test_mpirun_local.py runs a
planned mpirun for real)."""

from __future__ import annotations

import json
import re
import shlex
import subprocess

import pytest

from node_bootstrap import toolkits
from node_bootstrap.toolkits import NodePlan, ProcessSpec
from shared.models import ContainerSettings, ImageSourceRegistry, JobBaseProperties, TensorFlowSettings
from shared.models.agent import AssignedNode
from shared.models.common import REDACTED

SEED = "job#1"
PORT = 24855  # toolkits.base_port(SEED): pinned, so a change of the port rule shows here
CLUSTER = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.BatchAI/workspaces/ws/clusters/c"
NAMES = ["AZ_BATCHAI_JOB_TEMP", "AZ_BATCHAI_MPI_HOST_FILE", "TOKEN"]
VM_FLAGS = "--hostfile $AZ_BATCHAI_MPI_HOST_FILE"


def assigned(wire: list[dict[str, str]]) -> list[AssignedNode]:
    return [AssignedNode.model_validate(node) for node in wire]


def nodes(count: int) -> list[AssignedNode]:
    return assigned([{"nodeId": f"n{i}", "address": f"10.0.0.{4 + i}"} for i in range(count)])


NODES = nodes(2)


def spec(wire: dict) -> JobBaseProperties:
    """A job's properties as a node reads them from its assignment."""
    given = {"cluster": {"id": CLUSTER}, "stdOutErrPathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/logs", **wire}
    return JobBaseProperties.model_validate_json(json.dumps(given), context=REDACTED)


def container(wire: dict) -> ContainerSettings:
    return ContainerSettings.model_validate_json(json.dumps(wire), context=REDACTED)


def plan(toolkit: str, settings: dict, me: str = "n0", *, node_list: list | None = None, local: bool = False,
         env_names: list[str] | None = None, as_root: bool | None = True, **props: object) -> NodePlan:
    node_list = node_list or NODES
    job = spec({"nodeCount": len(node_list), toolkit: settings, **props})
    return toolkits.plan(job, node_list, me, SEED, local=local, rsh_agent="/opt/agent.sh" if local else "",
                         env_names=NAMES if env_names is None else env_names, as_root=as_root)


def every_node(toolkit: str, settings: dict, count: int = 2, **kwargs: object) -> list[NodePlan]:
    return [plan(toolkit, settings, f"n{i}", node_list=nodes(count), **kwargs) for i in range(count)]


def only(result: NodePlan) -> ProcessSpec:
    [process] = result.processes
    return process


# -- custom ---------------------------------------------------------------------------------------
def test_custom_runs_its_command_line_once_on_the_master_and_nothing_elsewhere() -> None:
    master, other = every_node("customToolkitSettings", {"commandLine": "echo $AZ_BATCHAI_JOB_TEMP | wc -c"})
    assert master.processes == [ProcessSpec("echo $AZ_BATCHAI_JOB_TEMP | wc -c", role="master")]
    assert other.processes == []
    assert master.hostfile == other.hostfile == "10.0.0.4 slots=1\n10.0.0.5 slots=1\n"
    assert master.job_env == {}


# -- mpirun ---------------------------------------------------------------------------------------
MPI_TOOLKITS = [
    ("customMpiSettings", {"commandLine": "python3 $AZ_BATCHAI_INPUT_S/a.py"}, "python3 $AZ_BATCHAI_INPUT_S/a.py"),
    ("horovodSettings", {"pythonScriptFilePath": "$AFS/hvd.py", "commandLineArgs": "--lr 0.1"},
     "python3 $AFS/hvd.py --lr 0.1"),
    ("chainerSettings", {"pythonScriptFilePath": "$AFS/mn.py", "commandLineArgs": "-g 0"}, "python3 $AFS/mn.py -g 0"),
    ("cntkSettings", {"configFilePath": "$AFS/a.cntk", "commandLineArgs": "x=1"}, "cntk configFile=$AFS/a.cntk x=1"),
    ("cntkSettings", {"languageType": "Python", "pythonScriptFilePath": "$AFS/c.py"}, "python3 $AFS/c.py"),
    ("cntkSettings", {"pythonScriptFilePath": "$AFS/k.py"}, "python3 $AFS/k.py"),  # Keras-CNTK: no languageType
]


@pytest.mark.parametrize(("toolkit", "settings", "program"), MPI_TOOLKITS)
def test_mpi_toolkits_run_one_mpirun_on_the_master_with_process_count_ranks(toolkit: str, settings: dict,
                                                                           program: str) -> None:
    master, other = every_node(toolkit, {**settings, "processCount": 4})
    assert only(master).command == (f"mpirun {VM_FLAGS} -np 4 --bind-to none --allow-run-as-root "
                                    f"-x AZ_BATCHAI_JOB_TEMP -x AZ_BATCHAI_MPI_HOST_FILE -x TOKEN {program}")
    assert only(master).role == "mpirun" and only(master).decisive and only(master).env == {}
    assert other.processes == []
    assert master.hostfile == other.hostfile == "10.0.0.4 slots=2\n10.0.0.5 slots=2\n"


@pytest.mark.parametrize(("toolkit", "settings", "program"), MPI_TOOLKITS)
def test_process_count_defaults_to_the_node_count(toolkit: str, settings: dict, program: str) -> None:
    master = plan(toolkit, settings, node_list=nodes(3))
    assert " -np 3 " in only(master).command and master.hostfile.count(" slots=1\n") == 3


def test_process_count_falls_back_to_the_node_list_without_a_node_count() -> None:
    job = JobBaseProperties.model_construct(node_count=None, custom_mpi_settings=spec(
        {"nodeCount": 1, "customMpiSettings": {"commandLine": "x"}}).custom_mpi_settings.model_copy(
        update={"process_count": None}))  # neither count given: not a job the service makes, but the rule holds
    [mpirun] = toolkits.plan(job, NODES, "n0", SEED, local=False, rsh_agent="", as_root=False).processes
    assert " -np 2 " in mpirun.command


@pytest.mark.parametrize(("count", "slots"), [(1, 1), (2, 1), (3, 2), (5, 3), (8, 4)])
def test_hostfile_slots_are_the_ranks_per_node_rounded_up(count: int, slots: int) -> None:
    result = plan("customMpiSettings", {"commandLine": "x", "processCount": count})
    assert result.hostfile == f"10.0.0.4 slots={slots}\n10.0.0.5 slots={slots}\n"


def test_mpirun_passes_variable_names_and_never_their_values() -> None:
    names = ["TOKEN", "AZ_BATCHAI_JOB_TEMP", "TOKEN", "BASH_FUNC_x%%", "A=B", "PATH"]
    command = only(plan("customMpiSettings", {"commandLine": "run"}, env_names=names)).command
    assert command.endswith(" -x TOKEN -x AZ_BATCHAI_JOB_TEMP -x PATH run")  # once each, in order
    assert "%" not in command and "A=B" not in command  # not names a shell can expand: left out
    assert command.count("=") == 0  # no NAME=value anywhere


def test_mpirun_in_the_local_pool_reaches_loopback_nodes_through_the_rsh_agent_over_tcp() -> None:
    local = assigned([{"nodeId": "a", "address": "127.0.0.2"}, {"nodeId": "b", "address": "127.0.0.3"}])
    result = toolkits.plan(spec({"nodeCount": 2, "customMpiSettings": {"commandLine": "run", "processCount": 4}}), local,
                           "a", SEED, local=True, rsh_agent="/my dir/local_rsh.sh", env_names=["TOKEN"],
                           as_root=False)
    assert only(result).command == (
        f"mpirun {VM_FLAGS} -np 4 --bind-to none --mca plm_rsh_agent '/my dir/local_rsh.sh' --mca btl tcp,self "
        "--mca btl_tcp_if_include lo --oversubscribe -x TOKEN run")
    assert result.hostfile == "127.0.0.2 slots=2\n127.0.0.3 slots=2\n"
    argv = shlex.split(only(result).command)
    assert argv[argv.index("plm_rsh_agent") + 1] == "/my dir/local_rsh.sh"


def test_vm_mpirun_has_no_local_pool_flags_and_root_flag_only_for_root(monkeypatch: pytest.MonkeyPatch) -> None:
    command = only(plan("customMpiSettings", {"commandLine": "run"}, as_root=False)).command
    assert command == f"mpirun {VM_FLAGS} -np 2 --bind-to none -x AZ_BATCHAI_JOB_TEMP -x AZ_BATCHAI_MPI_HOST_FILE " \
                      "-x TOKEN run"
    monkeypatch.setattr(toolkits.os, "geteuid", lambda: 0)
    assert "--allow-run-as-root" in only(plan("customMpiSettings", {"commandLine": "run"}, as_root=None)).command
    monkeypatch.setattr(toolkits.os, "geteuid", lambda: 1000)
    assert "--allow-run-as-root" not in only(plan("customMpiSettings", {"commandLine": "run"}, as_root=None)).command


@pytest.mark.parametrize("toolkit", ["horovodSettings", "chainerSettings"])
def test_python_interpreter_path_overrides_the_nodes_python(toolkit: str) -> None:
    settings = {"pythonScriptFilePath": "t.py", "pythonInterpreterPath": "/opt/conda/bin/python"}
    assert only(plan(toolkit, settings)).command.endswith(" -x TOKEN /opt/conda/bin/python t.py")
    job = spec({"nodeCount": 1, toolkit: {"pythonScriptFilePath": "t.py"}})
    [mpirun] = toolkits.plan(job, NODES[:1], "n0", SEED, local=False, rsh_agent="a", python="/usr/bin/python3.11",
                             as_root=False).processes
    assert mpirun.command.endswith(" /usr/bin/python3.11 t.py")


# -- CNTK -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("language", [None, "BrainScript", "brainscript"])
def test_cntk_brainscript_is_the_default(language: str | None) -> None:
    settings = {"configFilePath": "$AFS/m.cntk", "commandLineArgs": "a=1 b=$X"}
    if language:
        settings["languageType"] = language
    assert only(plan("cntkSettings", settings)).command.endswith(" -x TOKEN cntk configFile=$AFS/m.cntk a=1 b=$X")


@pytest.mark.parametrize("language", ["Python", "python", None])
def test_cntk_python_runs_the_script(language: str | None) -> None:
    settings = {"languageType": language, "pythonScriptFilePath": "$AFS/c.py", "commandLineArgs": "--e 2",
                "pythonInterpreterPath": "/py", "processCount": 3}
    command = only(plan("cntkSettings", settings)).command
    assert " -np 3 " in command and command.endswith(" -x TOKEN /py $AFS/c.py --e 2")


# -- Caffe ----------------------------------------------------------------------------------------
def test_caffe_with_one_process_runs_caffe_train_on_the_master_without_mpirun() -> None:
    settings = {"configFilePath": "$AFS/solver.prototxt", "commandLineArgs": "-gpu all"}
    master = plan("caffeSettings", settings, node_list=nodes(1))
    assert only(master) == ProcessSpec("caffe train --solver=$AFS/solver.prototxt -gpu all", role="master")
    master, other = every_node("caffeSettings", {**settings, "processCount": 1})
    assert only(master).command == "caffe train --solver=$AFS/solver.prototxt -gpu all" and other.processes == []
    assert master.hostfile == "10.0.0.4 slots=1\n10.0.0.5 slots=1\n"


def test_caffe_python_with_one_process_runs_the_script() -> None:
    settings = {"pythonScriptFilePath": "$AFS/c.py", "commandLineArgs": "1", "pythonInterpreterPath": "/py"}
    assert only(plan("caffeSettings", settings, node_list=nodes(1))).command == "/py $AFS/c.py 1"


def test_caffe_with_several_processes_runs_under_mpirun() -> None:
    master, other = every_node("caffeSettings", {"configFilePath": "s.prototxt", "processCount": 4})
    assert only(master).role == "mpirun" and " -np 4 " in only(master).command
    assert only(master).command.endswith(" -x TOKEN caffe train --solver=s.prototxt") and other.processes == []
    assert master.hostfile == "10.0.0.4 slots=2\n10.0.0.5 slots=2\n"
    python = only(plan("caffeSettings", {"pythonScriptFilePath": "c.py", "processCount": 2}))
    assert python.command.startswith("mpirun ") and python.command.endswith(" -x TOKEN python3 c.py")


def test_caffe_process_count_defaults_to_the_node_count_so_two_nodes_mean_mpirun() -> None:
    command = only(plan("caffeSettings", {"configFilePath": "s.prototxt"})).command
    assert command.startswith("mpirun ") and " -np 2 " in command


# -- Caffe2 ---------------------------------------------------------------------------------------
def test_caffe2_runs_one_process_per_node_with_the_nodes_index() -> None:
    settings = {"pythonScriptFilePath": "$AFS/c2.py", "commandLineArgs": "--shared $AZ_BATCHAI_SHARED_JOB_TEMP"}
    plans = every_node("caffe2Settings", settings, 3)
    assert [only(p).env for p in plans] == [{"AZ_BATCHAI_TASK_INDEX": str(i)} for i in range(3)]
    assert {only(p).command for p in plans} == {"python3 $AFS/c2.py --shared $AZ_BATCHAI_SHARED_JOB_TEMP"}
    assert all(only(p).decisive for p in plans)
    assert [only(p).task for p in plans] == ["0", "1", "2"]  # stderr-0.txt, as the Caffe2 recipe streams
    assert plans[0].hostfile == "10.0.0.4 slots=1\n10.0.0.5 slots=1\n10.0.0.6 slots=1\n"


# -- PyTorch --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("count", "node_count", "spread"), [
    (None, 2, [[0], [1]]),  # processCount defaults to nodeCount
    (4, 2, [[0, 1], [2, 3]]),
    (5, 2, [[0, 1, 2], [3, 4]]),
    (3, 2, [[0, 1], [2]]),
    (3, 4, [[0], [1], [2], []]),
    (7, 3, [[0, 1, 2], [3, 4, 5], [6]]),
])
def test_pytorch_spreads_ranks_in_contiguous_blocks(count: int | None, node_count: int, spread: list) -> None:
    settings = {"pythonScriptFilePath": "t.py", "commandLineArgs": "--rank $AZ_BATCHAI_TASK_INDEX"}
    if count:
        settings["processCount"] = count
    plans = every_node("pyTorchSettings", settings, node_count)
    assert [[int(p.env["AZ_BATCHAI_TASK_INDEX"]) for p in result.processes] for result in plans] == spread
    assert [[p.role for p in result.processes] for result in plans] == [[f"rank {r}" for r in s] for s in spread]
    assert {p.command for result in plans for p in result.processes} == {"python3 t.py --rank $AZ_BATCHAI_TASK_INDEX"}
    assert {json.dumps(result.job_env) for result in plans} == {json.dumps(
        {"AZ_BATCHAI_PYTORCH_INIT_METHOD": f"tcp://10.0.0.4:{PORT}", "AZ_BATCHAI_PYTORCH_BACKEND": "gloo"})}
    # ENVIRONMENT.md "Per-task log files": each process writes stdout-<rank>.txt / stderr-<rank>.txt
    assert [[p.task for p in result.processes] for result in plans] == [[str(r) for r in s] for s in spread]


def test_pytorch_rendezvous_port_comes_from_the_seed() -> None:
    assert toolkits.base_port(SEED) == PORT
    other = toolkits.plan(spec({"nodeCount": 2, "pyTorchSettings": {"pythonScriptFilePath": "t.py"}}), NODES, "n1",
                          "job#2", local=False, rsh_agent="a", as_root=False)
    assert other.job_env["AZ_BATCHAI_PYTORCH_INIT_METHOD"] == f"tcp://10.0.0.4:{toolkits.base_port('job#2')}"
    assert toolkits.base_port("job#2") != PORT


@pytest.mark.parametrize("backend", ["MPI", "mpi", "Mpi"])
def test_pytorch_with_the_mpi_backend_runs_under_mpirun_each_rank_knowing_its_index(backend: str) -> None:
    settings = {"pythonScriptFilePath": "$AFS/t.py", "commandLineArgs": "--out $OUT", "processCount": 4,
                "communicationBackend": backend}
    master, other = every_node("pyTorchSettings", settings)
    command = only(master).command
    assert command.startswith(f"mpirun {VM_FLAGS} -np 4 ") and only(master).role == "mpirun"
    assert " -x TOKEN -x AZ_BATCHAI_PYTORCH_INIT_METHOD -x AZ_BATCHAI_PYTORCH_BACKEND bash -c " in command
    assert other.processes == [] and master.hostfile == "10.0.0.4 slots=2\n10.0.0.5 slots=2\n"
    assert master.job_env == {"AZ_BATCHAI_PYTORCH_INIT_METHOD": f"tcp://10.0.0.4:{PORT}",
                              "AZ_BATCHAI_PYTORCH_BACKEND": "mpi"}
    assert only(master).task is None  # mpirun gathers every rank's output into stdout.txt
    rank_program = shlex.split(command)[-1]  # what each rank's bash runs
    assert rank_program == "export AZ_BATCHAI_TASK_INDEX=$OMPI_COMM_WORLD_RANK; exec python3 $AFS/t.py --out $OUT"
    shown = subprocess.run(["bash", "-c", rank_program.replace("python3 $AFS/t.py", "echo $AZ_BATCHAI_TASK_INDEX")],
                           env={"OMPI_COMM_WORLD_RANK": "3", "OUT": "/o"}, capture_output=True, text=True, check=True)
    assert shown.stdout == "3 --out /o\n"


@pytest.mark.parametrize("backend", ["gloo", "TCP", None])
def test_pytorch_other_backends_start_processes_directly(backend: str | None) -> None:
    settings = {"pythonScriptFilePath": "t.py", "communicationBackend": backend}
    assert only(plan("pyTorchSettings", settings)).command == "python3 t.py"


@pytest.mark.parametrize(("backend", "variable"), [
    (None, "gloo"), ("gloo", "gloo"), ("GLOO", "gloo"), ("Gloo", "gloo"), ("TCP", "tcp"), ("nccl", "nccl"),
    ("MPI", "mpi")])
def test_pytorch_backend_variable_is_the_lower_case_backend_gloo_by_default(backend: str | None,
                                                                            variable: str) -> None:
    """ENVIRONMENT.md: the recipe passes `--dist-backend $AZ_BATCHAI_PYTORCH_BACKEND` to torch."""
    settings = {"pythonScriptFilePath": "t.py", "communicationBackend": backend}
    assert {p.job_env["AZ_BATCHAI_PYTORCH_BACKEND"] for p in every_node("pyTorchSettings", settings)} == {variable}


def test_only_pytorch_sets_the_backend_variable() -> None:
    assert "AZ_BATCHAI_PYTORCH_BACKEND" not in plan("horovodSettings", {"pythonScriptFilePath": "t.py"}).job_env


# -- TensorFlow -----------------------------------------------------------------------------------
TF = {"pythonScriptFilePath": "$AFS/tf.py", "masterCommandLineArgs": "--m", "workerCommandLineArgs": "--w",
      "parameterServerCommandLineArgs": "--p"}


def test_tensorflow_one_ps_and_two_workers_on_two_nodes() -> None:
    first, second = every_node("tensorFlowSettings", {**TF, "parameterServerCount": 1, "workerCount": 2})
    cluster = {"ps": [f"10.0.0.4:{PORT + 1}"], "worker": [f"10.0.0.4:{PORT}", f"10.0.0.5:{PORT}"]}
    assert first.job_env == second.job_env == {"AZ_BATCHAI_PS_HOSTS": f"10.0.0.4:{PORT + 1}",
                                               "AZ_BATCHAI_WORKER_HOSTS": f"10.0.0.4:{PORT},10.0.0.5:{PORT}"}
    master, ps = first.processes
    [worker] = second.processes
    assert master.env["TF_CONFIG"] == (
        '{"cluster": {"ps": ["10.0.0.4:24856"], "worker": ["10.0.0.4:24855", "10.0.0.5:24855"]}, '
        '"task": {"type": "master", "index": 0}, "environment": "cloud"}')
    assert worker.env["TF_CONFIG"] == json.dumps(
        {"cluster": cluster, "task": {"type": "worker", "index": 1}, "environment": "cloud"})
    assert ps.env["TF_CONFIG"] == json.dumps(
        {"cluster": cluster, "task": {"type": "ps", "index": 0}, "environment": "cloud"})
    assert [p.env["AZ_BATCHAI_TASK_INDEX"] for p in (master, worker, ps)] == ["0", "1", "0"]
    assert [p.command for p in (master, worker, ps)] == ["python3 $AFS/tf.py --m", "python3 $AFS/tf.py --w",
                                                         "python3 $AFS/tf.py --p"]
    assert [p.decisive for p in (master, worker, ps)] == [True, True, False]
    assert [p.role for p in (master, worker, ps)] == ["master 0", "worker 1", "ps 0"]
    assert [p.task for p in (master, worker, ps)] == ["wk-0", "wk-1", "ps-0"]  # stdout-wk-0.txt ...
    assert first.hostfile == "10.0.0.4 slots=1\n10.0.0.5 slots=1\n"


def test_tensorflow_ports_are_distinct_per_task_on_a_node_and_the_same_on_every_node() -> None:
    plans = every_node("tensorFlowSettings", {**TF, "workerCount": 5, "parameterServerCount": 2}, 3)
    assert len({json.dumps(p.job_env) for p in plans}) == 1
    workers = plans[0].job_env["AZ_BATCHAI_WORKER_HOSTS"].split(",")
    ps = plans[0].job_env["AZ_BATCHAI_PS_HOSTS"].split(",")
    # workers then ps dealt round-robin: w0 w3 ps1 on node 0, w1 w4 on node 1, w2 ps0 on node 2
    assert workers == ["10.0.0.4:24855", "10.0.0.5:24855", "10.0.0.6:24855", "10.0.0.4:24856", "10.0.0.5:24856"]
    assert ps == ["10.0.0.6:24856", "10.0.0.4:24857"]
    assert len(set(workers + ps)) == 7
    assert [[p.role for p in result.processes] for result in plans] == [
        ["master 0", "worker 3", "ps 1"], ["worker 1", "worker 4"], ["worker 2", "ps 0"]]
    for result in plans:  # every task's TF_CONFIG shows the same cluster
        assert {json.dumps(json.loads(p.env["TF_CONFIG"])["cluster"]) for p in result.processes} == {
            json.dumps({"ps": ps, "worker": workers})}


def test_tensorflow_ports_in_the_local_pool_are_distinct_across_the_job() -> None:
    """The local pool's nodes share one machine's ports, and TensorFlow listens on 0.0.0.0."""
    local = assigned([{"nodeId": f"n{i}", "address": f"127.0.0.{2 + i}"} for i in range(2)])
    result = toolkits.plan(spec({"nodeCount": 2, "tensorFlowSettings": {**TF, "parameterServerCount": 1}}), local, "n0",
                           SEED, local=True, rsh_agent="a", as_root=False)
    assert result.job_env == {"AZ_BATCHAI_WORKER_HOSTS": f"127.0.0.2:{PORT},127.0.0.3:{PORT + 1}",
                              "AZ_BATCHAI_PS_HOSTS": f"127.0.0.2:{PORT + 2}"}


@pytest.mark.parametrize(("settings", "node_count", "workers", "ps"), [
    ({}, 2, 2, 1),  # distributed: one ps
    ({}, 1, 1, 0),  # a single worker, no count given: no ps
    ({"workerCount": 1}, 1, 1, 1),  # a workerCount is given for distributed training only
    ({"parameterServerCount": 0}, 2, 2, 0),
    ({"parameterServerCount": 2}, 1, 1, 2),
    ({"workerCount": 4}, 2, 4, 1),
])
def test_tensorflow_counts_and_their_defaults(settings: dict, node_count: int, workers: int, ps: int) -> None:
    given = TensorFlowSettings.model_validate_json(json.dumps(TF)).model_copy(update={
        "worker_count": settings.get("workerCount"), "parameter_server_count": settings.get("parameterServerCount")})
    assert toolkits.tensorflow_counts(given, node_count) == (workers, ps)
    if 0 in settings.values() or ps > node_count:
        return  # a count of 0, more parameter servers than nodes: the service refuses such a job at its creation
    result = plan("tensorFlowSettings", {**TF, **settings}, node_list=nodes(node_count))
    hosts = result.job_env
    assert len([h for h in hosts["AZ_BATCHAI_WORKER_HOSTS"].split(",") if h]) == workers
    assert len([h for h in hosts["AZ_BATCHAI_PS_HOSTS"].split(",") if h]) == ps


def test_tensorflow_single_worker_is_the_master_with_an_empty_ps_list() -> None:
    result = plan("tensorFlowSettings", {"pythonScriptFilePath": "tf.py", "pythonInterpreterPath": "/py"},
                  node_list=nodes(1))
    assert only(result).command == "/py tf.py" and only(result).role == "master 0"
    assert json.loads(only(result).env["TF_CONFIG"]) == {
        "cluster": {"ps": [], "worker": [f"10.0.0.4:{PORT}"]}, "task": {"type": "master", "index": 0},
        "environment": "cloud"}
    assert result.job_env == {"AZ_BATCHAI_PS_HOSTS": "", "AZ_BATCHAI_WORKER_HOSTS": f"10.0.0.4:{PORT}"}
    assert only(result).task == "wk-0"  # the TensorFlow and Keras recipes stream stdout-wk-0.txt


@pytest.mark.parametrize(("toolkit", "settings"), [
    ("customToolkitSettings", {"commandLine": "true"}), ("caffeSettings", {"configFilePath": "s.prototxt"}),
    *[(toolkit, settings) for toolkit, settings, _ in MPI_TOOLKITS]])
def test_custom_one_process_caffe_and_mpirun_write_the_plain_stdout(toolkit: str, settings: dict) -> None:
    assert only(plan(toolkit, settings, node_list=nodes(1))).task is None  # stdout.txt / stderr.txt


def test_mpirun_passes_only_the_variables_its_own_toolkit_adds() -> None:
    assert "AZ_BATCHAI_PS_HOSTS" not in only(plan("customMpiSettings", {"commandLine": "x"})).command


# -- ports ----------------------------------------------------------------------------------------
def test_ports_stay_below_the_ephemeral_range_and_wrap_distinctly() -> None:
    assert all(20000 <= toolkits.base_port(f"s{i}") <= 31999 for i in range(2000))
    high = "s3946"  # its base port is 31997
    assert toolkits.base_port(high) == 31997
    ports = [toolkits.task_port(high, k) for k in range(12768)]
    assert ports[:3] == [31997, 31998, 31999] and ports[770] == 32767 and ports[771] == 20000
    assert len(set(ports)) == 12768 and min(ports) == 20000 and max(ports) == 32767


# -- errors ---------------------------------------------------------------------------------------
def test_a_node_outside_the_job_or_a_job_without_toolkit_is_an_error() -> None:
    with pytest.raises(ValueError, match="not one of the job's nodes"):
        plan("customToolkitSettings", {"commandLine": "x"}, "n9")
    with pytest.raises(ValueError, match="no toolkit"):
        toolkits.plan(JobBaseProperties.model_construct(node_count=1), NODES, "n0", SEED, local=False, rsh_agent="a")


# -- containers -----------------------------------------------------------------------------------
REGISTRY = {"image": "me/train:1", "serverUrl": "registry.example",
            "credentials": {"username": "me", "password": "s3cr3t-pw"}}


def test_the_jobs_container_uses_the_hosts_network_the_jobs_shm_size_and_mounts_and_stays_up() -> None:
    props = container({"shmSize": "2g", "imageSourceRegistry": REGISTRY})
    argv = toolkits.container_start_argv(props, "batchai-x", [("/mnt/x", "/x"), "/jobs/j1"])
    assert argv == ["docker", "run", "--detach", "--rm", "--name", "batchai-x", "--network", "host",
                    "--shm-size", "2g", "-v", "/mnt/x:/x", "-v", "/jobs/j1:/jobs/j1",
                    "--entrypoint", "tail", "me/train:1", "-f", "/dev/null"]
    assert "s3cr3t-pw" not in " ".join(argv)
    assert toolkits.container_remove_argv("batchai-x") == ["docker", "rm", "--force", "batchai-x"]


def test_a_gpu_nodes_container_gets_every_gpu_and_the_launch_scripts_read_only() -> None:
    props = container({"imageSourceRegistry": REGISTRY})
    argv = toolkits.container_start_argv(props, "c", ["/jobs/j1"], read_only=["/agent/container_rsh.sh"], gpus=True)
    assert argv[argv.index("--ipc"):argv.index("--entrypoint")] == [
        "--ipc", "host", "--gpus", "all", "-v", "/jobs/j1:/jobs/j1",
        "-v", "/agent/container_rsh.sh:/agent/container_rsh.sh:ro"]
    assert "--gpus" not in toolkits.container_start_argv(props, "c", [])


def test_the_container_mounts_every_job_folder_at_its_path_once_and_inputs_read_only(tmp_path) -> None:
    node = tmp_path / "node"
    env = {"AZ_BATCHAI_MOUNT_ROOT": f"{node}/mounts", "AZ_BATCHAI_JOB_MOUNT_ROOT": f"{node}/jobs/a-1/mounts",
           "AZ_BATCHAI_JOB_TEMP": f"{node}/jobs/a-1/temp", "AZ_BATCHAI_SHARED_JOB_TEMP": f"{tmp_path}/shared/a-1",
           "AZ_BATCHAI_MPI_HOST_FILE": f"{node}/jobs/a-1/hostfile",
           "AZ_BATCHAI_STDOUTERR_DIR": f"{node}/mounts/afs/seg/stdouterr",  # under the mount root: comes with it
           "AZ_BATCHAI_OUTPUT_MODEL": "/data/out/seg/models", "AZ_BATCHAI_OUTPUT_LOGS": f"{node}/mounts/afs/logs/",
           "AZ_BATCHAI_INPUT_DATA": str(tmp_path), "AZ_BATCHAI_INPUT_GONE": "/no/such/input",
           "AZ_BATCHAI_JOB_TEMP_DIR": f"{node}/jobs", "SECRET": "/not/a/job/folder"}
    writable = ["/data/out/seg/models", f"{node}/jobs/a-1/hostfile", f"{node}/jobs/a-1/mounts",
                f"{node}/jobs/a-1/temp", f"{node}/mounts", f"{tmp_path}/shared/a-1"]
    assert toolkits.container_mounts(env) == (writable, [str(tmp_path)])  # an input outside them: read-only
    env["AZ_BATCHAI_INPUT_DATA"] = f"{node}/mounts"
    assert toolkits.container_mounts(env) == (writable, [])  # an input in a mounted folder comes with it


def test_mpirun_in_the_masters_container_starts_the_others_daemons_through_the_container_agent() -> None:
    agent = toolkits.container_rsh_agent("/agent/container_rsh.sh", SEED, NODES, ssh_user="batchai",
                                         ssh_key="/home/batchai/.ssh/id_ed25519")
    job = spec({"nodeCount": 2, "customMpiSettings": {"commandLine": "python3 t.py", "processCount": 4}})
    plans = [toolkits.plan(job, NODES, me, SEED, local=False, rsh_agent=agent, env_names=["TOKEN"], as_root=True,
                           in_container=True) for me in ("n0", "n1")]
    assert plans[1].processes == []
    assert only(plans[0]).command == (
        "mpirun --hostfile $AZ_BATCHAI_MPI_HOST_FILE -np 4 --bind-to none --allow-run-as-root "
        f"--mca plm_rsh_agent '{agent}' --mca plm_rsh_no_tree_spawn 1 -x TOKEN python3 t.py")
    names = [toolkits.container_name(SEED, node) for node in ("n0", "n1")]
    assert agent.split() == ["/agent/container_rsh.sh", "--containers", f"10.0.0.4={names[0]},10.0.0.5={names[1]}",
                             "--ssh-user", "batchai", "--ssh-key", "/home/batchai/.ssh/id_ed25519"]
    local = toolkits.container_rsh_agent("/agent/container_rsh.sh", SEED, NODES, local_rsh="/agent/local_rsh.sh")
    assert local.split()[3:] == ["--local", "/agent/local_rsh.sh"]
    with pytest.raises(ValueError, match="spaces"):
        toolkits.container_rsh_agent("/my agent/container_rsh.sh", SEED, NODES, ssh_user="u")


def test_the_jobs_container_without_a_shm_size_shares_the_hosts_ipc() -> None:
    props = container({"imageSourceRegistry": {"image": "ubuntu"}})
    argv = toolkits.container_start_argv(props, "c", [])
    assert argv[argv.index("--network"):] == ["--network", "host", "--ipc", "host", "--entrypoint", "tail", "ubuntu",
                                              "-f", "/dev/null"]


def test_container_names_differ_per_attempt_and_node_and_suit_docker() -> None:
    names = {toolkits.container_name(seed, node) for seed in ("s/j/u#1", "s/j/u#2") for node in ("n0", "n1")}
    assert len(names) == 4 and all(re.fullmatch(r"batchai-[0-9a-f]{20}", n) for n in names)


def test_a_command_runs_in_the_container_as_a_bash_line_that_expands_only_the_working_folder() -> None:
    command = toolkits.container_exec_command("batchai-x", "python3 'a b.py' $A", ["A", "B", "A", "C=1"])
    assert command == ("docker exec -e A -e B -w \"$AZ_BATCHAI_JOB_TEMP\" batchai-x bash -c "
                       "'python3 '\"'\"'a b.py'\"'\"' $A'")
    shown = subprocess.run(["bash", "-c", "printf '%s\\n' " + command], env={"AZ_BATCHAI_JOB_TEMP": "/t"},
                           capture_output=True, text=True, check=True)
    assert shown.stdout.splitlines() == ["docker", "exec", "-e", "A", "-e", "B", "-w", "/t", "batchai-x", "bash", "-c",
                                         "python3 'a b.py' $A"]


def registry(wire: dict) -> ImageSourceRegistry:
    return ImageSourceRegistry.model_validate_json(json.dumps(wire), context=REDACTED)


def test_docker_login_keeps_the_password_off_the_command_line() -> None:
    argv = toolkits.docker_login_command(registry(REGISTRY))
    assert argv == ["docker", "login", "--username", "me", "--password-stdin", "registry.example"]
    assert toolkits.registry_password(registry(REGISTRY)) == "s3cr3t-pw"
    assert toolkits.docker_login(container({"imageSourceRegistry": REGISTRY})) == (argv, "s3cr3t-pw")
    docker_hub = registry({"image": "me/x", "credentials": {"username": "me", "password": "p"}})
    assert toolkits.docker_login_command(docker_hub) == ["docker", "login", "--username", "me", "--password-stdin"]
    assert toolkits.docker_login_command(registry({"image": "ubuntu"})) is None
    assert toolkits.docker_login(container({"imageSourceRegistry": {"image": "ubuntu"}})) is None
    assert toolkits.docker_login(None) is None


def test_a_container_job_without_docker_gets_a_clear_message() -> None:
    props = container({"imageSourceRegistry": {"image": "me/train:1"}})
    message = toolkits.container_unavailable_message(props, docker_present=False)
    assert message is not None and "me/train:1" in message and "Docker" in message
    assert toolkits.container_unavailable_message(props, docker_present=True) is None
    assert toolkits.container_unavailable_message(None, docker_present=False) is None


def test_mpirun_on_vms_reaches_the_other_nodes_with_ssh_and_the_cluster_key() -> None:
    from shared.node_boot import MPI_RSH_AGENT

    result = toolkits.plan(spec({"nodeCount": 2, "customMpiSettings": {"commandLine": "run", "processCount": 2}}), NODES,
                           "n0", SEED, local=False, rsh_agent=MPI_RSH_AGENT, env_names=[], as_root=True)
    argv = shlex.split(only(result).command)
    assert argv[argv.index("plm_rsh_agent") + 1] == MPI_RSH_AGENT
    assert "btl_tcp_if_include" not in argv and "--oversubscribe" not in argv  # real hosts, real interfaces
