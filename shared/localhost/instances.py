"""`batchai local up --workers N`: N host instances over one data folder, as the Functions host
scales out on Azure.

The supervisor (the process the user started) owns what belongs to the deployment, not to an
instance: it voids the leases and heartbeat graces of an earlier run before any instance starts,
binds the HTTP socket that every instance accepts on, opens the Service Bus door, writes the
endpoint file, starts an instance again when one dies, and on Ctrl-C stops the instances, then the
pools' nodes, then removes the endpoint file. An instance serves HTTP on the inherited socket, pumps
the queue triggers (whichever instance receives a message runs it) and fires a timer only when it
holds that timer's lease for the period (`claim_timer`), as the Functions host runs one timer
invocation per schedule across its instances. An instance that dies leaves nothing to clean up:
its message locks and cluster leases expire.
"""

from __future__ import annotations

import ctypes
import dataclasses
import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from shared import leases, watchdog
from shared.adapters.local.sqlite_messaging import SqliteMessaging
from shared.auth import local_token
from shared.documents import base as documents
from shared.documents.nodes import TimerLease
from shared.composition import build_services
from shared.localhost.functions_index import IndexedFunction
from shared.localhost.timers import next_fire, resolve_schedule
from shared.nodes import parse_time, stamp
from shared.ports.clock import Clock
from shared.ports.state_store import Conflict, PreconditionFailed, StateStore
from shared.ports.messaging import Messaging
from shared.settings import Settings
from shared.wakeups import Wakeups

READY_LINE = "instance {instance} ready"
_PR_SET_PDEATHSIG = 1
_START_SECONDS = 60.0
_STOP_SECONDS = 10.0
_RESTART_SECONDS = 2.0  # an instance is started again at most this often
_TIMERS = "timers"  # the partition of the timers' leases


def claim_timer(store: StateStore, clock: Clock, name: str, schedule: str) -> bool:
    """Whether this instance fires the timer now: true for the first instance to come for this
    period; the others find it taken until most of the period has passed (a dead holder's turn
    passes to the next instance after one period)."""
    now = clock.now()
    period = max(next_fire(schedule, now) - now, timedelta(seconds=0.1))
    doc = documents.read(store, TimerLease, _TIMERS, name)
    if doc is not None and (taken := parse_time(doc.until)) is not None and taken > now:
        return False
    mine = TimerLease(id=name, pk=_TIMERS, until=stamp(now + period * 0.8))
    try:
        if doc is None:
            documents.create(store, mine)
        else:
            mine.etag = doc.etag
            documents.replace(store, mine)
    except (Conflict, PreconditionFailed):
        return False  # another instance came first
    return True


def singleton_timer(function: IndexedFunction, store: StateStore, clock: Clock, settings: Settings) -> IndexedFunction:
    """The timer function, run only by the instance that claims its period (its schedule read as
    run_timer reads it: "%BATCHAI_...%" is that setting's value)."""
    assert function.schedule is not None
    schedule, inner = resolve_schedule(function.schedule, settings), function.func

    def fire(request: Any) -> Any:
        if claim_timer(store, clock, function.name, schedule):
            return inner(request)
        return None

    return dataclasses.replace(function, func=fire)


class PeerWakeups:
    """Wake-ups between the processes of one data folder (its instances and their supervisor): a
    long-poll held by one instance is answered at once when another assigns its node work, and a
    receive waiting in one process at once when another sends to its queue (instead of at its next
    look at the file). Each process listens on an abstract Unix datagram socket named for the folder
    and its pid, and passes every key it is notified of on to the others."""

    _WAKEUP, _MESSAGES = "w", "m"

    def __init__(self, wakeups: Wakeups, data_dir: Path, messaging: Messaging | None = None) -> None:
        self.wakeups = wakeups
        self.messaging = messaging if isinstance(messaging, SqliteMessaging) else None
        self.data_dir = data_dir
        self._prefix = "\0batchai-" + hashlib.sha1(str(data_dir.resolve()).encode()).hexdigest()[:16] + "-"
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.bind(self._prefix + str(os.getpid()))
        self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sender.setblocking(False)  # a sibling too busy to read misses a shortcut, never blocks us
        self._siblings: list[str] = []
        self._seen_at = 0.0

    def start(self) -> PeerWakeups:
        threading.Thread(target=self._listen, name="peer-wakeups", daemon=True).start()
        self.wakeups.forward = lambda key: self._send(self._WAKEUP + key)
        if self.messaging is not None:
            self.messaging.forward = lambda key, count: self._send(f"{self._MESSAGES}{count or 0} {key}")
        return self

    def _listen(self) -> None:
        while True:
            try:
                text = self._socket.recv(4096).decode()
            except OSError:
                return  # closed
            kind, key = text[:1], text[1:]
            if kind == self._WAKEUP:
                self.wakeups.notify(key, forward=False)
            elif kind == self._MESSAGES and self.messaging is not None:
                count, _, entity = key.partition(" ")  # a count of 0: every receiver
                self.messaging.wake(entity, int(count) or None)

    def _send(self, text: str) -> None:
        now = time.monotonic()
        if now - self._seen_at > 1.0:  # instances come and go: look again at most once a second
            self._seen_at = now
            self._siblings = [self._prefix + str(pid) for pid in _local_up_pids(self.data_dir, None)
                              if pid != os.getpid()]
        for address in self._siblings:
            try:
                self._sender.sendto(text.encode(), address)
            except OSError:
                pass  # that process has gone (or is not listening): a shortcut missed, nothing lost

    def close(self) -> None:
        self.wakeups.forward = None
        if self.messaging is not None:
            self.messaging.forward = None
        self._socket.shutdown(socket.SHUT_RDWR)
        self._socket.close()
        self._sender.close()


def die_with_parent() -> None:
    """In a child before exec (preexec_fn): killed when its parent dies, however it dies."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclasses.dataclass
class Instance:
    number: int
    process: subprocess.Popen[str]
    ready: threading.Event
    started: float = dataclasses.field(default_factory=time.monotonic)


class Supervisor:
    """Runs N instances until Ctrl-C (or SIGTERM); see the module's docstring."""

    def __init__(self, settings: Settings, *, workers: int, host: str, port: int, echo: Callable[[str], None],
                 on_ready: Callable[[str, Any], None]) -> None:
        self.settings = settings
        self.workers = workers
        self.host = host
        self.port = port
        self.echo = echo
        self.on_ready = on_ready  # announces the endpoint (and opens the door) once every instance serves
        self._stopping = threading.Event()
        self._instances: list[Instance] = []

    def run(self, prepare: Callable[[Any], None], finish: Callable[[Any], None]) -> None:
        """Called by LocalHost.run, which has made the data folder private and holds it."""
        local_token.ensure(self.settings.token_path)
        svc = build_services(self.settings)
        peers = PeerWakeups(svc.wakeups, self.settings.data_dir, svc.messaging).start()  # the door's queues
        leases.clear_all(svc.store)  # no instance runs yet: leases of an earlier run are void
        watchdog.resume_all(svc)  # nobody could heartbeat while the deployment was down: fresh graces
        prepare(svc)
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(2048)
        listener.set_inheritable(True)
        previous = {s: signal.signal(s, lambda *_: self._stopping.set()) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            self._instances = [self._start(n, listener.fileno()) for n in range(self.workers)]
            deadline = time.monotonic() + _START_SECONDS
            for instance in self._instances:
                while not instance.ready.wait(0.1):
                    if self._stopping.is_set() or instance.process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"instance {instance.number} did not start")
            self.on_ready(f"http://{self.host}:{listener.getsockname()[1]}", svc)
            self._watch(listener.fileno())
        finally:
            self._stop_instances()
            listener.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            peers.close()
            finish(svc)

    def _start(self, number: int, fd: int) -> Instance:
        command = [sys.executable, "-m", "shared.localhost", "up", "--data-dir", str(self.settings.data_dir),
                   "--port", str(self.port), "--instance", str(number), "--listen-fd", str(fd)]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, pass_fds=(fd,),
                                   preexec_fn=die_with_parent)
        instance = Instance(number, process, threading.Event())
        threading.Thread(target=self._relay, args=(instance,), daemon=True).start()
        return instance

    def _relay(self, instance: Instance) -> None:
        """Pass the instance's output on, and notice when it serves."""
        assert instance.process.stdout is not None
        ready = READY_LINE.format(instance=instance.number)
        for line in instance.process.stdout:
            text = line.rstrip("\n")
            if text.startswith(ready):
                instance.ready.set()
            self.echo(text)

    def _watch(self, fd: int) -> None:
        """An instance that dies is replaced, as the Functions host replaces a failed worker."""
        while not self._stopping.wait(0.2):
            for k, instance in enumerate(self._instances):
                code = instance.process.poll()
                if code is not None and not self._stopping.is_set():
                    if time.monotonic() - instance.started < _RESTART_SECONDS:
                        continue  # one that dies at once is not started again in a tight loop
                    self.echo(f"instance {instance.number} exited with code {code}; starting it again")
                    self._instances[k] = self._start(instance.number, fd)

    def _stop_instances(self) -> None:
        for instance in self._instances:
            if instance.process.poll() is None:
                instance.process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + _STOP_SECONDS
        for instance in self._instances:
            try:
                instance.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                instance.process.kill()
                instance.process.wait()


def instance_pids(data_dir: Path) -> list[int]:
    """Pids of the instances serving a data folder (for the chaos bench and tests): processes of
    `local up --instance` whose command line names the folder."""
    return _local_up_pids(data_dir, instances=True)


def host_pids(data_dir: Path) -> list[int]:
    """Pids of the hosts a user started on a data folder (a supervisor, or a single host)."""
    return _local_up_pids(data_dir, instances=False)


def _local_up_pids(data_dir: Path, instances: bool | None) -> list[int]:
    """`local up` processes of the folder (`python -m shared.localhost up`, which `batchai local up`
    execs): its instances (True), the hosts users started (False), or all."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if (argv[1:4] == [b"-m", b"shared.localhost", b"up"] and str(data_dir).encode() in argv
                and (instances is None or (b"--instance" in argv) == instances)):
            pids.append(int(entry.name))
    return sorted(pids)


def local_down(settings: Settings, echo: Callable[[str], None], timeout: float = 30.0) -> None:
    """`batchai local down`: stop the folder's host as Ctrl-C would (instances, then nodes), or — with
    no host running — the nodes its pools left behind."""
    hosts = host_pids(settings.data_dir)
    for pid in hosts:
        os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + timeout
    while hosts and time.monotonic() < deadline and any(running(pid) for pid in hosts):
        time.sleep(0.1)
    from shared.adapters.local.local_pool import LocalVmPool

    LocalVmPool(settings.pools_dir, endpoint_file=settings.endpoint_file).stop_all()
    echo(f"Batch AI local host in {settings.data_dir} is down" + (f" ({len(hosts)} host stopped)" if hosts else ""))


def running(pid: int) -> bool:
    """Alive and not a zombie (a host that has exited waits as one for whoever started it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"
