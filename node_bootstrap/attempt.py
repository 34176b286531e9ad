"""One attempt of a job on one node, from assignment to report.

Every node of the job mounts the job's volumes, creates the job's folders, runs the job
preparation, and starts the processes its toolkit gives this node (none for an MPI job's other
nodes: mpirun on the master reaches them). The node's outcome is the exit of the processes the
job waits for (a TensorFlow parameter server is not one of them): the first non-zero one, or 0
when all of them succeeded. The agent reports it; the control plane decides the job.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import select
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from node_bootstrap import job_container, toolkits
from node_bootstrap.execution_log import ExecutionLog
from node_bootstrap.launch import JobProblem, LogNames, job_environment, log_names, os_error
from node_bootstrap.storage import JobStorage
from shared import telemetry
from shared.job_environment import JobPaths
from shared.models.agent import Assignment, Problem
from shared.models.job import JobBaseProperties
from shared.volumes import Volume

RSH_AGENT = Path(__file__).with_name("local_rsh.sh")
CONTAINER_RSH_AGENT = Path(__file__).with_name("container_rsh.sh")
# Set on VMs (their systemd unit): how mpirun reaches the other nodes; then MPI goes over the network
# even where storage is local (nodes booted in network namespaces of one machine).
MPI_RSH_AGENT_VARIABLE = "BATCHAI_MPI_RSH_AGENT"
SYNC_SECONDS = 2.0  # how often blob-backed folders are pushed while the job runs


@dataclass(frozen=True)
class Outcome:
    exit_code: int
    error: Problem | None = None


Report = Callable[[Outcome], None]
log = logging.getLogger("node_bootstrap")
MESSAGE_LIMIT = 2000  # characters of a node's error message (the agent API takes up to 4000)


def until_exit(processes: list[subprocess.Popen[bytes]], timeout: float) -> None:
    """Wait until one of the processes exits or `timeout` passes: the exit is seen at once (a
    pidfd for each, Linux 5.3+), not at the next look of a poll. Where pidfds are missing, a short
    sleep (the caller looks again)."""
    fds: list[int] = []
    try:
        exits = select.poll()
        for process in processes:  # not yet reaped, so each pid is still that process (or its zombie)
            fds.append(os.pidfd_open(process.pid))
            exits.register(fds[-1], select.POLLIN)
        exits.poll(timeout * 1000)
    except (AttributeError, OSError):
        time.sleep(min(timeout, 0.05))
    finally:
        for fd in fds:
            os.close(fd)


class Barrier(Protocol):
    """The job's nodes meet after their job preparation, through the control plane."""

    def prepared(self) -> None:
        """This node has prepared."""

    def wait_all(self, stopped: threading.Event) -> bool:
        """Until every node has prepared (True), or the attempt ended (False)."""


class Attempt:
    """Runs in its own thread; `stop()` (the control plane moved on) kills whatever it started."""

    def __init__(self, node_dir: Path, node_id: str, address: str, assignment: Assignment,
                 storage: JobStorage, report: Report, barrier: Barrier) -> None:
        self.node_dir, self.node_id, self.address = node_dir, node_id, address
        self.assignment = assignment
        self.job, self.attempt = assignment.job, assignment.attempt
        self.storage = storage
        self.report = report
        self.barrier = barrier
        self.stopped = threading.Event()
        self.processes: list[subprocess.Popen[bytes]] = []
        self.container: str | None = None  # the job's container on this node, once started
        self._lock = threading.Lock()
        # Filled in as the steps get there; until then the log goes to the attempt's node folder.
        self.paths: JobPaths | None = None
        self.volumes: list[Volume] = []
        self.log = ExecutionLog(node_dir / "jobs" / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', self.job)[:200]}-{self.attempt}.log")
        self.ended_at: float | None = None  # monotonic: when it stopped working toward its report
        self.thread = threading.Thread(target=self._run, name=f"attempt-{self.attempt}", daemon=True)

    @property
    def seed(self) -> str:
        return self.assignment.seed

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
        every step up to the node's outcome; the report and the wait for the end follow it.
        Whatever fails on the way ends in a report (invariant 9): a step's own problem names its
        cause, anything unexpected is the agent's error, and the report is sent all the same."""
        try:
            outcome = self._traced_steps()
        except Exception as exc:  # noqa: BLE001 - the span itself failed: still a report
            outcome = self._unexpected(exc)
        try:
            self._finish(outcome)
        except Exception:  # noqa: BLE001 - the report went out first; the rest is cleanup
            log.exception("attempt %s#%d: cleanup failed", self.job, self.attempt)
        finally:
            self._ended()

    def _traced_steps(self) -> Outcome:
        ids = {"batchai.job": self.job, "batchai.attempt": self.attempt, "batchai.node": self.node_id,
               "batchai.master": self.assignment.master}
        with telemetry.span("agent.attempt", parent=self.assignment.trace_context, attributes=ids) as span:
            try:
                outcome = self._steps()
            except JobProblem as problem:
                outcome = self._failed(problem.code, problem.message)
            except Exception as exc:  # noqa: BLE001 - any failure is the job's error, never a silent end
                outcome = self._unexpected(exc)
            span.set_attribute("batchai.exit_code", outcome.exit_code)
            if outcome.error:
                span.set_attribute("batchai.error", outcome.error.code)
        return outcome

    def _steps(self) -> Outcome:
        props = self.assignment.properties
        paths = self.paths = JobPaths.of(self.node_dir, self.assignment.job_output_directory_path_segment, self.attempt)
        given = self.assignment.volumes
        with telemetry.span("agent.mounts", attributes={"batchai.volumes": len(given)}) as span:
            try:
                self.volumes = [v.volume() for v in given]
                errors = self.storage.mount(self.volumes, paths.job_mount_root)
            except Exception as exc:  # noqa: BLE001 - a failure to even try is a mount failure too
                raise JobProblem("MountFailed", f"cannot mount the job's volumes under {str(paths.job_mount_root)!r}: "
                                                f"{exc}") from exc
            span.set_attribute("batchai.failed", bool(errors))
        env = job_environment(self.address, self.assignment, paths)
        names = log_names(self.assignment.master, self.node_id)
        stdouterr = Path(env["AZ_BATCHAI_STDOUTERR_DIR"])
        self.log = ExecutionLog(stdouterr / names.execution)
        self.log.write(f"node {self.node_id} ({self.address}) starts attempt {self.attempt} of "
                       f"{self.assignment.job_id}")
        if errors:
            self.log.write("mount failed: " + "; ".join(errors))
            return Outcome(1, Problem.of("MountFailed", "; ".join(errors)))
        try:
            return self._prepare_and_launch(props, env, stdouterr, names, self.log)
        except JobProblem:
            raise
        except Exception as exc:  # a launch that cannot even start is the job's error, not the agent's end
            raise JobProblem("JobLaunchFailed", str(exc) or type(exc).__name__) from exc

    def _failed(self, code: str, message: str) -> Outcome:
        """The node's failure with its cause, as the job's error shows it (bounded: it goes on the wire)."""
        text = f"Node {self.node_id}: {message}"
        for secret in self.assignment.secret_values():  # invariant 7: an error is shown to every reader of the job
            text = text.replace(secret, "***")
        self.log.write(f"{code}: {text}")
        return Outcome(1, Problem.of(code, text[:MESSAGE_LIMIT]))

    def _unexpected(self, exc: Exception) -> Outcome:
        log.error("attempt %s#%d failed on the node", self.job, self.attempt, exc_info=exc)
        return self._failed("NodeAgentError", f"the node's agent failed while it prepared or ran attempt "
                                              f"{self.attempt}: {type(exc).__name__}: {exc}")

    def _ended(self) -> None:
        if self.ended_at is None:
            self.ended_at = time.monotonic()

    def _prepare_and_launch(self, props: JobBaseProperties, env: dict[str, str], stdouterr: Path,
                            names: LogNames, log: ExecutionLog) -> Outcome:
        in_container = props.container_settings is not None
        plan = toolkits.plan(props, self.assignment.nodes, self.node_id, self.seed,
                             local=loopback_mpi(self.storage.local), rsh_agent=self._rsh_agent(in_container),
                             python=props_python(props), env_names=sorted(job_variable_names(props, env)),
                             as_root=in_container or os.geteuid() == 0, in_container=in_container)
        Path(env["AZ_BATCHAI_MPI_HOST_FILE"]).write_text(plan.hostfile)
        env.update(plan.job_env)
        # A job that cannot start here fails before anything of it runs, its preparation included.
        problem = toolkits.container_unavailable_message(props.container_settings,
                                                         in_container and docker_engine_answers())
        if problem:
            log.write(problem)
            return Outcome(1, Problem.of("ContainerUnavailable", problem))
        names_in = sorted(job_variable_names(props, env) | set(plan.job_env)
                          | {name for spec in plan.processes for name in spec.env})
        if in_container and (failed := self._start_container(props, env, stdouterr, names, log)):
            return failed

        def in_job_container(command: str) -> str:
            """The spec: with containerSettings the preparation and the job run in the job's container."""
            return toolkits.container_exec_command(self.container, command, names_in) if self.container else command

        prep = props.job_preparation.command_line if props.job_preparation else None
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
                return Outcome(code, Problem.of("JobPreparationFailed",
                                                f"The job preparation on node {self.node_id} exited with code {code};"
                                                f" see {names.prep_stderr} in the stdouterr directory."))
        if len(self.assignment.nodes) > 1:  # someone may wait for it (a lone node waits for nobody:
            self.barrier.prepared()         # telling would cost a job write before its process starts)
        if self._launches_onto_others(props, plan):
            log.write("waiting for every node of the job to finish its job preparation")
            with telemetry.span("agent.barrier", attributes={"batchai.nodes": len(self.assignment.nodes)}):
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

    def _rsh_agent(self, in_container: bool) -> str:
        """How mpirun reaches the other nodes: locally local_rsh.sh; on VMs ssh with the cluster's key
        (BATCHAI_MPI_RSH_AGENT); in containers container_rsh.sh, which starts Open MPI's daemon in the
        other node's container (ssh to it on VMs)."""
        if not in_container:
            return rsh_agent(self.storage.local)
        nodes = self.assignment.nodes
        if self.storage.local:
            return toolkits.container_rsh_agent(str(CONTAINER_RSH_AGENT), self.seed, nodes, local_rsh=str(RSH_AGENT))
        user, key = job_container.ssh_identity()
        return toolkits.container_rsh_agent(str(CONTAINER_RSH_AGENT), self.seed, nodes, ssh_user=user, ssh_key=key)

    def _start_container(self, props: JobBaseProperties, env: dict[str, str], stdouterr: Path, names: LogNames,
                         log: ExecutionLog) -> Outcome | None:
        """Log in to the job's registry, then start the job's container (pulling its image; the output
        goes to the job preparation's logs); None once it runs, else the attempt's outcome. The login
        and the pull use a private Docker configuration removed right after (the password is in it)."""
        prep_out, prep_err = stdouterr / names.prep_stdout, stdouterr / names.prep_stderr
        name = toolkits.container_name(self.seed, self.node_id)
        _, ssh_key = job_container.ssh_identity()
        scripts = [str(RSH_AGENT), str(CONTAINER_RSH_AGENT)] + ([ssh_key] if ssh_key and not self.storage.local else [])
        read_write, inputs = toolkits.container_mounts(env)
        settings = props.container_settings
        assert settings is not None, "only a job with containerSettings starts a container"
        argv = toolkits.container_start_argv(settings, name, read_write, read_only=inputs + scripts,
                                             gpus=job_container.node_has_gpus())
        with job_container.private_docker_config(self.node_dir) as config:
            docker_env = env | {"DOCKER_CONFIG": str(config)}
            if (login := toolkits.docker_login(settings)) is not None:
                login_argv, password = login
                log.write("docker login " + " ".join(login_argv[2:]))
                code = job_container.registry_login(login_argv, password, docker_env, prep_out, prep_err)
                log.write(f"docker login exited with code {code}")
                if code != 0:
                    return Outcome(code, None if self.stopped.is_set() else Problem.of(
                        "RegistryLoginFailed",
                        f"Node {self.node_id} could not log in to the registry of the image "
                        f"'{toolkits.image_of(settings)}' as '{login_argv[3]}' (docker login exited with "
                        f"code {code}); see {names.prep_stderr} in the stdouterr directory."))
            log.write("starting the job's container: " + " ".join(argv))
            self.container = name  # removed at the end even if the start is cut short
            code = self._run_and_wait(argv, docker_env, prep_out, prep_err, "container")
        log.write(f"docker run exited with code {code}")
        if code == 0 and not self.stopped.is_set():
            return None
        return Outcome(code, None if self.stopped.is_set() else Problem.of(
            "ContainerStartFailed",
            f"Node {self.node_id} could not start the job's container (image "
            f"'{toolkits.image_of(settings)}'); see {names.prep_stderr} in the stdouterr directory."))

    def _launches_onto_others(self, props: JobBaseProperties, plan: toolkits.NodePlan) -> bool:
        """mpirun (or a custom command, which may use the hostfile) reaches the other nodes: they
        must have run their job preparation first."""
        if len(self.assignment.nodes) < 2 or not plan.processes:
            return False
        return props.custom_toolkit_settings is not None or any(p.role == "mpirun" for p in plan.processes)

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
                until_exit(pending, max(0.0, next_sync - time.monotonic()))
            if time.monotonic() >= next_sync:
                self.storage.push()
                next_sync = time.monotonic() + SYNC_SECONDS
        return Outcome(0)

    def _finish(self, outcome: Outcome) -> None:
        """Report first (nothing before it may fail), then wait for the control plane to end the
        attempt everywhere, and clean up."""
        if self.stopped.is_set():
            self.log.write("stopped by the control plane")
        if outcome.exit_code != 0 or self.stopped.is_set():
            # on success, processes the outcome does not wait for run on
            self._quietly("stopping processes", self.stop_processes)
        self.log.write(f"node outcome: exit code {outcome.exit_code}")
        self._quietly("pushing blob folders", self.storage.push)
        if not self.stopped.is_set():
            self._quietly("reporting", lambda: self.report(outcome))
        self._ended()
        self.stopped.wait()  # until the control plane ends the attempt everywhere
        self.stop_processes()
        if self.container:
            remove_container(self.container)
        self._quietly("pushing blob folders", self.storage.push)
        if self.paths is not None:
            self.storage.unmount(self.volumes, self.paths.job_mount_root)

    def _quietly(self, what: str, action: Callable[[], None]) -> None:
        try:
            action()
        except Exception:  # noqa: BLE001 - logged; the attempt goes on to its report and end
            log.exception("attempt %s#%d: %s failed", self.job, self.attempt, what)

    @property
    def live(self) -> bool:
        """Still working toward its report (what the heartbeat says; see shared/watchdog.py)."""
        return self.ended_at is None and self.thread.is_alive()

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
        try:
            stdout.parent.mkdir(parents=True, exist_ok=True)
            with telemetry.span("agent.launch", attributes={"batchai.role": role, "batchai.node": self.node_id}) as span, \
                    stdout.open("ab") as out, stderr.open("ab") as err:
                process = subprocess.Popen(argv, env=env | telemetry.environment(), cwd=env["AZ_BATCHAI_JOB_TEMP"],
                                           stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True)
                span.set_attribute("process.pid", process.pid)
        except (OSError, ValueError) as exc:  # ValueError: a NUL in the command or a variable
            raise JobProblem("JobLaunchFailed", f"cannot start the job's {role} process: {os_error(exc)}") from exc
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


def task_logs(names: LogNames, task: str | None) -> tuple[str, str]:
    """ENVIRONMENT.md "Per-task log files": a task started on its own writes stdout-<task>.txt and
    stderr-<task>.txt; anything else this node's stdout/stderr files."""
    if task is None:
        return names.stdout, names.stderr
    return f"stdout-{task}.txt", f"stderr-{task}.txt"


def props_python(props: JobBaseProperties) -> str:
    """The job's pythonInterpreterPath, whichever toolkit gives it; else the node's python3."""
    for settings in (props.horovod_settings, props.chainer_settings, props.cntk_settings, props.caffe_settings,
                     props.caffe2_settings, props.py_torch_settings, props.tensor_flow_settings):
        if settings is not None and settings.python_interpreter_path:
            return settings.python_interpreter_path
    return "python3"


def job_variable_names(props: JobBaseProperties, env: dict[str, str]) -> set[str]:
    """The variables ranks on other nodes need too (mpirun -x): the contract's and the user's."""
    names = {k for k in env if k.startswith("AZ_BATCHAI_")}
    names |= {v.name for v in props.environment_variables or ()}
    names |= {v.name for v in props.secrets or ()}
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
