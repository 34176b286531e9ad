"""What each node starts for each toolkit (node_bootstrap/toolkits.py): pure, so every rule of
ENVIRONMENT.md is checked here in milliseconds; tests/e2e/test_toolkits.py runs them for real."""

from __future__ import annotations

import json

import pytest

from node_bootstrap import toolkits

NODES = [{"nodeId": "n0", "address": "10.0.0.4"}, {"nodeId": "n1", "address": "10.0.0.5"}]


def plan(props: dict, me: str = "n0", *, local: bool = False, nodes: list | None = None) -> toolkits.NodePlan:
    return toolkits.plan(props, nodes or NODES, me, "job#1", local=local, rsh_agent="/agent.sh",
                         env_names=["AZ_BATCHAI_JOB_TEMP", "TOKEN"], as_root=True)


def test_custom_runs_once_on_the_master_and_holds_the_other_nodes() -> None:
    props = {"customToolkitSettings": {"commandLine": "echo $X"}}
    assert [p.command for p in plan(props).processes] == ["echo $X"]
    assert plan(props, "n1").processes == []
    assert plan(props).hostfile == "10.0.0.4 slots=1\n10.0.0.5 slots=1\n"


def test_mpirun_passes_variable_names_never_values_and_spreads_slots() -> None:
    result = plan({"customMpiSettings": {"commandLine": "python3 a.py", "processCount": 4}})
    [mpirun] = result.processes
    assert mpirun.command.startswith("mpirun --hostfile $AZ_BATCHAI_MPI_HOST_FILE -np 4 ")
    assert "-x AZ_BATCHAI_JOB_TEMP -x TOKEN" in mpirun.command and mpirun.command.endswith(" python3 a.py")
    assert "--allow-run-as-root" in mpirun.command and "plm_rsh_agent" not in mpirun.command
    assert result.hostfile == "10.0.0.4 slots=2\n10.0.0.5 slots=2\n"
    assert plan({"customMpiSettings": {"commandLine": "x"}}, "n1").processes == []


def test_local_mpirun_reaches_loopback_nodes_through_the_rsh_agent_over_tcp() -> None:
    [mpirun] = plan({"customMpiSettings": {"commandLine": "x"}}, local=True).processes
    assert "--mca plm_rsh_agent /agent.sh --mca btl tcp,self" in mpirun.command
    assert " -np 2 " in mpirun.command  # processCount defaults to nodeCount


@pytest.mark.parametrize("key", ["horovodSettings", "chainerSettings"])
def test_horovod_and_chainer_run_the_python_script_under_mpirun(key: str) -> None:
    props = {key: {"pythonScriptFilePath": "$AFS/train.py", "commandLineArgs": "--lr 0.1", "processCount": 3,
                   "pythonInterpreterPath": "/opt/py/bin/python"}}
    [mpirun] = plan(props).processes
    assert mpirun.command.endswith(" -x TOKEN /opt/py/bin/python $AFS/train.py --lr 0.1") and " -np 3 " in mpirun.command


def test_cntk_brainscript_and_python() -> None:
    [brain] = plan({"cntkSettings": {"configFilePath": "$AFS/m.cntk", "commandLineArgs": "a=1"}}).processes
    assert brain.command.endswith(" cntk configFile=$AFS/m.cntk a=1")
    [python] = plan({"cntkSettings": {"languageType": "Python", "pythonScriptFilePath": "s.py"}}).processes
    assert python.command.endswith(" python3 s.py")


def test_caffe_uses_mpirun_only_for_several_processes() -> None:
    [single] = plan({"caffeSettings": {"configFilePath": "solver.prototxt", "commandLineArgs": "-gpu all"}}).processes
    assert single.command == "caffe train --solver=solver.prototxt -gpu all"
    [several] = plan({"caffeSettings": {"pythonScriptFilePath": "s.py", "processCount": 2}}).processes
    assert several.command.startswith("mpirun ") and several.command.endswith(" python3 s.py")


def test_caffe2_runs_one_process_per_node_with_its_index() -> None:
    props = {"caffe2Settings": {"pythonScriptFilePath": "s.py"}}
    assert [p.env for p in plan(props, "n1").processes] == [{"AZ_BATCHAI_TASK_INDEX": "1"}]


def test_pytorch_spreads_ranks_in_blocks_with_one_rendezvous() -> None:
    props = {"pyTorchSettings": {"pythonScriptFilePath": "t.py", "processCount": 3}}
    first, second = plan(props, "n0"), plan(props, "n1")
    assert [p.env["AZ_BATCHAI_TASK_INDEX"] for p in first.processes] == ["0", "1"]
    assert [p.env["AZ_BATCHAI_TASK_INDEX"] for p in second.processes] == ["2"]
    assert first.job_env == second.job_env
    assert first.job_env["AZ_BATCHAI_PYTORCH_INIT_METHOD"].startswith("tcp://10.0.0.4:")
    [mpirun] = plan({"pyTorchSettings": {"pythonScriptFilePath": "t.py", "communicationBackend": "MPI"}}).processes
    assert mpirun.command.startswith("mpirun ")


def test_tensorflow_one_ps_and_two_workers_on_two_nodes() -> None:
    props = {"tensorFlowSettings": {"pythonScriptFilePath": "tf.py", "parameterServerCount": 1, "workerCount": 2,
                                    "masterCommandLineArgs": "m", "workerCommandLineArgs": "w",
                                    "parameterServerCommandLineArgs": "p"}}
    first, second = plan(props, "n0"), plan(props, "n1")
    port = toolkits.base_port("job#1")
    assert first.job_env == second.job_env == {"AZ_BATCHAI_PS_HOSTS": f"10.0.0.4:{port + 1}",
                                               "AZ_BATCHAI_WORKER_HOSTS": f"10.0.0.4:{port},10.0.0.5:{port}"}
    master, ps = first.processes
    [worker] = second.processes
    assert (master.command, worker.command, ps.command) == ("python3 tf.py m", "python3 tf.py w", "python3 tf.py p")
    assert json.loads(master.env["TF_CONFIG"]) == {
        "cluster": {"ps": [f"10.0.0.4:{port + 1}"], "worker": [f"10.0.0.4:{port}", f"10.0.0.5:{port}"]},
        "task": {"type": "master", "index": 0}, "environment": "cloud"}
    assert json.loads(worker.env["TF_CONFIG"])["task"] == {"type": "worker", "index": 1}
    assert json.loads(ps.env["TF_CONFIG"])["task"] == {"type": "ps", "index": 0}
    assert (master.decisive, worker.decisive, ps.decisive) == (True, True, False)
    assert worker.env["AZ_BATCHAI_TASK_INDEX"] == "1"


def test_tensorflow_defaults_one_worker_per_node_and_one_ps_when_distributed() -> None:
    result = plan({"tensorFlowSettings": {"pythonScriptFilePath": "tf.py"}})
    assert len(result.job_env["AZ_BATCHAI_WORKER_HOSTS"].split(",")) == 2
    assert len(result.job_env["AZ_BATCHAI_PS_HOSTS"].split(",")) == 1
    single = plan({"tensorFlowSettings": {"pythonScriptFilePath": "tf.py"}}, nodes=NODES[:1])
    assert single.job_env["AZ_BATCHAI_PS_HOSTS"] == "" and len(single.processes) == 1


def test_ports_differ_between_attempts() -> None:
    assert toolkits.base_port("job#1") != toolkits.base_port("job#2")


def test_docker_wraps_the_command_and_keeps_the_password_off_the_command_line() -> None:
    props = {"containerSettings": {"shmSize": "2g", "imageSourceRegistry": {
        "image": "me/train:1", "serverUrl": "registry.example", "credentials": {"username": "me", "password": "pw"}}}}
    command = toolkits.docker_command(props, "python3 t.py $A", ["/mnt/x"], ["A"])
    assert command.startswith("docker run --rm --network host --shm-size 2g -v /mnt/x:/mnt/x -e A ")
    assert command.endswith("me/train:1 bash -c 'python3 t.py $A'")
    argv, password = toolkits.docker_login(props)
    assert password == "pw" and "pw" not in argv and argv[-1] == "registry.example"
    assert toolkits.container_unavailable_message(props, docker_present=False)
    assert toolkits.container_unavailable_message(props, docker_present=True) is None
