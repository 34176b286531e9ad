"""One attempt of a job on one node, from assignment to report.

Every node of the job mounts the job's volumes, creates the job's folders, runs the job
preparation, and starts the processes its toolkit gives this node (none for an MPI job's other
nodes: mpirun on the master reaches them). The node's outcome is the exit of the processes the
job waits for (a TensorFlow parameter server is not one of them): the first non-zero one, or 0
when all of them succeeded. The agent reports it; the control plane decides the job.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from node_bootstrap import toolkits
from node_bootstrap.execution_log import ExecutionLog
from node_bootstrap.gpus import gpu_count
from node_bootstrap.launch import job_environment, log_names
from shared.job_environment import JobPaths
from node_bootstrap.storage import JobStorage
from shared import telemetry
from shared.volumes import Volume

RSH_AGENT = Path(__file__).with_name("local_rsh.sh")
# Set on VMs (their systemd unit): how mpirun reaches the other nodes; then MPI goes over the network
# even where storage is local (nodes booted in network namespaces of one machine).
MPI_RSH_AGENT_VARIABLE = "BATCHAI_MPI_RSH_AGENT"
SYNC_SECONDS = 2.0  # how often blob-backed folders are pushed while the job runs


@dataclass(frozen=True)
class Outcome:
    exit_code: int
    error: dict[str, str] | None = None


Report = Callable[[Outcome], None]


class Barrier(Protocol):
    """The job's nodes meet after their job preparation, through the control plane."""

    def prepared(self) -> None:
        """This node has prepared."""

    def wait_all(self, stopped: threading.Event) -> bool:
        """Until every node has prepared (True), or the attempt ended (False)."""


class Attempt:
    """Runs in its own thread; `stop()` (the control plane moved on) kills whatever it started."""

    def __init__(self, node_dir: Path, node_id: str, address: str, assignment: dict[str, Any],
                 storage: JobStorage, report: Report, barrier: Barrier) -> None:
        self.node_dir, self.node_id, self.address = node_dir, node_id, address
        self.assignment = assignment
        self.job, self.attempt = assignment["job"], assignment["attempt"]
        self.storage = storage
        self.report = report
        self.barrier = barrier
        self.stopped = threading.Event()
        self.processes: list[subprocess.Popen[bytes]] = []
        self.container: str | None = None  # the job's container on this node, once started
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name=f"attempt-{self.attempt}", daemon=True)

    @property
    def seed(self) -> str:
        """Unique per attempt (the segment holds a uuid per job: a job made again never reuses old ports)."""
        return f"{self.assignment['jobOutputDirectoryPathSegment']}#{self.attempt}"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        with self._lock:
            running = list(self.processes)
        for process in running:
            kill_group(process)

    # -- the steps --------------------------------------------------------------------------------
    def _run(self) -> None:
        """The attempt's span (in the job's trace, continuing the dispatch that placed it) covers
        every step up to the node's outcome; the report and the wait for the end follow it."""
        ids = {"batchai.job": self.job, "batchai.attempt": self.attempt, "batchai.node": self.node_id,
               "batchai.master": bool(self.assignment["master"])}
        with telemetry.span("agent.attempt", parent=self.assignment.get("traceContext"), attributes=ids) as span:
            outcome, log, volumes, paths = self._steps()
            span.set_attribute("batchai.exit_code", outcome.exit_code)
            if outcome.error:
                span.set_attribute("batchai.error", outcome.error["code"])
        self._finish(outcome, log, volumes, paths)

    def _steps(self) -> tuple[Outcome, ExecutionLog, list[Volume], JobPaths]:
        props = self.assignment["properties"]
        master = self.assignment["master"]
        paths = JobPaths.of(self.node_dir, self.assignment["jobOutputDirectoryPathSegment"], self.attempt)
        volumes = [Volume.from_wire(v) for v in self.assignment.get("volumes") or []]
        with telemetry.span("agent.mounts", attributes={"batchai.volumes": len(volumes)}) as span:
            errors = self.storage.mount(volumes, paths.job_mount_root)
            span.set_attribute("batchai.failed", bool(errors))
        env = job_environment(self.address, self.assignment, paths)
        names = log_names(master, self.node_id)
        stdouterr = Path(env["AZ_BATCHAI_STDOUTERR_DIR"])
        log = ExecutionLog(stdouterr / names.execution)
        log.write(f"node {self.node_id} ({self.address}) starts attempt {self.attempt} of {self.assignment['jobId']}")
        if errors:
            log.write("mount failed: " + "; ".join(errors))
            return Outcome(1, {"code": "MountFailed", "message": "; ".join(errors)}), log, volumes, paths
        try:
            outcome = self._prepare_and_launch(props, env, stdouterr, names, log)
        except Exception as exc:  # a launch that cannot even start is the job's error, not the agent's end
            log.write(f"launch failed: {exc}")
            outcome = Outcome(1, {"code": "JobLaunchFailed", "message": f"Node {self.node_id}: {exc}"})
        return outcome, log, volumes, paths

    def _prepare_and_launch(self, props: dict[str, Any], env: dict[str, str], stdouterr: Path,
                            names: Any, log: ExecutionLog) -> Outcome:
        plan = toolkits.plan(props, self.assignment["nodes"], self.node_id, self.seed,
                             local=loopback_mpi(self.storage.local), rsh_agent=rsh_agent(self.storage.local),
                             python=props_python(props), env_names=sorted(job_variable_names(props, env)),
                             as_root=os.geteuid() == 0)
        Path(env["AZ_BATCHAI_MPI_HOST_FILE"]).write_text(plan.hostfile)
        env.update(plan.job_env)
        in_container = props.get("containerSettings") is not None
        # A job that cannot start here fails before anything of it runs, its preparation included.
        problem = toolkits.container_unavailable_message(props, in_container and docker_engine_answers())
        if problem:
            log.write(problem)
            return Outcome(1, {"code": "ContainerUnavailable", "message": problem})
        names_in = sorted(job_variable_names(props, env) | set(plan.job_env)
                          | {name for spec in plan.processes for name in spec.env})
        if in_container:
            code = self._start_container(props, env, stdouterr, names, log)
            if code != 0 or self.stopped.is_set():
                return Outcome(code, None if self.stopped.is_set() else {
                    "code": "ContainerStartFailed",
                    "message": f"Node {self.node_id} could not start the job's container (image "
                               f"'{toolkits.image_of(props)}'); see {names.prep_stderr} in the stdouterr directory."})

        def in_job_container(command: str) -> str:
            """The spec: with containerSettings the preparation and the job run in the job's container."""
            return toolkits.container_exec_command(self.container, command, names_in) if self.container else command

        prep = (props.get("jobPreparation") or {}).get("commandLine")
        if prep:
            prep = in_job_container(prep)
            log.write(f"job preparation: {prep}")
            with telemetry.span("agent.job_preparation") as span:
                code = self._run_and_wait(["/bin/bash", "-c", prep], env, stdouterr / names.prep_stdout,
                                          stdouterr / names.prep_stderr, "jobPreparation")
                span.set_attribute("process.exit.code", code)
            log.write(f"job preparation exited with code {code}")
            if self.stopped.is_set():
                return Outcome(code)
            if code != 0:
                return Outcome(code, {"code": "JobPreparationFailed",
                                      "message": f"The job preparation on node {self.node_id} exited with code {code};"
                                                 f" see {names.prep_stderr} in the stdouterr directory."})
        self.barrier.prepared()
        if self._launches_onto_others(props, plan):
            log.write("waiting for every node of the job to finish its job preparation")
            with telemetry.span("agent.barrier", attributes={"batchai.nodes": len(self.assignment["nodes"])}):
                if not self.barrier.wait_all(self.stopped):
                    return Outcome(137)
        decisive: list[subprocess.Popen[bytes]] = []
        for spec in plan.processes:
            if self.stopped.is_set():
                return Outcome(137)
            command = in_job_container(spec.command)
            log.write(f"starting {spec.role}: {command}")
            stdout, stderr = task_logs(names, spec.task)
            process = self._spawn(["/bin/bash", "-c", command], env | spec.env, stdouterr / stdout,
                                  stdouterr / stderr, spec.role)
            if spec.decisive:
                decisive.append(process)
        if not decisive:
            log.write("nothing on this node decides the job's outcome; holding the node for the job")
            return Outcome(0)
        return self._wait_for(decisive, log)

    def _start_container(self, props: dict[str, Any], env: dict[str, str], stdouterr: Path, names: Any,
                         log: ExecutionLog) -> int:
        """Log in to the job's registry, then start the job's container (pulling its image; the output
        goes to the job preparation's logs); its exit code."""
        if (login := toolkits.docker_login(props)) is not None:
            argv, password = login
            log.write("docker login " + " ".join(argv[2:]))
            subprocess.run(argv, input=password.encode(), capture_output=True, timeout=120, check=False)
        mounts = sorted({env[k] for k in ("AZ_BATCHAI_MOUNT_ROOT", "AZ_BATCHAI_JOB_MOUNT_ROOT", "AZ_BATCHAI_JOB_TEMP",
                                          "AZ_BATCHAI_SHARED_JOB_TEMP", "AZ_BATCHAI_STDOUTERR_DIR",
                                          "AZ_BATCHAI_MPI_HOST_FILE")})
        name = toolkits.container_name(self.seed, self.node_id)
        argv = toolkits.container_start_argv(props, name, mounts, gpus=gpu_count() > 0)
        log.write("starting the job's container: " + " ".join(argv))
        self.container = name  # removed at the end even if the start is cut short
        code = self._run_and_wait(argv, env, stdouterr / names.prep_stdout, stdouterr / names.prep_stderr, "container")
        log.write(f"docker run exited with code {code}")
        return code

    def _launches_onto_others(self, props: dict[str, Any], plan: toolkits.NodePlan) -> bool:
        """mpirun (or a custom command, which may use the hostfile) reaches the other nodes: they
        must have run their job preparation first."""
        if len(self.assignment["nodes"]) < 2 or not plan.processes:
            return False
        return props.get("customToolkitSettings") is not None or any(p.role == "mpirun" for p in plan.processes)

    def _wait_for(self, decisive: list[subprocess.Popen[bytes]], log: ExecutionLog) -> Outcome:
        """The first failure, or 0 when every process the job waits for has succeeded; pushes
        blob-backed folders meanwhile so their files can be listed while the job runs."""
        pending = list(decisive)
        next_sync = time.monotonic() + SYNC_SECONDS
        while pending:
            for process in list(pending):
                code = process.poll()
                if code is None:
                    continue
                code = code if code >= 0 else 128 - code
                pending.remove(process)
                log.write(f"process {process.pid} exited with code {code}")
                if code != 0:
                    return Outcome(code)
            if pending:
                time.sleep(0.05)
            if time.monotonic() >= next_sync:
                self.storage.push()
                next_sync = time.monotonic() + SYNC_SECONDS
        return Outcome(0)

    def _finish(self, outcome: Outcome, log: ExecutionLog, volumes: list[Volume], paths: JobPaths) -> None:
        if self.stopped.is_set():
            log.write("stopped by the control plane")
        if outcome.exit_code != 0 or self.stopped.is_set():
            self.stop_processes()  # on success, processes the outcome does not wait for run on
        log.write(f"node outcome: exit code {outcome.exit_code}")
        self.storage.push()
        if not self.stopped.is_set():
            self.report(outcome)
        self.stopped.wait()  # until the control plane ends the attempt everywhere
        self.stop_processes()
        if self.container:
            remove_container(self.container)
        self.storage.push()
        self.storage.unmount(volumes, paths.job_mount_root)

    def stop_processes(self) -> None:
        with self._lock:
            running = list(self.processes)
        for process in running:
            if process.poll() is None:
                kill_group(process)

    # -- processes --------------------------------------------------------------------------------
    def _spawn(self, argv: list[str], env: dict[str, str], stdout: Path, stderr: Path,
               role: str) -> subprocess.Popen[bytes]:
        """Start one of the job's processes, under a launch span whose context it gets as TRACEPARENT."""
        stdout.parent.mkdir(parents=True, exist_ok=True)
        with telemetry.span("agent.launch", attributes={"batchai.role": role, "batchai.node": self.node_id}) as span, \
                stdout.open("ab") as out, stderr.open("ab") as err:
            process = subprocess.Popen(argv, env=env | telemetry.environment(), cwd=env["AZ_BATCHAI_JOB_TEMP"],
                                       stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True)
            span.set_attribute("process.pid", process.pid)
        with self._lock:
            self.processes.append(process)
        return process

    def _run_and_wait(self, argv: list[str], env: dict[str, str], stdout: Path, stderr: Path, role: str) -> int:
        process = self._spawn(argv, env, stdout, stderr, role)
        code = process.wait()
        return code if code >= 0 else 128 - code


@functools.cache
def docker_engine_answers() -> bool:
    """A docker command is not enough: its engine must answer (a machine may have only the CLI)."""
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def remove_container(name: str) -> None:
    """Remove the job's container (whatever still runs in it stops); an engine that does not answer
    leaves it to Docker's own cleanup rather than holding the node."""
    try:
        subprocess.run(toolkits.container_remove_argv(name), capture_output=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired):
        pass


def task_logs(names: Any, task: str | None) -> tuple[str, str]:
    """ENVIRONMENT.md "Per-task log files": a task started on its own writes stdout-<task>.txt and
    stderr-<task>.txt; anything else this node's stdout/stderr files."""
    if task is None:
        return names.stdout, names.stderr
    return f"stdout-{task}.txt", f"stderr-{task}.txt"


def props_python(props: dict[str, Any]) -> str:
    for key in ("horovodSettings", "chainerSettings", "cntkSettings", "caffeSettings", "caffe2Settings",
                "pyTorchSettings", "tensorFlowSettings"):
        settings = props.get(key) or {}
        if settings.get("pythonInterpreterPath"):
            return str(settings["pythonInterpreterPath"])
    return "python3"


def job_variable_names(props: dict[str, Any], env: dict[str, str]) -> set[str]:
    """The variables ranks on other nodes need too (mpirun -x): the contract's and the user's."""
    names = {k for k in env if k.startswith("AZ_BATCHAI_")}
    names |= {v["name"] for v in props.get("environmentVariables") or []}
    names |= {v["name"] for v in props.get("secrets") or []}
    return names


def kill_group(process: subprocess.Popen[bytes], grace: float = 2.0) -> None:
    """Stop a process's whole group: SIGTERM, then SIGKILL after a grace period."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def loopback_mpi(local_storage: bool) -> bool:
    """The local pool's nodes are loopback addresses of one machine, unless the node says how ssh reaches others."""
    return local_storage and not os.environ.get(MPI_RSH_AGENT_VARIABLE)


def rsh_agent(local_storage: bool) -> str:
    return str(RSH_AGENT) if loopback_mpi(local_storage) else os.environ.get(MPI_RSH_AGENT_VARIABLE, "")
