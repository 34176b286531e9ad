"""Which processes this node starts for a job, per toolkit (reference/ENVIRONMENT.md).

Pure (no I/O but `os.geteuid()` when `as_root` is not given): every node of the job computes the
same plan from the same inputs, so ranks, hosts and ports agree without the nodes talking.

- `processCount` defaults to the job's `nodeCount`.
- custom: the command line once, on the master. customMpi, Horovod, Chainer, CNTK: one mpirun on
  the master with `processCount` ranks (the other nodes start nothing: mpirun reaches them).
  Caffe: the same, but mpirun only when `processCount` > 1, else one process on the master.
- Caffe2: one process per node, AZ_BATCHAI_TASK_INDEX = the node's index in the job's node list.
- PyTorch: `processCount` processes in contiguous blocks: with b = ceil(processCount / nodeCount),
  node k runs ranks k*b .. min(processCount, (k+1)*b) - 1 (the way mpirun fills the hostfile's
  `slots=b`), each with its rank in AZ_BATCHAI_TASK_INDEX, and one rendezvous
  AZ_BATCHAI_PYTORCH_INIT_METHOD = tcp://<master>:<port>, and AZ_BATCHAI_PYTORCH_BACKEND = the
  communicationBackend in lower case (gloo when none). Backend MPI: through mpirun, each rank
  setting AZ_BATCHAI_TASK_INDEX from OMPI_COMM_WORLD_RANK.
- Logs ("Per-task log files"): a task started on its own (TensorFlow, PyTorch, Caffe2) has its own
  stdout-<task>.txt / stderr-<task>.txt (`ProcessSpec.task`: wk-<i> / ps-<i>, the rank, the node
  index); the rest (custom, everything under mpirun, one-process Caffe) write stdout.txt / stderr.txt.
- TensorFlow: the worker tasks, then the parameter-server tasks, dealt round-robin over the nodes
  (task t of that list on node t % nodeCount); worker 0 is the master.
- Ports come from a hash of the attempt's seed. A TensorFlow task's port is the base plus its
  position among the tasks on its node on VMs; in the local pool, where every node is an address of
  one machine (and TensorFlow listens on 0.0.0.0), its position in the whole task list.

Commands are bash command lines, run with `bash -c` in the job's environment: paths and arguments
are joined as given, so `$VARS`, `~` and quotes in them work as a shell would (as on Batch AI).
Variable values never appear in a command line (secrets are among them): mpirun gets `-x NAME`,
docker `-e NAME`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from shared.models.agent import AssignedNode
from shared.models.common import ContainerSettings, ImageSourceRegistry
from shared.models.job import (TOOLKITS, Caffe2Settings, CaffeSettings, CNTKLanguage, CNTKsettings,
                               CustomMpiSettings, CustomToolkitSettings, JobBaseProperties, PyTorchSettings,
                               TensorFlowSettings)

# Ports sit below Linux's ephemeral range (32768-60999): there an outgoing connection of any process
# on the node may hold the port, and a rendezvous failed with EADDRINUSE now and then.
PORT_LOW = 20000  # ports are PORT_LOW .. PORT_HIGH
PORT_HIGH = 32767
BASE_PORT_SPAN = 12000  # a base port is PORT_LOW .. 31999, leaving room above it for an attempt's tasks
PORT_SPAN = PORT_HIGH + 1 - PORT_LOW

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class ProcessSpec:
    """One process this node starts: a bash command line, with variables added to the job's."""

    command: str
    env: dict[str, str] = field(default_factory=dict)
    decisive: bool = True  # the job's outcome waits for it (not for a TensorFlow parameter server)
    role: str = "main"  # for logs; "mpirun" marks a launch that reaches the other nodes
    task: str | None = None  # a task of its own: its output goes to stdout-<task>.txt / stderr-<task>.txt


@dataclass(frozen=True)
class NodePlan:
    """What this node runs, the job's Open MPI hostfile, and the variables the toolkit adds to the job."""

    processes: list[ProcessSpec]
    hostfile: str
    job_env: dict[str, str] = field(default_factory=dict)


class Counted(Protocol):
    """Toolkit settings with a processCount (which the model sets to nodeCount when not given)."""

    @property
    def process_count(self) -> int | None: ...


class Script(Protocol):
    """Toolkit settings that run a Python script."""

    @property
    def python_script_file_path(self) -> str | None: ...

    @property
    def python_interpreter_path(self) -> str | None: ...


@dataclass(frozen=True)
class _Job:
    """What every toolkit's rule needs to know about the job and this node."""

    props: JobBaseProperties
    addresses: list[str]
    index: int
    seed: str
    local: bool
    python: str
    mpirun: MpiLauncher

    @property
    def master(self) -> bool:
        return self.index == 0

    @property
    def node_count(self) -> int:
        return len(self.addresses)

    def process_count(self, settings: Counted) -> int:
        """ENVIRONMENT.md: `processCount` defaults to `nodeCount`."""
        return int(settings.process_count or self.props.node_count or self.node_count)

    def hostfile(self, slots: int = 1) -> str:
        return "".join(f"{address} slots={slots}\n" for address in self.addresses)

    def script(self, settings: Script, args: str | None) -> str:
        """`<python> <pythonScriptFilePath> <args>`; the settings' pythonInterpreterPath wins."""
        interpreter = settings.python_interpreter_path or self.python
        return _join(interpreter, settings.python_script_file_path, args)


@dataclass(frozen=True)
class MpiLauncher:
    """Open MPI's mpirun, started once on the master, reaching the job's nodes from the hostfile.

    On VMs it reaches them with ssh (`rsh_agent`: ssh with the cluster's key, from the node's
    BATCHAI_MPI_RSH_AGENT; empty: Open MPI's default ssh). In the local pool the nodes are loopback addresses of this
    machine, which Open MPI takes for remote hosts: `plm_rsh_agent` is a script that runs the
    'remote' command here (node_bootstrap/local_rsh.sh, which also gives each 'host' its own
    session directory); `btl tcp,self` because the shared-memory transport crashes when ranks of
    several 'hosts' share a machine; `btl_tcp_if_include lo` because the TCP transport leaves out
    127.0.0.0/8 by default, so on a machine with only loopback the ranks could not reach each
    other; `--oversubscribe` because the pool's 'nodes' claim more slots than the machine has cores.
    """

    local: bool
    rsh_agent: str
    as_root: bool
    env_names: tuple[str, ...]
    in_container: bool = False  # mpirun runs in the master's container: `rsh_agent` reaches the others' containers

    def flags(self, count: int) -> list[str]:
        argv = ["--hostfile", "$AZ_BATCHAI_MPI_HOST_FILE", "-np", str(count), "--bind-to", "none"]
        if self.as_root:
            argv.append("--allow-run-as-root")
        if self.local or self.in_container or self.rsh_agent:  # on VMs: ssh with the cluster's key
            argv += ["--mca", "plm_rsh_agent", shlex.quote(self.rsh_agent)]
        if self.in_container:  # only the master's container launches: the others need no way to reach a third
            argv += ["--mca", "plm_rsh_no_tree_spawn", "1"]
        if self.local:
            argv += ["--mca", "btl", "tcp,self", "--mca", "btl_tcp_if_include", "lo", "--oversubscribe"]
        for name in self.env_names:
            argv += ["-x", name]
        return argv

    def command(self, count: int, program: str) -> str:
        """`mpirun <flags> <program>`: the program as given, so the master's shell expands its `$VARS`."""
        return " ".join(["mpirun", *self.flags(count), program])


def plan(props: JobBaseProperties, nodes: Sequence[AssignedNode], me: str, seed: str, *, local: bool, rsh_agent: str,
         python: str = "python3", env_names: list[str] | None = None, as_root: bool | None = None,
         in_container: bool = False) -> NodePlan:
    """The processes node `me` starts for the job (`nodes` in order, the first is the master).

    `seed` is unique per job attempt (ports); `env_names` are the job's variable names for mpirun's
    `-x` (names that are not shell identifiers are left out: no `$NAME` can reach them anyway);
    `as_root` defaults to whether this process runs as root (mpirun refuses root without a flag);
    `in_container`: the job runs in containers and `rsh_agent` is `container_rsh_agent`'s.
    """
    index = next((i for i, node in enumerate(nodes) if node.node_id == me), None)
    if index is None:
        raise ValueError(f"node {me} is not one of the job's nodes")
    toolkit = next((name for name in TOOLKITS if getattr(props, name) is not None), None)
    if toolkit is None:
        raise ValueError("the job names no toolkit")
    root = os.geteuid() == 0 if as_root is None else as_root
    addresses = [node.address for node in nodes]
    job_env_names = _JOB_ENV_NAMES.get(toolkit, [])
    names = tuple(dict.fromkeys(n for n in [*(env_names or ()), *job_env_names] if _NAME.match(n)))
    job = _Job(props, addresses, index, seed, local, python, MpiLauncher(local, rsh_agent, root, names, in_container))
    return _RULES[toolkit](job)


# The variables a toolkit adds to the whole job (NodePlan.job_env), which mpirun must pass on too.
_JOB_ENV_NAMES = {"py_torch_settings": ["AZ_BATCHAI_PYTORCH_INIT_METHOD", "AZ_BATCHAI_PYTORCH_BACKEND"],
                  "tensor_flow_settings": ["AZ_BATCHAI_PS_HOSTS", "AZ_BATCHAI_WORKER_HOSTS"]}


# -- the toolkits ---------------------------------------------------------------------------------
def _custom(job: _Job, s: CustomToolkitSettings) -> NodePlan:
    processes = [ProcessSpec(s.command_line or "true", role="master")] if job.master else []
    return NodePlan(processes, job.hostfile())


def _mpi(job: _Job, s: Counted, program: str, job_env: dict[str, str] | None = None) -> NodePlan:
    """mpirun on the master only; the hostfile gives each node ceil(processCount / nodeCount) slots."""
    count = job.process_count(s)
    slots = max(1, math.ceil(count / job.node_count))
    processes = [ProcessSpec(job.mpirun.command(count, program), role="mpirun")] if job.master else []
    return NodePlan(processes, job.hostfile(slots), dict(job_env or {}))


def _custom_mpi(job: _Job, s: CustomMpiSettings) -> NodePlan:
    return _mpi(job, s, s.command_line)


class _PythonMpi(Counted, Script, Protocol):
    @property
    def command_line_args(self) -> str | None: ...


def _python_mpi(job: _Job, s: _PythonMpi) -> NodePlan:
    """Horovod and Chainer(MN): the script under mpirun."""
    return _mpi(job, s, job.script(s, s.command_line_args))


def cntk_is_python(s: CNTKsettings) -> bool:
    """languageType in any case; without one, a pythonScriptFilePath (and no config file) means Python."""
    if s.language_type:
        return s.language_type.lower() == CNTKLanguage.PYTHON.value.lower()
    return bool(s.python_script_file_path) and not s.config_file_path


def _cntk(job: _Job, s: CNTKsettings) -> NodePlan:
    if cntk_is_python(s):
        return _mpi(job, s, job.script(s, s.command_line_args))
    return _mpi(job, s, _join("cntk", f"configFile={s.config_file_path or ''}", s.command_line_args))


def _caffe(job: _Job, s: CaffeSettings) -> NodePlan:
    if s.python_script_file_path:
        command = job.script(s, s.command_line_args)
    else:
        command = _join("caffe train", f"--solver={s.config_file_path or ''}", s.command_line_args)
    if job.process_count(s) > 1:
        return _mpi(job, s, command)
    return NodePlan([ProcessSpec(command, role="master")] if job.master else [], job.hostfile())


def _caffe2(job: _Job, s: Caffe2Settings) -> NodePlan:
    """One process per node; the nodes meet through AZ_BATCHAI_SHARED_JOB_TEMP."""
    spec = ProcessSpec(job.script(s, s.command_line_args), {"AZ_BATCHAI_TASK_INDEX": str(job.index)},
                       role=f"node {job.index}", task=str(job.index))
    return NodePlan([spec], job.hostfile())


def _pytorch(job: _Job, s: PyTorchSettings) -> NodePlan:
    backend = (s.communication_backend or "gloo").lower()
    job_env = {"AZ_BATCHAI_PYTORCH_INIT_METHOD": f"tcp://{job.addresses[0]}:{base_port(job.seed)}",
               "AZ_BATCHAI_PYTORCH_BACKEND": backend}
    if backend == "mpi":
        rank_command = "export AZ_BATCHAI_TASK_INDEX=$OMPI_COMM_WORLD_RANK; exec " + job.script(s, s.command_line_args)
        return _mpi(job, s, "bash -c " + shlex.quote(rank_command), job_env)
    processes = [ProcessSpec(job.script(s, s.command_line_args), {"AZ_BATCHAI_TASK_INDEX": str(rank)},
                             role=f"rank {rank}", task=str(rank))
                 for rank in pytorch_ranks(job.process_count(s), job.node_count, job.index)]
    return NodePlan(processes, job.hostfile(), job_env)


def pytorch_ranks(process_count: int, node_count: int, node_index: int) -> range:
    """Contiguous blocks of ceil(process_count / node_count) ranks, node 0 first."""
    block = math.ceil(process_count / node_count)
    return range(min(process_count, node_index * block), min(process_count, (node_index + 1) * block))


@dataclass(frozen=True)
class TfTask:
    kind: str  # "worker" or "ps" (the cluster's lists)
    index: int  # within its list
    node: int
    port: int


def tensorflow_tasks(workers: int, parameter_servers: int, node_count: int, seed: str, *, local: bool) -> list[TfTask]:
    """Workers then parameter servers, dealt round-robin over the nodes, each with its port."""
    kinds = [("worker", i) for i in range(workers)] + [("ps", i) for i in range(parameter_servers)]
    on_node = [0] * node_count
    tasks = []
    for position, (kind, i) in enumerate(kinds):
        node = position % node_count
        offset = position if local else on_node[node]
        on_node[node] += 1
        tasks.append(TfTask(kind, i, node, task_port(seed, offset)))
    return tasks


def tensorflow_counts(s: TensorFlowSettings, node_count: int) -> tuple[int, int]:
    """(workers, parameter servers): workerCount defaults to nodeCount; parameterServerCount to 1
    when the job is distributed (several workers, or a workerCount given, which the schema allows
    only for distributed training), else 0."""
    workers = int(s.worker_count or node_count)
    if s.parameter_server_count is not None:
        return workers, int(s.parameter_server_count)
    distributed = workers > 1 or s.worker_count is not None
    return workers, 1 if distributed else 0


def _tensorflow(job: _Job, s: TensorFlowSettings) -> NodePlan:
    workers, parameter_servers = tensorflow_counts(s, int(job.props.node_count or job.node_count))
    tasks = tensorflow_tasks(workers, parameter_servers, job.node_count, job.seed, local=job.local)
    hosts = {kind: [f"{job.addresses[t.node]}:{t.port}" for t in tasks if t.kind == kind] for kind in ("ps", "worker")}
    job_env = {"AZ_BATCHAI_PS_HOSTS": ",".join(hosts["ps"]), "AZ_BATCHAI_WORKER_HOSTS": ",".join(hosts["worker"])}
    processes = []
    for task in (t for t in tasks if t.node == job.index):
        kind = "ps" if task.kind == "ps" else "master" if task.index == 0 else "worker"
        args = {"ps": s.parameter_server_command_line_args, "master": s.master_command_line_args,
                "worker": s.worker_command_line_args}[kind]
        config = {"cluster": {"ps": hosts["ps"], "worker": hosts["worker"]},
                  "task": {"type": kind, "index": task.index}, "environment": "cloud"}
        env = {"AZ_BATCHAI_TASK_INDEX": str(task.index), "TF_CONFIG": json.dumps(config)}
        processes.append(ProcessSpec(job.script(s, args), env, decisive=kind != "ps", role=f"{kind} {task.index}",
                                     task=f"{'ps' if kind == 'ps' else 'wk'}-{task.index}"))
    return NodePlan(processes, job.hostfile(), job_env)


S = TypeVar("S")


def _given(settings: S | None) -> S:
    if settings is None:  # plan() picked the toolkit the job names
        raise ValueError("the job names no toolkit")
    return settings


# Each toolkit's rule, by the JobBaseProperties attribute that holds its settings (TOOLKITS).
_RULES: dict[str, Callable[[_Job], NodePlan]] = {
    "custom_toolkit_settings": lambda job: _custom(job, _given(job.props.custom_toolkit_settings)),
    "custom_mpi_settings": lambda job: _custom_mpi(job, _given(job.props.custom_mpi_settings)),
    "horovod_settings": lambda job: _python_mpi(job, _given(job.props.horovod_settings)),
    "chainer_settings": lambda job: _python_mpi(job, _given(job.props.chainer_settings)),
    "cntk_settings": lambda job: _cntk(job, _given(job.props.cntk_settings)),
    "caffe_settings": lambda job: _caffe(job, _given(job.props.caffe_settings)),
    "caffe2_settings": lambda job: _caffe2(job, _given(job.props.caffe2_settings)),
    "py_torch_settings": lambda job: _pytorch(job, _given(job.props.py_torch_settings)),
    "tensor_flow_settings": lambda job: _tensorflow(job, _given(job.props.tensor_flow_settings)),
}



# -- ports ----------------------------------------------------------------------------------------
def base_port(seed: str) -> int:
    """A port (20000-31999) the same on every node of an attempt, and unlikely to be another attempt's."""
    return PORT_LOW + int(hashlib.sha256(seed.encode()).hexdigest(), 16) % BASE_PORT_SPAN


def task_port(seed: str, offset: int) -> int:
    """The attempt's base port plus `offset`, wrapping within 20000-32767 (distinct for 12768 offsets)."""
    return PORT_LOW + (base_port(seed) - PORT_LOW + offset) % PORT_SPAN


# -- containers -----------------------------------------------------------------------------------
def container_unavailable_message(settings: ContainerSettings | None, docker_present: bool) -> str | None:
    """Jobs with containerSettings need a Docker engine on the node; say so plainly if there is none."""
    if settings is None or docker_present:
        return None
    return (f"The job asks for the container image '{image_of(settings)}', but no Docker engine answers on this node; "
            "run it on a cluster whose nodes have Docker, or without containerSettings.")


def image_of(settings: ContainerSettings | None) -> str:
    """The job's container image, for messages."""
    return settings.image_source_registry.image if settings is not None else "?"


def container_name(seed: str, node_id: str) -> str:
    """The job's container on this node for this attempt (a Docker name: letters, digits, dashes)."""
    return "batchai-" + hashlib.sha256(f"{seed}@{node_id}".encode()).hexdigest()[:20]


def container_start_argv(settings: ContainerSettings, name: str, mounts: list[tuple[str, str]] | list[str], *,
                         read_only: list[str] | None = None, gpus: bool = False) -> list[str]:
    """`docker run` of the job's container, idle until the agent removes it: the job preparation and
    every task of the node run in it with `container_exec_command` (the spec: the preparation runs
    "in the same container as job", so what it installs is there for the job). The host's network
    (the nodes' addresses and the tasks' ports stay as they are; MPI, PyTorch and TensorFlow reach the
    other nodes as without a container), `--shm-size` when the job gives one, else the host's IPC
    namespace (Docker's 64 MB /dev/shm starves data loaders and NCCL), every GPU of the node when it
    has some, the mounts (`(host, container)` pairs, or a path mounted at the same path) and the
    `read_only` paths (the launch's own scripts), mounted read-only at the same path."""
    argv = ["docker", "run", "--detach", "--rm", "--name", name, "--network", "host"]
    argv += ["--shm-size", settings.shm_size] if settings.shm_size else ["--ipc", "host"]
    if gpus:
        argv += ["--gpus", "all"]
    for mount in mounts:
        host, container = (mount, mount) if isinstance(mount, str) else mount
        argv += ["-v", f"{host}:{container}"]
    for path in read_only or ():
        argv += ["-v", f"{path}:{path}:ro"]
    # Any image, whatever its entrypoint: the container only has to stay up.
    return argv + ["--entrypoint", "tail", settings.image_source_registry.image, "-f", "/dev/null"]


def container_mounts(env: dict[str, str]) -> tuple[list[str], list[str]]:
    """What the job's container mounts, each at the same path as on the node: read-write, the
    cluster's and the job's volumes, the job's folders (its temp, the nodes' shared temp, the
    hostfile), the stdouterr folder and every output folder (whatever their prefix); read-only, the
    input folders that exist outside those (a job reads its inputs; a path such as /etc must not
    become writable from a container that runs as root). A folder below another mounted one comes
    with it (Docker binds the mounts below a path too)."""
    keys = ["AZ_BATCHAI_MOUNT_ROOT", "AZ_BATCHAI_JOB_MOUNT_ROOT", "AZ_BATCHAI_JOB_TEMP", "AZ_BATCHAI_SHARED_JOB_TEMP",
            "AZ_BATCHAI_MPI_HOST_FILE", "AZ_BATCHAI_STDOUTERR_DIR"]
    writable = {os.path.normpath(env[key]) for key in keys}
    writable |= {os.path.normpath(v) for k, v in env.items() if k.startswith("AZ_BATCHAI_OUTPUT_")}
    inputs = {os.path.normpath(v) for k, v in env.items() if k.startswith("AZ_BATCHAI_INPUT_") and os.path.exists(v)}

    def outermost(paths: set[str], within: set[str]) -> list[str]:
        return sorted(p for p in paths if not any(p == o or p.startswith(o + os.sep) for o in within - {p}))

    read_write = outermost(writable, writable)
    return read_write, outermost(inputs, inputs | set(read_write))


def container_rsh_agent(script: str, seed: str, nodes: Sequence[AssignedNode], *, local_rsh: str | None = None,
                        ssh_user: str = "", ssh_key: str | None = None) -> str:
    """Open MPI's `plm_rsh_agent` for a job in containers: mpirun runs in the master's container and
    starts its daemon on node N inside N's container. `script` (node_bootstrap/container_rsh.sh,
    mounted in every container) is given each node's address and container name; it runs
    `docker exec <container>` on the node: through ssh as `ssh_user` with `ssh_key` on VMs, or in
    the local pool (every node is this machine) directly, through `local_rsh`."""
    pairs = ",".join(f"{node.address}={container_name(seed, node.node_id)}" for node in nodes)
    argv = [script, "--containers", pairs]
    if local_rsh is not None:
        argv += ["--local", local_rsh]
    else:
        argv += ["--ssh-user", ssh_user] + (["--ssh-key", ssh_key] if ssh_key else [])
    if any(not part or any(c.isspace() for c in part) for part in argv):  # Open MPI splits the agent on spaces
        raise ValueError(f"the container launch cannot use a path or user with spaces: {argv}")
    return " ".join(argv)


def container_exec_command(name: str, command: str, env_names: list[str]) -> str:
    """`docker exec` of a bash command line in the job's container, as a bash command line (what the
    agent runs with `bash -c`): variables by name only (docker reads their values from its own
    environment), working in $AZ_BATCHAI_JOB_TEMP, which the outer shell expands."""
    argv = ["docker", "exec"]
    for env_name in dict.fromkeys(n for n in env_names if _NAME.match(n)):
        argv += ["-e", env_name]
    return " ".join([*map(shlex.quote, argv), '-w "$AZ_BATCHAI_JOB_TEMP"', shlex.quote(name), "bash", "-c",
                     shlex.quote(command)])


def container_remove_argv(name: str) -> list[str]:
    """Stops whatever still runs in the job's container and removes it."""
    return ["docker", "rm", "--force", name]


def docker_login_command(registry: ImageSourceRegistry) -> list[str] | None:
    """`docker login` for an imageSourceRegistry with credentials (None without): the password goes
    to its stdin (`registry_password`), never into argv, where any user of the machine could read it."""
    credentials = registry.credentials
    if not credentials:
        return None
    argv = ["docker", "login", "--username", credentials.username, "--password-stdin"]
    if registry.server_url:
        argv.append(registry.server_url)
    return argv


def registry_password(registry: ImageSourceRegistry) -> str:
    """The password for `docker login --password-stdin` ("" when only a Key Vault reference is given:
    resolving it is the control plane's job)."""
    return (registry.credentials.password if registry.credentials else None) or ""


def docker_login(settings: ContainerSettings | None) -> tuple[list[str], str] | None:
    """The job's `docker login` argv and the password to write to its stdin, or None (a public image)."""
    if settings is None:
        return None
    registry = settings.image_source_registry
    argv = docker_login_command(registry)
    return None if argv is None else (argv, registry_password(registry))


def _join(*parts: str | None) -> str:
    """A command line from its parts, as given (no quoting: they are shell text), empty ones left out."""
    return " ".join(p for p in parts if p)
