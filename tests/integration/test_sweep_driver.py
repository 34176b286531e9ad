"""The sweep timer's round over the real embedded store and queues, with an in-memory VM pool and a
manual clock: a trial recorded before its job exists gets it exactly once, the budget's duration ends
a sweep by the clock, and a job that fails or reports no metric is a failed trial."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared import resources
from shared.api import sweeps
from shared.composition import Services
from shared.documents.resources import SweepDocument
from shared.ids import SWEEP, ResourceRef
from shared.ports.state_store import Query
from shared.resources import R
from shared.sweeps import driver
from tests.integration.test_dispatch_and_scaling import WS, call, dispatch, finish, job, make_cluster, make_services

NAME = "sw"


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Services]:
    services = make_services(tmp_path)
    make_cluster(services, {"manual": {"targetNodeCount": 2}})
    yield services
    services.close()


def create(svc: Services, **budget: Any) -> None:
    call(sweeps.create, svc, {"experimentName": "e", "sweepName": NAME}, {"properties": {
        "jobTemplate": {"cluster": {"id": f"{WS}/clusters/c"}, "nodeCount": 1, "stdOutErrPathPrefix": "/tmp",
                        "customToolkitSettings": {"commandLine": "echo {{N}}"}},
        "parameters": [{"paramType": "DiscreteParam", "parameterName": "N", "values": [1, 2, 3, 4]}],
        "sampling": {"algorithm": "grid"},
        "objective": {"metricName": "n", "goal": "maximize", "source": "metricsFile"},
        "budget": {"maxTrials": 4, "maxConcurrentTrials": 2} | budget}})


def ref() -> ResourceRef:
    return ResourceRef("sub", "rg", SWEEP, ("ws", "e", NAME))


def sweep(svc: Services) -> dict[str, Any]:
    """The sweep's document as stored."""
    return resources.require(svc.store, ref()).to_json()


def sweep_doc(svc: Services) -> SweepDocument:
    return resources.require(svc.store, ref(), SweepDocument)


def trials(svc: Services) -> list[dict[str, Any]]:
    return list(sweep(svc)["trials"])


def jobs(svc: Services) -> list[str]:
    return sorted(d["resource"]["name"] for d in svc.store.query(R, Query(where={"kind": "job"})))


def test_a_trial_recorded_before_its_job_gets_it_once(svc: Services) -> None:
    create(svc)
    assert [t["state"] for t in trials(svc)] == ["queued", "queued"] and jobs(svc) == ["sw-0000", "sw-0001"]
    finish_running(svc, "sw-0000", exit_code=0)
    # The round's write, and then a crash before the job's PUT: the trial is recorded, its job is not.
    resources.mutate_doc(svc.store, sweep_doc(svc), lambda doc: driver._step(svc, ref(), doc))
    assert len(trials(svc)) == 3 and jobs(svc) == ["sw-0000", "sw-0001"]
    driver.run_round(svc)
    driver.run_round(svc)
    assert len(trials(svc)) == 3 and jobs(svc) == ["sw-0000", "sw-0001", "sw-0002"]
    assert trials(svc)[2]["parameters"] == {"N": 3}


def finish_running(svc: Services, name: str, exit_code: int) -> None:
    dispatch(svc)
    finish(svc, name, exit_code)


def test_a_job_that_fails_or_reports_no_metric_is_a_failed_trial(svc: Services) -> None:
    create(svc)
    dispatch(svc)
    finish(svc, "sw-0000", 0)
    finish(svc, "sw-0001", 3)
    driver.run_round(svc)
    first, second = trials(svc)[:2]
    assert first["state"] == "failed" and "reported no value of 'n'" in first["reason"]
    assert second["state"] == "failed" and second["reason"].startswith("The trial's job failed: JobFailed")
    assert "finalMetric" not in first and "finalMetric" not in second


def test_max_duration_ends_the_sweep_by_the_clock(svc: Services) -> None:
    create(svc, maxDuration="PT1M")
    svc.clock.advance(59)
    driver.run_round(svc)
    assert sweep(svc)["state"] == "running"
    svc.clock.advance(1)
    driver.run_round(svc)
    done = sweep(svc)
    assert done["state"] == "failed"  # no trial succeeded
    assert [t["state"] for t in done["trials"]] == ["canceled", "canceled"]
    assert done["trials"][0]["reason"] == "The sweep reached its maxDuration (60 s)."
    assert [job(svc, n)["state"] for n in ("sw-0000", "sw-0001")] == ["failed", "failed"]  # terminated
    assert job(svc, "sw-0000")["resource"]["properties"]["executionInfo"]["errors"][0]["code"] == "JobTerminated"
    # Its SweepCompleted event waits in the outbox (this fixture has no topic; the e2e tests see it sent).
    assert [e["type"] for e in done["outbox"]] == ["Microsoft.BatchAI.SweepCompleted"] and done["outboxPending"]
    assert done["outbox"][0]["data"]["trialCounts"]["canceled"] == 2


def test_an_ended_sweep_terminates_what_a_crash_left_running(svc: Services) -> None:
    create(svc, maxDuration="PT1M")
    dispatch(svc)
    assert job(svc, "sw-0000")["state"] == "running"
    svc.clock.advance(60)
    # The round's write ends the sweep; a crash comes before its jobs are terminated.
    resources.mutate_doc(svc.store, sweep_doc(svc), lambda doc: driver._step(svc, ref(), doc))
    assert sweep(svc)["state"] == "failed" and job(svc, "sw-0000")["state"] == "running"
    driver.run_round(svc)
    assert job(svc, "sw-0000")["state"] == "terminating"
    assert sweep(svc).get("settling")  # until its nodes have stopped the job
