"""The safety net's decision (shared/watchdog.py `vanished`) and what the agent's heartbeat says
(node_bootstrap/agent.py `Agent.work`): pure, with times given."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from node_bootstrap.agent import Agent, Bootstrap
from node_bootstrap.attempt import Attempt
from shared.documents.nodes import NodeDocument
from shared.documents.resources import ExecutionInfo, JobDocument, JobResource, JobResourceProperties
from shared.models.agent import Assignment
from shared.watchdog import HeldAttempt, Work, vanished

T0 = datetime(2026, 1, 1, tzinfo=UTC)
GRACE = timedelta(seconds=6)


def job(started: datetime | None = None, reports: dict[str, int] | None = None) -> JobDocument:
    """The parts of attempt 2 of a running job on nodes a and b that `vanished` reads."""
    info = ExecutionInfo(start_time=started.isoformat()) if started else None
    return JobDocument.model_construct(id="job|j", pk="sub", attempt=2, nodes=["a", "b"], reports=reports or {},
                                       resource=JobResource.model_construct(
                                           properties=JobResourceProperties(execution_info=info)))


JOB = job()


def docs(claimed: datetime = T0) -> dict[str, NodeDocument]:
    return {n: NodeDocument(id=f"u|{n}", pk="u", node_id=n, cluster="cluster|c", cluster_pk="sub", state="running",
                            job="job|j", attempt=2, since=claimed.isoformat()) for n in ("a", "b")}


def beat(seconds_after_claim: float, idle: float | None, running: tuple[str, int, bool] | None = None
         ) -> tuple[datetime, Work]:
    held = HeldAttempt(job=running[0], attempt=running[1], live=running[2]) if running else None
    return T0 + timedelta(seconds=seconds_after_claim), Work(running=held, idleSeconds=idle)


def test_live_work_on_the_attempt_is_never_vanished() -> None:
    assert vanished(JOB, docs(), {"a": beat(600, 0, ("job|j", 2, True))}, GRACE) == []


def test_no_live_work_for_longer_than_the_grace_is_vanished() -> None:
    assert vanished(JOB, docs(), {"a": beat(600, 6.1, ("job|j", 2, False))}, GRACE) == ["a"]
    assert vanished(JOB, docs(), {"a": beat(600, 6.0, ("job|j", 2, False))}, GRACE) == []


def test_the_span_starts_at_the_claim_at_the_earliest() -> None:
    idle_for_hours = 7200.0
    assert vanished(JOB, docs(), {"b": beat(5, idle_for_hours)}, GRACE) == []  # still starting
    assert vanished(JOB, docs(), {"b": beat(7, idle_for_hours)}, GRACE) == ["b"]
    assert vanished(JOB, docs(), {"b": beat(-1, idle_for_hours)}, GRACE) == []  # a beat from before the claim


def test_the_span_starts_at_the_attempts_start_if_that_came_later() -> None:
    started = job(started=T0 + timedelta(seconds=60))
    assert vanished(started, docs(), {"a": beat(65, 3600)}, GRACE) == []
    assert vanished(started, docs(), {"a": beat(67, 3600)}, GRACE) == ["a"]


def test_live_work_on_another_attempt_is_a_switch_in_progress() -> None:
    assert vanished(JOB, docs(), {"a": beat(600, 0, ("job|j", 1, True))}, GRACE) == []
    assert vanished(JOB, docs(), {"a": beat(600, 60, ("job|j", 1, False))}, GRACE) == ["a"]


def test_a_node_that_reported_or_says_nothing_is_not_judged() -> None:
    reported = job(reports={"a": 0})
    assert vanished(reported, docs(), {"a": beat(600, 600, None)}, GRACE) == []
    assert vanished(JOB, docs(), {"a": beat(600, None, None)}, GRACE) == []
    assert vanished(JOB, docs(), {}, GRACE) == []


class Stub:
    """What Agent.work reads of an attempt."""

    def __init__(self, live: bool, ended_at: float | None) -> None:
        self.job, self.attempt, self.live, self.ended_at = "job|j", 2, live, ended_at


def agent(tmp_path: Path) -> Agent:
    return Agent(Bootstrap(node_dir=tmp_path, cluster_id="c", node_id="n", address="127.0.0.1", token="t"))


def test_the_agent_says_what_it_runs_and_since_when_it_has_been_idle(tmp_path: Path) -> None:
    node = agent(tmp_path)
    node.quiet_since = time.monotonic() - 30
    assert node.work().running is None and (node.work().idle_seconds or 0) >= 30
    node.running = Stub(live=True, ended_at=None)  # type: ignore[assignment]
    assert node.work().to_wire() == {"running": {"job": "job|j", "attempt": 2, "live": True}, "idleSeconds": 0.0}
    node.running = Stub(live=False, ended_at=time.monotonic() - 4)  # type: ignore[assignment]
    work = node.work().to_wire()
    assert work["running"]["live"] is False and 4 <= work["idleSeconds"] < 10
    node.switching = True
    assert node.work().idle_seconds == 0.0


def test_an_attempt_whose_thread_never_ran_is_not_live(tmp_path: Path) -> None:
    wire = Assignment.model_construct(job="job|j", attempt=2)  # only what the attempt reads before it runs
    attempt = Attempt(tmp_path, "n", "127.0.0.1", wire, None, lambda o: None, None)  # type: ignore[arg-type]
    assert not attempt.live
    body = json.dumps(agent(tmp_path).work().to_wire())
    Work.model_validate_json(body, by_alias=True, by_name=False)  # the body parses as the API takes it
