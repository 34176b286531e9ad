"""The node agent: owns one node of a cluster for the control plane.

It registers (trading the pool's bootstrap token for the node's own credential), sets the node up
(the cluster's volumes, then the setup task) and says it is ready or unusable, heartbeats, and
asks for work with a long-poll that says what it runs now; the answer tells it to start an attempt
or to stop one that is no longer current (attempt.py runs one). Connection problems are retried
(the control plane may restart); a node the control plane removed (410) stops its job and exits.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError

from node_bootstrap.attempt import Attempt, Outcome
from node_bootstrap.node_setup import set_up_node
from node_bootstrap.scheduled_events import IMDS_URL, EvictionWatcher
from node_bootstrap.storage import NodeStorage
from shared import telemetry
from shared.models.agent import (AgentAnswer, AllPrepared, Assignment, AssignmentAnswer, AttemptRef, HeldAttempt,
                                 NodeSetupAnswer, Prepared, Problem, Ready, Registered, Registration, Report, Work)

log = logging.getLogger("node_bootstrap")
ASSIGNMENT_WAIT = 20.0
CREDENTIAL_FILE = "credential"  # in the node's folder
RETRY_SECONDS = 0.5


def own_credential(node_dir: Path) -> str:
    """The node's credential: made once (0600) before the agent first registers, and presented at
    every registration after, so that a restarted agent (or a retry whose answer was lost) is known
    as the same node, while nobody else can register in its place."""
    path = node_dir / CREDENTIAL_FILE
    try:
        if known := path.read_text().strip():
            return known
    except FileNotFoundError:
        pass
    made = secrets.token_urlsafe(32)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with os.fdopen(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
        out.write(made + "\n")
    os.replace(temp, path)
    return made


class NodeRemoved(Exception):
    """The control plane no longer knows this node: stop everything and exit."""


@dataclass(frozen=True)
class Bootstrap:
    node_dir: Path
    cluster_id: str
    node_id: str
    address: str
    token: str
    endpoint: str = ""
    endpoint_file: str | None = None
    orphan_seconds: float = 600.0  # give up after this long without reaching the control plane
    imds_url: str = IMDS_URL  # the VM's Scheduled Events (a test may point it elsewhere)
    telemetry: dict[str, str] = field(default_factory=dict)  # the control plane's exporter choice

    @classmethod
    def load(cls, node_dir: Path) -> Bootstrap:
        data = json.loads((node_dir / "bootstrap.json").read_text())
        return cls(node_dir=node_dir, cluster_id=data["cluster_id"], node_id=data["node_id"],
                   address=data.get("address", "127.0.0.1"), token=data["token"], endpoint=data.get("endpoint") or "",
                   endpoint_file=data.get("endpoint_file"), orphan_seconds=float(data.get("orphan_seconds", 600)),
                   imds_url=data.get("imds_url") or IMDS_URL, telemetry=dict(data.get("telemetry") or {}))

    def start_telemetry(self) -> None:
        """Spans and metrics go where the control plane's go (a VM's `file` exporter: its node folder)."""
        choice = self.telemetry
        telemetry.configure(choice.get("exporter") or "none", "batchai-agent", endpoint=choice.get("endpoint", ""),
                            directory=Path(choice.get("directory") or self.node_dir / "telemetry"),
                            attributes={"service.instance.id": self.node_id})


class Agent:
    def __init__(self, boot: Bootstrap) -> None:
        self.boot = boot
        self.http = httpx.Client(transport=httpx.HTTPTransport(local_address=boot.address), timeout=ASSIGNMENT_WAIT + 10)
        self.node = ""
        self.credential = ""
        self.heartbeat_seconds = 2.0
        self.storage: NodeStorage | None = None
        self.running: Attempt | None = None
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.last_contact = time.monotonic()
        # What the heartbeat says (invariant 9): while it switches attempts the agent is busy; after
        # that, it has had no live work since `quiet_since` unless its attempt still works.
        self.switching = False
        self.quiet_since = time.monotonic()

    # -- talking to the control plane ---------------------------------------------------------------
    def endpoint(self) -> str:
        if self.boot.endpoint_file:
            try:
                return Path(self.boot.endpoint_file).read_text().strip()
            except OSError:
                pass
        return self.boot.endpoint

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request, retried until the control plane answers (it may be restarting)."""
        while not self.stopping.is_set():
            base = self.endpoint()
            if base:
                try:
                    headers = {"x-batchai-node": self.node, "x-batchai-node-credential": self.credential}
                    answer = self.http.request(method, f"{base}/{path}", headers=headers, **kwargs)
                    if answer.status_code < 500:
                        self.last_contact = time.monotonic()
                        if answer.status_code == 410:
                            raise NodeRemoved(answer.text)
                        return answer
                except httpx.HTTPError:
                    pass
            if time.monotonic() - self.last_contact > self.boot.orphan_seconds:
                raise NodeRemoved("the control plane has been unreachable for too long")
            self.stopping.wait(RETRY_SECONDS)
        raise NodeRemoved("stopping")

    def register(self) -> None:
        body = Registration(cluster_id=self.boot.cluster_id, node_id=self.boot.node_id, address=self.boot.address,
                            token=self.boot.token, credential=own_credential(self.boot.node_dir))
        with telemetry.span("agent.register", attributes={"batchai.node": self.boot.node_id}):
            answer = self.call("POST", "agent/register", json=body.to_wire(reveal_secrets=True))
        if answer.status_code != 200:
            raise NodeRemoved(f"registration refused: {answer.status_code} {answer.text}")
        registered = Registered.read(answer.content)
        self.node, self.credential = registered.node, registered.credential
        self.heartbeat_seconds = registered.heartbeat_seconds
        log.info("registered as %s", self.node)

    def authed(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A call with the node's credential; registers again if the credential was refused."""
        answer = self.call(method, path, **kwargs)
        if answer.status_code == 401:
            self.register()
            answer = self.call(method, path, **kwargs)
        return answer

    # -- the loops ------------------------------------------------------------------------------------
    def run(self) -> None:
        signal.signal(signal.SIGTERM, self._terminated)
        self.boot.start_telemetry()
        try:
            self.register()
            threading.Thread(target=self._heartbeats, daemon=True).start()
            with telemetry.span("agent.setup", attributes={"batchai.node": self.boot.node_id}):
                self._set_up()
            while not self.stopping.is_set():
                self._follow_assignment()
        except NodeRemoved as reason:
            log.info("leaving: %s", reason)
        finally:
            self.stopping.set()
            self._stop_running()

    def _set_up(self) -> None:
        """Mount the cluster's volumes and run the setup task; the node is then idle or unusable."""
        answer = self.authed("GET", "agent/setup")
        if answer.status_code != 200:
            raise NodeRemoved(f"setup refused: {answer.status_code} {answer.text[:300]}")
        setup = NodeSetupAnswer.read(answer.content)
        self.storage = NodeStorage.of(setup.storage)
        if not self.storage.local:
            EvictionWatcher(self.boot.node_id, self._evicting, self.stopping, url=self.boot.imds_url).start()
        try:
            error = set_up_node(self.boot.node_dir, self.boot.address, setup, self.storage)
        except Exception as exc:  # noqa: BLE001 - a node that cannot set up says so, it never hangs
            log.exception("node setup failed")
            error = Problem.of("NodeSetupFailed", f"The node's setup failed: {type(exc).__name__}: {exc}"[:2000])
        self.authed("POST", "agent/ready", json=Ready(error=error).to_wire())
        log.info("node %s: %s", "unusable" if error else "ready", error.message if error else "set up")

    def _evicting(self) -> None:
        """The VM is about to go: the control plane requeues the job now."""
        try:
            self.authed("POST", "agent/evicting", json={})
        except NodeRemoved:
            pass

    def _terminated(self, *_: object) -> None:
        """SIGTERM (the pool removes the node, or the heartbeat found it removed): leave now,
        even from the middle of a long-poll."""
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        self.stopping.set()
        raise NodeRemoved("terminated")

    def _heartbeats(self) -> None:
        pause = self.heartbeat_seconds
        while not self.stopping.wait(pause):
            try:
                answer = self.authed("POST", "agent/heartbeat", json=self.work().to_wire())
            except NodeRemoved:
                signal.raise_signal(signal.SIGTERM)  # wakes the main loop out of its long-poll
                return
            pause = heartbeat_pause(answer, self.heartbeat_seconds)

    def work(self) -> Work:
        """The heartbeat's body: the attempt the agent holds, whether it still works toward its
        report, and for how long the agent has had no live work at all (a duration: no clock skew)."""
        now = time.monotonic()
        with self.lock:
            current, switching, quiet_since = self.running, self.switching, self.quiet_since
        running = HeldAttempt(job=current.job, attempt=current.attempt, live=current.live) if current else None
        if switching or (current is not None and current.live):
            return Work(running=running, idle_seconds=0.0)
        idle_from = max(quiet_since, current.ended_at or quiet_since) if current is not None else quiet_since
        return Work(running=running, idle_seconds=round(max(0.0, now - idle_from), 3))

    def _follow_assignment(self) -> None:
        with self.lock:
            current = self.running
        running = AttemptRef(job=current.job, attempt=current.attempt).running if current else ""
        answer = self.authed("GET", "agent/assignment", params={"wait": ASSIGNMENT_WAIT, "running": running})
        if answer.status_code != 200:
            log.warning("assignment: %s %s", answer.status_code, answer.text[:300])
            self.stopping.wait(RETRY_SECONDS)
            return
        try:
            told = AssignmentAnswer.read(answer.content)
        except ValidationError as exc:
            self._unreadable(answer.content, exc)
            return
        wanted = told.assignment
        same = bool(current and wanted and (wanted.job, wanted.attempt) == (current.job, current.attempt))
        if same or not (current or wanted):
            return
        with self.lock:
            self.switching = True
        try:
            self._switch(current, wanted, told.state)
        finally:
            with self.lock:
                self.switching, self.quiet_since = False, time.monotonic()

    def _unreadable(self, body: bytes, exc: ValidationError) -> None:
        """An assignment this agent cannot read (from a newer control plane, say) is reported as the
        attempt's failure when its job and attempt can be told, so that it never hangs; else logged."""
        log.error("an assignment the agent cannot read: %s", exc)
        try:
            held = _Unreadable.read(body).assignment
            ref = AttemptRef(job=held.job, attempt=held.attempt) if held is not None else None
        except ValidationError:
            ref = None
        if ref is not None:
            self._report(ref, Outcome(1, Problem.of("NodeAgentError", (
                f"Node {self.boot.node_id}: the node's agent could not read the assignment: {exc}"))))
        self.stopping.wait(RETRY_SECONDS)  # the control plane may hand the same assignment back

    def _switch(self, current: Attempt | None, wanted: Assignment | None, state: str) -> None:
        """Stop the attempt the control plane moved on from, start the one it wants."""
        if current:
            self._stop_running()
            if state == "running" and wanted is None:  # still held: the job is terminating
                self._report(current.assignment.ref, Outcome(143), stopped=True)
        if wanted:
            with telemetry.span("agent.assignment", parent=wanted.trace_context,
                                attributes={"batchai.node": self.boot.node_id, "batchai.job": wanted.job,
                                            "batchai.attempt": wanted.attempt}):
                self._start(wanted)

    # -- jobs -----------------------------------------------------------------------------------------
    def _start(self, assignment: Assignment) -> None:
        try:
            assert self.storage is not None, "the node has no storage set up"
            attempt = Attempt(self.boot.node_dir, self.boot.node_id, self.boot.address, assignment,
                              self.storage.for_job(), lambda outcome: self._report(assignment.ref, outcome),
                              PreparationBarrier(self, assignment.ref))
        except Exception as exc:  # noqa: BLE001 - an attempt that cannot even be made is reported
            log.exception("cannot start an attempt")
            self._report(assignment.ref, Outcome(1, Problem.of("NodeAgentError", (
                f"Node {self.boot.node_id}: the node's agent could not start the attempt: "
                f"{type(exc).__name__}: {exc}"))))
            self.stopping.wait(RETRY_SECONDS)  # the control plane may hand the same assignment back
            return
        with self.lock:
            self.running = attempt
        attempt.start()

    def _report(self, ref: AttemptRef, outcome: Outcome, stopped: bool = False) -> None:
        body = Report(job=ref.job, attempt=ref.attempt, exit_code=outcome.exit_code, error=outcome.error,
                      stopped=stopped)  # the error bounded as the agent API takes it (Problem.of)
        try:
            answer = self.authed("POST", "agent/report", json=body.to_wire())
            if answer.status_code != 200:
                log.warning("report of %s refused: %s", ref.running, answer.text[:300])
        except NodeRemoved:
            pass

    def _stop_running(self) -> None:
        with self.lock:
            attempt, self.running = self.running, None
        if attempt is not None:
            attempt.stop()


class PreparationBarrier:
    """The job's nodes meet after their job preparation, through the control plane."""

    def __init__(self, agent: Agent, ref: AttemptRef) -> None:
        self.agent = agent
        self.ref = Prepared(job=ref.job, attempt=ref.attempt)

    def prepared(self) -> None:
        self.agent.authed("POST", "agent/prepared", json=self.ref.to_wire())

    def wait_all(self, stopped: threading.Event) -> bool:
        while not stopped.is_set():
            query = {"job": self.ref.job, "attempt": self.ref.attempt, "wait": ASSIGNMENT_WAIT}
            answer = self.agent.authed("GET", "agent/prepared", params=query)
            if answer.status_code != 200:
                return False  # the attempt ended
            if AllPrepared.read(answer.content).all_prepared:
                return True
        return False


class _Held(AgentAnswer):
    job: str
    attempt: int


class _Unreadable(AgentAnswer):
    """Just enough of an assignment answer to report an assignment the agent cannot read otherwise."""

    assignment: _Held | None = None



def heartbeat_pause(answer: httpx.Response, every: float) -> float:
    """How long until the next heartbeat: a 429 means "slow down" (wait its Retry-After at least),
    never a failure; the control plane still heard from the node."""
    if answer.status_code != 429:
        return every
    try:
        return max(every, float(answer.headers.get("retry-after", every)))
    except ValueError:
        return every
