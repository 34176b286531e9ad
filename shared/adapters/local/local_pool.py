"""VM pool on one machine: each node is a node agent process on its own loopback address.

Everything the pool knows lives on disk under ``root`` so that a new ``LocalVmPool`` (for instance
after the local host restarted) re-adopts the agents that are still running:

```
<root>/.locks/<pool_id>.lock, addresses.lock   inter-process locks (flock)
<root>/<pool_id>/pool.json                      the PoolSpec without its secrets
<root>/<pool_id>/bootstrap.token                the pool's bootstrap token (0600)
<root>/<pool_id>/node_counter                   last node number handed out (ids are never reused)
<root>/<pool_id>/<node_id>/bootstrap.json       what the agent reads (0600: it holds the node's own token)
<root>/<pool_id>/<node_id>/credential           the agent's credential, kept across its restarts (0600)
<root>/<pool_id>/<node_id>/agent.pid            the agent's pid (it leads its own session/group)
<root>/<pool_id>/<node_id>/agent.log            the agent's stdout and stderr
<root>/<pool_id>/<node_id>/deleting             present while the node is being removed
<root>/<pool_id>/<node_id>/exit_status          how the agent ended, when this pool saw it end
```

Agents start in their own session so that they outlive the process that started them; a pid is
trusted only if ``/proc/<pid>/cmdline`` still names the node's folder (pids get reused).
Linux only (it reads /proc).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from shared.ports.vm_pool import PoolNode, PoolNotFound, PoolSpec, VmPool, node_token

_POOL_ID = re.compile(r"^[a-z0-9-]{1,60}$")
_NODE_ID = re.compile(r"^node-(\d{4,})$")
_LOCK_TIMEOUT = 60.0  # seconds; a lock held longer than this means something is stuck
_KILL_WAIT = 5.0  # seconds to wait for processes to vanish after SIGKILL
_POLL = 0.02
_START_WINDOW = 30.0  # seconds a node folder may lack agent.pid before the node counts as failed
_LOG_TAIL_LINES = 20
_LOG_TAIL_BYTES = 4096
NODE_DIR_VARIABLE = "BATCHAI_NODE_DIR"  # in the environment of an agent and of everything it starts
# Where this project's packages live, so that `python -m node_bootstrap` works from any cwd.
_PROJECT_ROOT = Path(__file__).resolve().parents[3]


def _check_pool_id(pool_id: str) -> None:
    """Pool ids become folder names: refuse anything that could escape root."""
    if not _POOL_ID.fullmatch(pool_id):
        raise ValueError(f"invalid pool id {pool_id!r}: use 1-60 characters [a-z0-9-]")


def _write_file(path: Path, data: str, mode: int = 0o600) -> None:
    """Write atomically (temp file + rename), so readers never see half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # the umask must not widen or narrow what we asked for
        os.write(fd, data.encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except (FileNotFoundError, NotADirectoryError):
        return None


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, process group id) of a process, or None if there is no such process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = raw[raw.rfind(")") + 2:].split()  # the command name may contain spaces and ")"
    return fields[0], int(fields[2])


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _live_process_groups() -> set[int]:
    """Process group ids that have at least one process that is not a zombie."""
    groups: set[int] = set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            stat = _proc_stat(int(entry.name))
            if stat is not None and stat[0] != "Z":
                groups.add(stat[1])
    return groups


def _node_process_groups(node_dirs: Sequence[Path]) -> set[int]:
    """Process groups holding a live process that was started on one of these nodes.

    Every process of a node inherits ``BATCHAI_NODE_DIR`` from its agent, jobs in their own sessions
    included, so this finds what a deleted VM would take down with it.
    """
    marks = {f"{NODE_DIR_VARIABLE}={d}".encode() for d in node_dirs}
    groups: set[int] = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry.name}/environ").read_bytes()
        except OSError:
            continue
        if marks.intersection(environ.split(b"\0")):
            stat = _proc_stat(int(entry.name))
            if stat is not None and stat[0] != "Z":
                groups.add(stat[1])
    return groups


def _address_sequence(first: str) -> Iterator[str]:
    """127.0.0.2, ..., 127.0.0.254, 127.0.1.1, ...: host addresses of 127/8, skipping .0 and .255."""
    current = int(ipaddress.IPv4Address(first))
    last = int(ipaddress.IPv4Address("127.255.255.254"))
    while current <= last:
        if current & 0xFF not in (0, 255):
            yield str(ipaddress.IPv4Address(current))
        current += 1


class _FileLock:
    """An flock on a file, bounded in time. flock conflicts between threads too (one open each)."""

    def __init__(self, path: Path) -> None:
        self._path = path

    @contextlib.contextmanager
    def held(self, timeout: float = _LOCK_TIMEOUT) -> Iterator[None]:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise TimeoutError(f"could not lock {self._path} within {timeout:.0f} s") from None
                    time.sleep(_POLL)
            yield
        finally:
            os.close(fd)  # also releases the lock


@dataclasses.dataclass
class _Target:
    """A node being stopped: its folder and the process group to signal (None: nothing to signal)."""

    node_dir: Path
    pgid: int | None


class LocalVmPool(VmPool):
    """Node agents as local processes, one loopback address each, re-adopted from pid files."""

    gives_node_tokens = True  # each node's bootstrap.json is its own

    def __init__(self, root: Path, *, endpoint_file: Path | None = None, python: str = sys.executable,
                 first_address: str = "127.0.0.2", kill_grace: float = 2.0) -> None:
        self._root = Path(root).resolve()
        self._endpoint_file = endpoint_file
        self._python = python
        self._first_address = str(ipaddress.IPv4Address(first_address))
        if not ipaddress.IPv4Address(self._first_address).is_loopback:
            raise ValueError(f"first_address {first_address} is not a loopback address")
        self._kill_grace = kill_grace
        # Agents this object started: Popen lets us reap them (a zombie would look alive to kill(0)).
        self._children: dict[Path, subprocess.Popen[bytes]] = {}
        self._children_lock = threading.Lock()
        # Set by stop_all: from then on this object starts no agent (a resize still running in another
        # thread, a timer's say, would otherwise start agents that outlive the host that stopped).
        self._stopping = threading.Event()

    # ---------------------------------------------------------------- the port

    def create_pool(self, spec: PoolSpec) -> None:
        _check_pool_id(spec.pool_id)
        with self._pool_lock(spec.pool_id):
            pool_dir = self._root / spec.pool_id
            if (pool_dir / "pool.json").exists():
                return
            pool_dir.mkdir(parents=True, exist_ok=True)
            token = spec.bootstrap.token if spec.bootstrap is not None else ""
            _write_file(pool_dir / "bootstrap.token", token, 0o600)
            if not (pool_dir / "node_counter").exists():
                _write_file(pool_dir / "node_counter", "0")
            _write_file(pool_dir / "pool.json", json.dumps(self._public_spec(spec), indent=2))  # last: marks "exists"

    def delete_pool(self, pool_id: str) -> None:
        _check_pool_id(pool_id)
        with self._pool_lock(pool_id):
            pool_dir = self._root / pool_id
            if not pool_dir.exists():
                return
            self._remove(self._node_dirs(pool_id, include_deleting=True))
            # pool.json first, so that a crash half-way leaves a folder nobody takes for a pool.
            with contextlib.suppress(FileNotFoundError):
                (pool_dir / "pool.json").unlink()
            shutil.rmtree(pool_dir, ignore_errors=True)

    def resize(self, pool_id: str, capacity: int) -> None:
        _check_pool_id(pool_id)
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, not {capacity}")
        with self._pool_lock(pool_id):
            spec = self._load_spec(pool_id)
            self._finish_interrupted_removals(pool_id)
            nodes = self._node_dirs(pool_id)
            if len(nodes) > capacity:
                self._remove(nodes[capacity:])  # the newest ones
            for _ in range(capacity - len(nodes)):
                if self._stopping.is_set():  # checked under the pool lock, which stop_all takes after setting it
                    return
                self._start_node(pool_id, spec)

    def remove_nodes(self, pool_id: str, node_ids: Sequence[str]) -> None:
        """Remove the named nodes; unknown ids, and a pool that does not exist, are ignored."""
        _check_pool_id(pool_id)
        with self._pool_lock(pool_id):
            if not (self._root / pool_id / "pool.json").exists():
                return
            wanted = set(node_ids)
            self._remove([d for d in self._node_dirs(pool_id, include_deleting=True) if d.name in wanted])

    def list_nodes(self, pool_id: str) -> list[PoolNode]:
        _check_pool_id(pool_id)
        if not (self._root / pool_id / "pool.json").exists():
            raise PoolNotFound(pool_id)
        nodes: list[PoolNode] = []
        for node_dir in self._node_dirs(pool_id, include_deleting=True):
            node = self._describe(node_dir)
            if node is not None:
                nodes.append(node)
        return nodes

    def close(self) -> None:
        """Nothing to release; the agents keep running (see stop_all)."""

    # ---------------------------------------------------------------- beyond the port

    def stop_all(self) -> None:
        """Stop every agent under root (the local host's clean shutdown); folders stay.

        Stopped nodes then list as "failed" (still counted by resize) until they are removed. This
        object starts no node afterwards: a resize that holds a pool's lock now finishes before that
        pool's agents are stopped, and one that comes later starts nothing.
        """
        self._stopping.set()
        if not self._root.is_dir():
            return
        for pool_dir in sorted(p for p in self._root.iterdir() if (p / "pool.json").exists()):
            with self._pool_lock(pool_dir.name):
                node_dirs = self._node_dirs(pool_dir.name, include_deleting=True)
                self._terminate(node_dirs)
                for node_dir in node_dirs:
                    with contextlib.suppress(OSError):
                        _write_file(node_dir / "exit_status", "stopped by the local host")

    def agent_pid(self, pool_id: str, node_id: str) -> int | None:
        """The pid of a node's agent if it is alive (for tests and diagnostics)."""
        _check_pool_id(pool_id)
        node_dir = self._root / pool_id / node_id
        return self._alive_pid(node_dir) if _NODE_ID.fullmatch(node_id) else None

    # ---------------------------------------------------------------- internals

    def _pool_lock(self, pool_id: str) -> contextlib.AbstractContextManager[None]:
        return _FileLock(self._root / ".locks" / f"{pool_id}.lock").held()

    @staticmethod
    def _public_spec(spec: PoolSpec) -> dict[str, Any]:
        """The spec as JSON without its secrets (the password and the bootstrap token)."""
        data = dataclasses.asdict(spec)
        data.pop("admin_password", None)
        data["image_reference"] = dict(spec.image_reference)
        data["tags"] = dict(spec.tags)
        if data.get("bootstrap") is not None:
            data["bootstrap"].pop("token", None)
        return data

    def _load_spec(self, pool_id: str) -> dict[str, Any]:
        text = _read_text(self._root / pool_id / "pool.json")
        if text is None:
            raise PoolNotFound(pool_id)
        spec: dict[str, Any] = json.loads(text)
        spec["token"] = _read_text(self._root / pool_id / "bootstrap.token") or ""
        return spec

    def _node_dirs(self, pool_id: str, include_deleting: bool = False) -> list[Path]:
        """The pool's node folders ordered by node number (oldest first)."""
        try:
            entries = list((self._root / pool_id).iterdir())
        except FileNotFoundError:
            return []
        found = []
        for entry in entries:
            match = _NODE_ID.fullmatch(entry.name)
            if match and entry.is_dir() and (include_deleting or not (entry / "deleting").exists()):
                found.append((int(match.group(1)), entry))
        return [entry for _, entry in sorted(found)]

    def _finish_interrupted_removals(self, pool_id: str) -> None:
        """Nodes marked "deleting" while we hold the pool lock were left by a crash: finish them."""
        leftovers = [d for d in self._node_dirs(pool_id, include_deleting=True) if (d / "deleting").exists()]
        if leftovers:
            self._remove(leftovers)

    def _next_node_id(self, pool_id: str) -> str:
        counter = self._root / pool_id / "node_counter"
        number = int((_read_text(counter) or "0").strip() or 0) + 1
        # Never reuse: also step over folders a lost counter would not know about.
        existing = [int(m.group(1)) for d in self._node_dirs(pool_id, include_deleting=True)
                    if (m := _NODE_ID.fullmatch(d.name))]
        number = max([number, *(n + 1 for n in existing)])
        _write_file(counter, str(number))
        return f"node-{number:04d}"

    def _used_addresses(self) -> set[str]:
        used: set[str] = set()
        for bootstrap in self._root.glob("*/node-*/bootstrap.json"):
            text = _read_text(bootstrap)
            if text:
                with contextlib.suppress(ValueError, AttributeError):
                    used.add(json.loads(text)["address"])
        return used

    def _start_node(self, pool_id: str, spec: dict[str, Any]) -> None:
        """Make the node's folder (under the address lock, so addresses stay unique) and start its agent."""
        node_id = self._next_node_id(pool_id)
        node_dir = self._root / pool_id / node_id
        bootstrap = spec.get("bootstrap") or {}
        with _FileLock(self._root / ".locks" / "addresses.lock").held():
            used = self._used_addresses()
            address = next((a for a in _address_sequence(self._first_address) if a not in used), None)
            if address is None:
                raise RuntimeError("no free loopback address left for a local node")
            node_dir.mkdir(parents=True)
            document = {
                "endpoint": bootstrap.get("endpoint"),
                "endpoint_file": str(self._endpoint_file) if self._endpoint_file is not None else None,
                "cluster_id": bootstrap.get("cluster_id"),
                "token": node_token(spec["token"], node_id),  # it can register as this node only
                "node_id": node_id,
                "address": address,
                "pool_id": pool_id,
                "vm_size": spec.get("vm_size"),
                "telemetry": bootstrap.get("telemetry") or {},  # the exporter the agent's spans go to
            }
            _write_file(node_dir / "bootstrap.json", json.dumps(document, indent=2), 0o600)
        try:
            self._spawn(node_dir)
        except BaseException:
            shutil.rmtree(node_dir, ignore_errors=True)  # frees the address again
            raise

    def _spawn(self, node_dir: Path) -> None:
        # A node sees none of the control plane's settings (they hold its secrets), as a VM would not.
        env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHAI_")}
        env[NODE_DIR_VARIABLE] = str(node_dir)
        # The node's `python3` (a job's default interpreter) is the one this project runs with.
        env["PATH"] = os.pathsep.join(p for p in (str(Path(self._python).parent), env.get("PATH")) if p)
        if (_PROJECT_ROOT / "node_bootstrap").is_dir():
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_PROJECT_ROOT), env.get("PYTHONPATH")) if p)
        with open(node_dir / "agent.log", "ab") as log:
            proc = subprocess.Popen(
                [self._python, "-m", "node_bootstrap", "--node-dir", str(node_dir)],
                cwd=node_dir, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,  # own session and process group: survives us, killable as a group
            )
        with self._children_lock:
            self._children[node_dir] = proc
        # Popen returns once exec has begun, a moment before the kernel shows the new command line;
        # wait for it so that any pool object can recognise the agent as soon as agent.pid exists.
        deadline = time.monotonic() + _KILL_WAIT
        while str(node_dir) not in _cmdline(proc.pid) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.001)
        _write_file(node_dir / "agent.pid", f"{proc.pid}\n")

    def _recorded_pid(self, node_dir: Path) -> int | None:
        text = _read_text(node_dir / "agent.pid")
        try:
            return int(text.strip()) if text else None
        except ValueError:
            return None

    def _own_child(self, node_dir: Path) -> subprocess.Popen[bytes] | None:
        with self._children_lock:
            return self._children.get(node_dir)

    def _alive_pid(self, node_dir: Path) -> int | None:
        """The agent's pid if it runs: alive, not a zombie, and its command line names node_dir."""
        child = self._own_child(node_dir)
        if child is not None:
            if child.poll() is None:
                return child.pid
            self._note_exit(node_dir, child)
            return None
        pid = self._recorded_pid(node_dir)
        if pid is None:
            return None
        stat = _proc_stat(pid)
        if stat is None or stat[0] == "Z" or str(node_dir) not in _cmdline(pid):
            return None
        return pid

    def _note_exit(self, node_dir: Path, child: subprocess.Popen[bytes]) -> None:
        """Remember how our own child ended, for "failed" details seen by any later pool object."""
        with self._children_lock:
            self._children.pop(node_dir, None)
        if node_dir.exists() and _read_text(node_dir / "exit_status") is None:
            code = child.returncode
            status = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            with contextlib.suppress(OSError):
                _write_file(node_dir / "exit_status", status)

    def _describe(self, node_dir: Path) -> PoolNode | None:
        text = _read_text(node_dir / "bootstrap.json")
        if text is None:
            return None  # removed meanwhile, or not written yet
        try:
            address = str(json.loads(text).get("address", ""))
        except ValueError:
            address = ""
        if (node_dir / "deleting").exists():
            return PoolNode(node_dir.name, address, "deleting")
        if self._alive_pid(node_dir) is not None:
            return PoolNode(node_dir.name, address, "running")
        if not node_dir.exists():
            return None
        if not (node_dir / "agent.pid").exists() and self._younger_than(node_dir, _START_WINDOW):
            return PoolNode(node_dir.name, address, "creating")  # another pool object is starting it
        return PoolNode(node_dir.name, address, "failed", self._failure_details(node_dir))

    @staticmethod
    def _younger_than(path: Path, seconds: float) -> bool:
        try:
            return time.time() - path.stat().st_mtime < seconds
        except FileNotFoundError:
            return False

    @staticmethod
    def _failure_details(node_dir: Path) -> str:
        status = _read_text(node_dir / "exit_status")
        parts = [f"the node agent is not running ({status.strip() if status else 'exit status unknown'})"]
        try:
            with open(node_dir / "agent.log", "rb") as log:
                log.seek(0, os.SEEK_END)
                log.seek(max(0, log.tell() - _LOG_TAIL_BYTES))
                tail = log.read().decode(errors="replace").splitlines()[-_LOG_TAIL_LINES:]
        except OSError:
            tail = []
        if tail:
            parts.append("last lines of agent.log:\n" + "\n".join(tail))
        return "\n".join(parts)

    def _remove(self, node_dirs: Sequence[Path]) -> None:
        """Mark the nodes deleting, stop their agents, then delete their folders."""
        for node_dir in node_dirs:
            with contextlib.suppress(FileNotFoundError):
                _write_file(node_dir / "deleting", "")
        self._terminate(node_dirs)
        for node_dir in node_dirs:
            shutil.rmtree(node_dir, ignore_errors=True)

    def _target(self, node_dir: Path) -> _Target:
        """Which process group to signal for a node, never one that is not ours.

        Alive and named by its cmdline: its group. Gone (or a zombie): its pid number cannot have
        been reused while processes of its group remain, so a surviving group is still the node's.
        Alive under another cmdline: the pid was reused, so the old group is gone; leave it alone.
        """
        pid = self._alive_pid(node_dir)
        if pid is not None:
            return _Target(node_dir, pid)
        recorded = self._recorded_pid(node_dir)
        if recorded is None:
            return _Target(node_dir, None)
        stat = _proc_stat(recorded)
        if stat is None or stat[0] == "Z":
            return _Target(node_dir, recorded)
        return _Target(node_dir, None)

    def _terminate(self, node_dirs: Sequence[Path]) -> None:
        """SIGTERM each agent's process group and those of the jobs it started, SIGKILL what is left
        after the grace period: like a deleted VM, a removed node leaves no process behind."""
        targets = [self._target(d) for d in node_dirs]
        pgids = {t.pgid for t in targets if t.pgid is not None} | _node_process_groups(node_dirs)
        if not pgids:
            self._reap(node_dirs)
            return
        live = pgids & _live_process_groups()
        self._signal(live, signal.SIGTERM)
        live = self._wait_for_groups(live, self._kill_grace, node_dirs)
        live |= _node_process_groups(node_dirs)  # started while the agent was stopping
        if live:
            self._signal(live, signal.SIGKILL)
            live = self._wait_for_groups(live, _KILL_WAIT, node_dirs)
        if live:
            raise RuntimeError(f"process groups {sorted(live)} survived SIGKILL")

    @staticmethod
    def _signal(pgids: set[int], sig: signal.Signals) -> None:
        for pgid in pgids:
            try:
                os.killpg(pgid, sig)
            except (ProcessLookupError, PermissionError):  # gone, or not ours after all
                pass

    def _wait_for_groups(self, pgids: set[int], timeout: float, node_dirs: Sequence[Path]) -> set[int]:
        """Wait (bounded) until these groups have no live process; the ones still alive."""
        deadline = time.monotonic() + timeout
        while True:
            self._reap(node_dirs)
            live = pgids & _live_process_groups()
            if not live or time.monotonic() >= deadline:
                return live
            time.sleep(_POLL)

    def _reap(self, node_dirs: Sequence[Path]) -> None:
        for node_dir in node_dirs:
            child = self._own_child(node_dir)
            if child is not None and child.poll() is not None:
                self._note_exit(node_dir, child)
