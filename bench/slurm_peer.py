"""A private, throw-away Slurm on 127.0.0.1, so benchmarks can set our figures beside Slurm's
measured on the same machine in the same run.

    python bench/slurm_peer.py [--slots 8] [--jobs 200] [--submitters 8] [--samples 20]

From another bench script (run from bench/, or load this file by path):

    from slurm_peer import LocalSlurm, SlurmUnavailable, ensure_installed, install_problem

    if not ensure_installed():
        print(f"Slurm not available: {install_problem()}")
    else:
        try:
            with LocalSlurm(8, workdir) as slurm:
                per_s = slurm.submit_rate(200, 8)
        except SlurmUnavailable as error:
            print(f"Slurm not available: {error}")

Configuration choices (see `LocalSlurm._slurm_conf`), all aimed at Slurm's fastest honest setup:
- every daemon runs in the foreground (`-D`, `munged -F`) as our child, so we hold its PID from
  the start and never trust a pid file; munged gets its own key, socket, pid, seed and log under
  the work dir, so the system's munge (if any) is neither used nor disturbed;
- one node "localhost" (NodeAddr=127.0.0.1) declaring CPUs=slots, with
  SlurmdParameters=config_overrides so a 2-core machine still runs `slots` 1-CPU jobs at once
  instead of draining the node for "low CPU count";
- CommunicationParameters=NoInAddrAny so slurmctld and slurmd bind 127.0.0.1, not 0.0.0.0;
- no cgroups, accounting, job completion logging or prolog/epilog: ProctrackType=proctrack/pgid
  (a kill(-pgid, 0) per check, cheaper than linuxproc's /proc scans), TaskPlugin=task/none;
- SchedulerType=sched/builtin: with one partition and 1-CPU jobs there is nothing to backfill,
  and builtin's FIFO pass is the cheaper one; jobs still start at submit time when a CPU is free;
- SchedulerParameters=batch_sched_delay=0,sched_min_interval=0: Slurm may otherwise hold back
  scheduling of batch jobs for up to 3 s under a submit burst; a finished job's CPU is handed on
  at once rather than at the next periodic pass.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Callable, Sequence

SBIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
REQUIRED_PROGRAMS = ("sbatch", "squeue", "sinfo", "scancel", "slurmctld", "slurmd", "munged")
APT_PACKAGES = ("slurm-wlm", "munge")
SCHEDULER = "sched/builtin"
SCHEDULER_PARAMETERS = "batch_sched_delay=0,sched_min_interval=0"
STOP_TIMEOUT_S = 10.0

_install_problem = ""


class SlurmUnavailable(RuntimeError):
    """Slurm could not be installed or started here; benchmarks print it and carry on."""


def install_problem() -> str:
    """Why the last `ensure_installed()` returned False (empty when it did not)."""
    return _install_problem


def _which(program: str) -> str | None:
    """Find daemons too: /usr/sbin is often missing from PATH in venvs and cron-like shells."""
    return shutil.which(program, path=os.environ.get("PATH", "") + ":" + SBIN_PATH)


def _missing_programs() -> list[str]:
    return [program for program in REQUIRED_PROGRAMS if _which(program) is None]


def _privilege_prefix() -> list[str] | None:
    """How to run apt-get as root: directly when we are root, else through `sudo -n` if that
    works without a password; None when neither does (so we never hang on a prompt)."""
    if os.geteuid() == 0:
        return []
    sudo = _which("sudo")
    if sudo is None:
        return None
    try:
        works = subprocess.run([sudo, "-n", "true"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return None
    return [sudo, "-n"] if works else None


def _apt_get(prefix: list[str], apt_get: str, *args: str,
             timeout: float = 1200) -> subprocess.CompletedProcess[str]:
    """apt-get as root, non-interactive; `env` carries the variables through sudo's reset."""
    argv = [*prefix, "env", "DEBIAN_FRONTEND=noninteractive", f"PATH={SBIN_PATH}", apt_get, *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


def _apt_install(prefix: list[str], apt_get: str) -> str:
    """Install APT_PACKAGES; returns "" on success, else the reason."""
    install = ("install", "-y", "-qq", "--no-install-recommends",
               "-o", "DPkg::Lock::Timeout=120",
               "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold",
               *APT_PACKAGES)
    try:
        done = _apt_get(prefix, apt_get, *install)
        if done.returncode != 0:  # stale package lists are the usual cause: refresh once
            _apt_get(prefix, apt_get, "update", "-qq", timeout=600)
            done = _apt_get(prefix, apt_get, *install)
    except (OSError, subprocess.SubprocessError) as error:
        return f"apt-get failed: {error}"
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return f"apt-get install {' '.join(APT_PACKAGES)} failed: {' | '.join(tail)}"
    return ""


def ensure_installed() -> bool:
    """Install Debian's slurm-wlm and munge if a Slurm program is missing; never raises, so a
    benchmark without Slurm (no root, no apt, offline) still reports its own figures."""
    global _install_problem
    _install_problem = ""
    missing = _missing_programs()
    if not missing:
        return True
    apt_get = _which("apt-get")
    prefix = _privilege_prefix()
    if apt_get is None:
        _install_problem = f"{', '.join(missing)} missing and no apt-get to install them"
    elif prefix is None:
        _install_problem = (f"{', '.join(missing)} missing; installing needs root "
                            "or a password-less `sudo -n`")
    else:
        _install_problem = _apt_install(prefix, apt_get)
    if not _install_problem and _missing_programs():
        _install_problem = f"still missing after apt-get install: {', '.join(_missing_programs())}"
    return not _install_problem


def _free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 right now; all held open together so they differ."""
    holders = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for holder in holders:
            holder.bind(("127.0.0.1", 0))
        return [holder.getsockname()[1] for holder in holders]
    finally:
        for holder in holders:
            holder.close()


def _session_members(session_ids: set[int]) -> list[int]:
    """PIDs whose session is one of ours: what a daemon forked (e.g. slurmstepd) that a stop
    by PID would otherwise leave behind."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[3]) in session_ids:  # after "(comm)": state ppid pgrp session ...
            members.append(int(entry.name))
    return members


def _log_tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"


class LocalSlurm:
    """munged + slurmctld + slurmd for one node with `slots` CPUs, all under `workdir`.

    The benchmark figures are methods, since each needs the running cluster."""

    def __init__(self, slots: int, workdir: Path, scheduler: str = SCHEDULER,
                 scheduler_parameters: str = SCHEDULER_PARAMETERS) -> None:
        self.slots = slots
        self.workdir = Path(workdir).resolve()
        self.scheduler = scheduler
        self.scheduler_parameters = scheduler_parameters
        self.conf = self.workdir / "etc" / "slurm.conf"
        self.munge_socket = self.workdir / "munge" / "munge.socket"
        self.env = dict(os.environ, SLURM_CONF=str(self.conf),
                        PATH=os.environ.get("PATH", "") + ":" + SBIN_PATH)
        self._daemons: list[tuple[str, subprocess.Popen[bytes], Path]] = []
        self._sequence = 0

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> LocalSlurm:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()

    def start(self, timeout: float = 60.0) -> None:
        """Write the configuration, start the three daemons, wait until the node is idle."""
        missing = _missing_programs()
        if missing:
            raise SlurmUnavailable(f"not installed: {', '.join(missing)} (call ensure_installed())")
        self._make_folders()
        key = self._write_munge_key()
        ctld_port, slurmd_port = _free_ports(2)
        self.conf.write_text(self._slurm_conf(ctld_port, slurmd_port))
        (self.conf.parent / "cgroup.conf").write_text(
            "# Read only if a cgroup plugin is loaded, and none is: no systemd/dbus needed.\n"
            "CgroupPlugin=cgroup/v1\nCgroupAutomount=no\n")
        run, log = self.workdir / "run", self.workdir / "log"
        self._spawn("munged", [
            "munged", "--foreground", f"--socket={self.munge_socket}", f"--key-file={key}",
            f"--pid-file={run / 'munged.pid'}", f"--log-file={log / 'munged.log'}",
            f"--seed-file={self.workdir / 'munge-key' / 'munged.seed'}"])
        self._wait_for(lambda: self.munge_socket.exists(), timeout, "munged socket")
        self._spawn("slurmctld", ["slurmctld", "-D", "-c", "-f", str(self.conf)])
        self._wait_for(lambda: self._run(["sinfo", "-h"], check=False).returncode == 0,
                       timeout, "slurmctld answering")
        self._spawn("slurmd", ["slurmd", "-D", "-N", "localhost", "-f", str(self.conf)])
        self._wait_for(lambda: self._node_state() == "idle", timeout, "node localhost idle")

    def _make_folders(self) -> None:
        """munged insists that its socket folder (and every parent) be searchable by all but
        writable by no one else, and that its key folder be private: hence two munge folders."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o755)
        for folder in ("etc", "munge", "munge-key", "state", "spool", "log", "run", "jobs"):
            path = self.workdir / folder
            path.mkdir(exist_ok=True)
            path.chmod(0o700 if folder == "munge-key" else 0o755)

    def _write_munge_key(self) -> Path:
        """A fresh key of our own, so the system's munge (if any) is neither used nor needed."""
        key = self.workdir / "munge-key" / "munge.key"
        if not key.exists():
            key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        return key

    def stop(self) -> None:
        """Cancel jobs, then stop each daemon we started by PID (TERM, then KILL), then any
        process left in their sessions; safe to call twice."""
        if not self._daemons:
            return
        if any(name == "slurmctld" and process.poll() is None
               for name, process, _ in self._daemons):
            try:
                self._run(["scancel", "--user", "root"], check=False, timeout=10)
                self.wait_drained(timeout=10)
            except (SlurmUnavailable, subprocess.SubprocessError):
                pass  # stopping anyway; the session sweep below catches leftovers
        sessions = {process.pid for _, process, _ in self._daemons}
        for name in ("slurmd", "slurmctld", "munged"):  # munged last: the others use it to stop
            for daemon_name, process, _ in self._daemons:
                if daemon_name == name:
                    self._terminate(process.pid, lambda process=process: process.poll() is not None)
        for pid in _session_members(sessions):
            self._terminate(pid, lambda pid=pid: not Path(f"/proc/{pid}").exists())
        for _, process, _ in self._daemons:
            process.wait()
        self._daemons.clear()

    @staticmethod
    def _terminate(pid: int, gone: Callable[[], bool]) -> None:
        """SIGTERM, give it STOP_TIMEOUT_S to exit, then SIGKILL."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if gone():
                return
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + STOP_TIMEOUT_S
            while time.monotonic() < deadline and not gone():
                time.sleep(0.05)

    def _slurm_conf(self, ctld_port: int, slurmd_port: int) -> str:
        """The whole configuration; the module docstring says why each choice."""
        w, log, run = self.workdir, self.workdir / "log", self.workdir / "run"
        return f"""\
ClusterName=benchpeer
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
CommunicationParameters=NoInAddrAny
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket}
StateSaveLocation={w / 'state'}
SlurmdSpoolDir={w / 'spool'}
SlurmctldPidFile={run / 'slurmctld.pid'}
SlurmdPidFile={run / 'slurmd.pid'}
SlurmctldLogFile={log / 'slurmctld.log'}
SlurmdLogFile={log / 'slurmd.log'}
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/pgid
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType={self.scheduler}
SchedulerParameters={self.scheduler_parameters}
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=30
KillWait=5
NodeName=localhost NodeHostname=localhost NodeAddr=127.0.0.1 CPUs={self.slots} State=UNKNOWN
PartitionName=bench Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""

    def _spawn(self, name: str, argv: Sequence[str]) -> None:
        """Start a foreground daemon in its own session, output to log/<name>.out."""
        out = self.workdir / "log" / f"{name}.out"
        with out.open("ab") as sink:
            process = subprocess.Popen(argv, env=self.env, stdin=subprocess.DEVNULL, stdout=sink,
                                       stderr=subprocess.STDOUT, start_new_session=True,
                                       cwd=self.workdir)
        self._daemons.append((name, process, out))

    def _wait_for(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll `ready`, failing early with the log tail if one of our daemons has died."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process, out in self._daemons:
                if process.poll() is not None:
                    log = self.workdir / "log" / f"{name}.log"
                    raise SlurmUnavailable(f"{name} exited with {process.returncode}: "
                                           f"{_log_tail(out)} {_log_tail(log)}")
            if ready():
                return
            time.sleep(0.1)
        raise SlurmUnavailable(f"timed out after {timeout:.0f} s waiting for {what}; "
                               f"slurmd log: {_log_tail(self.workdir / 'log' / 'slurmd.log')}")

    def _run(self, argv: Sequence[str], check: bool = True,
             timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=timeout,
                              cwd=self.workdir)
        if check and done.returncode != 0:
            raise SlurmUnavailable(f"{' '.join(argv[:2])} failed: {done.stderr.strip()}")
        return done

    def _node_state(self) -> str:
        done = self._run(["sinfo", "-h", "-N", "-n", "localhost", "-o", "%T"], check=False)
        return done.stdout.strip()

    # -- job helpers -------------------------------------------------------------------------

    def sbatch(self, command: str) -> str:
        """Submit a 1-CPU batch job running `command` under /bin/sh; returns the job id."""
        done = self._run(["sbatch", "--parsable", "-J", "bench", "-n", "1", "-c", "1",
                          "-o", "/dev/null", "-D", str(self.workdir / "jobs"), "--wrap", command])
        return done.stdout.strip().split(";")[0]

    def queued(self) -> int:
        """Jobs Slurm still holds a slot or a queue place for (pending, running, completing)."""
        return len(self._run(["squeue", "-h", "-o", "%i"]).stdout.split())

    def wait_drained(self, timeout: float = 300.0, poll: float = 0.05) -> float:
        """Block until the queue is empty; returns time.time() when first seen empty."""
        deadline = time.monotonic() + timeout
        while self.queued():
            if time.monotonic() > deadline:
                raise SlurmUnavailable(f"queue not drained after {timeout:.0f} s")
            time.sleep(poll)
        return time.time()

    def _submit_many(self, n_jobs: int, concurrency: int, command: str = "true") -> None:
        """`n_jobs` sbatch calls from `concurrency` threads, each running its own sbatch."""
        with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
            for _ in pool.map(lambda _: self.sbatch(command), range(n_jobs)):
                pass

    # -- the figures -------------------------------------------------------------------------

    def submit_rate(self, n_jobs: int, concurrency: int) -> float:
        """Jobs accepted per second by `sbatch --wrap true` from `concurrency` parallel
        submitters; the jobs really run meanwhile, as our API's jobs would."""
        self.wait_drained()
        started = time.perf_counter()
        self._submit_many(n_jobs, concurrency)
        elapsed = time.perf_counter() - started
        self.wait_drained()
        return n_jobs / elapsed

    def submit_to_start_latencies(self, n: int, timeout: float = 60.0) -> list[float]:
        """Seconds from calling sbatch to the job's first command, one job at a time on an idle
        cluster; the job stamps `date +%s.%N` itself, so our polling does not blur the figure."""
        latencies = []
        for _ in range(n):
            self.wait_drained(timeout)
            self._sequence += 1
            stamp = self.workdir / "jobs" / f"start-{self._sequence}"
            called = time.time()
            self.sbatch(f"date +%s.%N > {stamp}")
            self.wait_drained(timeout)
            try:
                latencies.append(float(stamp.read_text()) - called)
            except (OSError, ValueError) as error:
                raise SlurmUnavailable(f"job left no start stamp: {error}") from error
        return latencies

    def trivial_throughput(self, n_jobs: int, concurrency: int = 8) -> float:
        """Jobs completed per second for `n_jobs` `true` jobs submitted at once on `slots`
        slots: first submit to the queue seen empty (last job fully ended, slot freed)."""
        self.wait_drained()
        started = time.time()
        self._submit_many(n_jobs, concurrency)
        ended = self.wait_drained(poll=0.02)
        return n_jobs / (ended - started)

    def version(self) -> str:
        return self._run(["sinfo", "--version"]).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slots", type=int, default=8, help="CPUs declared on the one node")
    parser.add_argument("--jobs", type=int, default=200, help="jobs for rate and throughput")
    parser.add_argument("--submitters", type=int, default=8, help="parallel sbatch callers")
    parser.add_argument("--samples", type=int, default=20, help="submit->start samples")
    args = parser.parse_args()
    if not ensure_installed():
        print(f"Slurm not available: {install_problem()}")
        return
    with tempfile.TemporaryDirectory(prefix="slurm-peer-") as folder:
        try:
            with LocalSlurm(args.slots, Path(folder)) as slurm:
                print(f"{slurm.version()}, {slurm.scheduler} ({slurm.scheduler_parameters}), "
                      f"{args.slots} slots on {os.cpu_count()} CPUs")
                slurm._submit_many(20, args.submitters)  # warm caches and the controller
                rate = slurm.submit_rate(args.jobs, args.submitters)
                print(f"sbatch submit rate ({args.submitters} submitters, {args.jobs} jobs): "
                      f"{rate:.0f} jobs/s")
                latencies = sorted(slurm.submit_to_start_latencies(args.samples))
                print(f"submit->start latency ({args.samples} jobs, idle cluster): "
                      f"median {statistics.median(latencies):.3f} s, "
                      f"min {latencies[0]:.3f} s, max {latencies[-1]:.3f} s")
                throughput = slurm.trivial_throughput(args.jobs, args.submitters)
                print(f"trivial throughput ({args.jobs} x `true`, {args.slots} slots): "
                      f"{throughput:.1f} jobs/s")
        except SlurmUnavailable as error:
            print(f"Slurm not available: {error}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
