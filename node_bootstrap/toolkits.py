"""Which processes this node starts for a job, per toolkit (reference/ENVIRONMENT.md). Pure: every
node of the job computes the same plan from the same inputs, so ports and ranks agree without
talking to each other.

- custom: the command line once, on the master; customMpi, Horovod, Chainer, CNTK: mpirun on the
  master with `processCount` ranks; Caffe: mpirun only when `processCount` > 1.
- Caffe2: one process per node, AZ_BATCHAI_TASK_INDEX = the node's index.
- PyTorch: `processCount` processes in contiguous blocks over the nodes (node k runs ranks
  k*b .. k*b+b-1, b = ceil(processCount / nodeCount)), each with its rank in AZ_BATCHAI_TASK_INDEX
  and one rendezvous address; with the MPI backend, through mpirun instead.
- TensorFlow: workers, then parameter servers, dealt round-robin over the nodes, each on its own
  port; worker 0 is the master.
Commands are bash command lines, so `$VARS` in paths and arguments expand as a shell would.
"""

from __future__ import annotations

import hashlib
import json
import math
import shlex
from dataclasses import dataclass, field
from typing import Any

BASE_PORT, PORT_RANGE = 20000, 40000
MPI_KEYS = ("customMpiSettings", "horovodSettings", "chainerSettings", "cntkSettings", "caffeSettings",
            "caffe2Settings", "pyTorchSettings", "tensorFlowSettings", "customToolkitSettings")


@dataclass(frozen=True)
class ProcessSpec:
    command: str
    env: dict[str, str] = field(default_factory=dict)
    decisive: bool = True  # the job's outcome waits for it (not for a parameter server)
    role: str = "main"


@dataclass(frozen=True)
class NodePlan:
    processes: list[ProcessSpec]
    hostfile: str
    job_env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Launcher:
    """How mpirun reaches the job's other nodes: ssh on VMs; locally, an rsh agent that runs the
    'remote' command here, over TCP (shared memory breaks with several loopback 'hosts'), and
    without the hwloc runtime component, whose topology sharing between several daemons on one
    machine crashes Open MPI 4.1's orted now and then (seen here in about 1 start in 6)."""

    local: bool
    rsh_agent: str
    as_root: bool
    env_names: tuple[str, ...]

    def mpirun(self, count: int, command: str) -> str:
        argv = ["mpirun", "--hostfile", "$AZ_BATCHAI_MPI_HOST_FILE", "-np", str(count), "--bind-to", "none",
                "--oversubscribe"]
        if self.as_root:
            argv.append("--allow-run-as-root")
        if self.local:
            argv += ["--mca", "plm_rsh_agent", shlex.quote(self.rsh_agent), "--mca", "btl", "tcp,self",
                     "--mca", "btl_tcp_if_include", "lo", "--mca", "oob_tcp_if_include", "lo", "--mca", "rtc", "^hwloc"]
        for name in self.env_names:  # names only: values (secrets among them) never reach argv
            argv += ["-x", name]
        return " ".join(argv) + " " + command


def plan(props: dict[str, Any], nodes: list[dict[str, str]], me: str, seed: str, *, local: bool, rsh_agent: str,
         python: str = "python3", env_names: list[str] | None = None, as_root: bool = False) -> NodePlan:
    launcher = Launcher(local, rsh_agent, as_root, tuple(env_names or ()))
    index = next(i for i, n in enumerate(nodes) if n["nodeId"] == me)
    master = index == 0
    node_count = len(nodes)
    addresses = [n["address"] for n in nodes]

    def hostfile(slots: int = 1) -> str:
        return "".join(f"{a} slots={slots}\n" for a in addresses)

    def script(settings: dict[str, Any], args_key: str = "commandLineArgs") -> str:
        interpreter = settings.get("pythonInterpreterPath") or python
        return " ".join(p for p in (interpreter, settings["pythonScriptFilePath"], settings.get(args_key) or "") if p)

    def mpi(settings: dict[str, Any], command: str) -> NodePlan:
        count = int(settings.get("processCount") or node_count)
        slots = max(1, math.ceil(count / node_count))
        processes = [ProcessSpec(launcher.mpirun(count, command), role="mpirun")] if master else []
        return NodePlan(processes, hostfile(slots))

    if (s := props.get("customToolkitSettings")) is not None:
        processes = [ProcessSpec(s.get("commandLine") or "true", role="master")] if master else []
        return NodePlan(processes, hostfile())
    if (s := props.get("customMpiSettings")) is not None:
        return mpi(s, s["commandLine"])
    if (s := props.get("horovodSettings")) is not None or (s := props.get("chainerSettings")) is not None:
        return mpi(s, script(s))
    if (s := props.get("cntkSettings")) is not None:
        if (s.get("languageType") or "BrainScript").lower() == "python":
            return mpi(s, script(s))
        return mpi(s, " ".join(p for p in ("cntk", f"configFile={s['configFilePath']}", s.get("commandLineArgs")) if p))
    if (s := props.get("caffeSettings")) is not None:
        command = (script(s) if s.get("pythonScriptFilePath") else
                   " ".join(p for p in ("caffe train", f"--solver={s['configFilePath']}", s.get("commandLineArgs")) if p))
        if int(s.get("processCount") or 1) > 1:
            return mpi(s, command)
        return NodePlan([ProcessSpec(command, role="master")] if master else [], hostfile())
    if (s := props.get("caffe2Settings")) is not None:
        return NodePlan([ProcessSpec(script(s), {"AZ_BATCHAI_TASK_INDEX": str(index)}, role=f"node {index}")],
                        hostfile())
    if (s := props.get("pyTorchSettings")) is not None:
        if (s.get("communicationBackend") or "").lower() == "mpi":
            return mpi(s, script(s))
        return _pytorch(s, script(s), addresses, index, seed, hostfile())
    if (s := props.get("tensorFlowSettings")) is not None:
        return _tensorflow(s, script, addresses, index, seed, hostfile())
    raise ValueError("the job names no toolkit")


def base_port(seed: str) -> int:
    """A port the same on every node of an attempt, and unlikely to be another attempt's."""
    return BASE_PORT + int(hashlib.sha256(seed.encode()).hexdigest(), 16) % PORT_RANGE


def _pytorch(s: dict[str, Any], command: str, addresses: list[str], index: int, seed: str, hostfile: str) -> NodePlan:
    count = int(s.get("processCount") or len(addresses))
    block = math.ceil(count / len(addresses))
    ranks = range(index * block, min(count, (index + 1) * block))
    job_env = {"AZ_BATCHAI_PYTORCH_INIT_METHOD": f"tcp://{addresses[0]}:{base_port(seed)}"}
    processes = [ProcessSpec(command, {"AZ_BATCHAI_TASK_INDEX": str(rank)}, role=f"rank {rank}") for rank in ranks]
    return NodePlan(processes, hostfile, job_env)


def _tensorflow(s: dict[str, Any], script: Any, addresses: list[str], index: int, seed: str,
                hostfile: str) -> NodePlan:
    """Workers then parameter servers dealt round-robin over the nodes; each task's port is the
    attempt's base port plus its position among the tasks on its node."""
    workers = int(s.get("workerCount") or len(addresses))
    given_ps = s.get("parameterServerCount")
    ps_count = int(given_ps) if given_ps is not None else (1 if workers > 1 else 0)
    tasks = [("worker", i) for i in range(workers)] + [("ps", i) for i in range(ps_count)]
    port = base_port(seed)
    on_node: dict[int, int] = {}
    where: dict[tuple[str, int], tuple[int, str]] = {}
    for position, task in enumerate(tasks):
        node = position % len(addresses)
        slot = on_node.get(node, 0)
        on_node[node] = slot + 1
        where[task] = (node, f"{addresses[node]}:{port + slot}")
    ps_hosts = [where[("ps", i)][1] for i in range(ps_count)]
    worker_hosts = [where[("worker", i)][1] for i in range(workers)]
    job_env = {"AZ_BATCHAI_PS_HOSTS": ",".join(ps_hosts), "AZ_BATCHAI_WORKER_HOSTS": ",".join(worker_hosts)}
    processes = []
    for (role, i) in tasks:
        if where[(role, i)][0] != index:
            continue
        kind = "ps" if role == "ps" else ("master" if i == 0 else "worker")
        args_key = {"ps": "parameterServerCommandLineArgs", "master": "masterCommandLineArgs",
                    "worker": "workerCommandLineArgs"}[kind]
        config = {"cluster": {"ps": ps_hosts, "worker": worker_hosts}, "task": {"type": kind, "index": i},
                  "environment": "cloud"}
        processes.append(ProcessSpec(script(s, args_key), {"AZ_BATCHAI_TASK_INDEX": str(i),
                                                           "TF_CONFIG": json.dumps(config)},
                                     decisive=kind != "ps", role=f"{kind} {i}"))
    return NodePlan(processes, hostfile, job_env)


def container_unavailable_message(props: dict[str, Any], docker_present: bool) -> str | None:
    """Jobs with containerSettings need a Docker engine on the node; say so plainly if there is none."""
    settings = props.get("containerSettings")
    if settings is None or docker_present:
        return None
    image = (settings.get("imageSourceRegistry") or {}).get("image", "?")
    return (f"The job asks for the container image '{image}', but no Docker engine answers on this node; run it "
            "on a cluster whose nodes have Docker, or without containerSettings.")


def docker_command(props: dict[str, Any], command: str, folders: list[str], env_names: list[str]) -> str:
    """The command line run in the job's container: the host's network (the nodes' addresses and
    the ranks' ports stay as they are), the job's folders at the same paths, its variables by name."""
    settings = props["containerSettings"]
    argv = ["docker", "run", "--rm", "--network", "host", "--shm-size", settings.get("shmSize") or "64m"]
    for folder in folders:
        argv += ["-v", f"{folder}:{folder}"]
    for name in env_names:
        argv += ["-e", name]
    argv += ["-w", "$AZ_BATCHAI_JOB_TEMP", settings["imageSourceRegistry"]["image"], "bash", "-c",
             shlex.quote(command)]
    return " ".join(argv)


def docker_login(props: dict[str, Any]) -> tuple[list[str], str] | None:
    """`docker login` for a private registry, and the password to give it on stdin (never in argv)."""
    registry = (props.get("containerSettings") or {}).get("imageSourceRegistry") or {}
    credentials = registry.get("credentials")
    if not credentials:
        return None
    argv = ["docker", "login", "--username", credentials["username"], "--password-stdin"]
    if registry.get("serverUrl"):
        argv.append(registry["serverUrl"])
    return argv, credentials.get("password") or ""
