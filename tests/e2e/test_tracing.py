"""One connected trace per job, end to end: the real local host with BATCHAI_OTEL_EXPORTER=file, two
real agents and a 2-node job. Every process writes its spans as JSON lines under
<data dir>/telemetry/; the test reads them all and follows the parent links from the create call to
the processes the job launched, which see the trace as TRACEPARENT."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.localhost.process import LocalHostProcess
from tests.e2e.polling import wait_until
from tests.e2e.hosts import running_host

WS = "/subscriptions/e2e/resourceGroups/rg/providers/Microsoft.BatchAI/workspaces/traced"
CLUSTER = f"{WS}/clusters/two"
JOB = f"{WS}/experiments/e/jobs/job1"
Q = {"api-version": "2018-05-01"}
Span = dict[str, Any]


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHostProcess]:
    env = {"BATCHAI_OTEL_EXPORTER": "file", "BATCHAI_HEARTBEAT_SECONDS": "0.5"}
    with running_host(tmp_path_factory.mktemp("tracing") / "state", env) as host:
        yield host


def read_spans(data_dir: Path) -> list[Span]:
    """Every span every process wrote (a line being written at this moment is skipped)."""
    spans = []
    for path in (data_dir / "telemetry").glob("*.jsonl"):
        for line in path.read_text().splitlines():
            try:
                spans.append(json.loads(line) | {"file": path.name})
            except ValueError:
                continue
    return spans


def connected_trace(data_dir: Path, create: Span) -> dict[str, Span] | None:
    """The create call's trace by span id, once every span in it has its parent there too."""
    spans = {s["span_id"]: s for s in read_spans(data_dir) if s["trace_id"] == create["trace_id"]}
    orphans = [s for s in spans.values() if s["parent_span_id"] is not None and s["parent_span_id"] not in spans]
    return None if orphans else spans


def create_trace_id(host: LocalHostProcess) -> str:
    (create,) = [s for s in read_spans(host.data_dir) if s["name"] == "Jobs_Create"]
    return str(create["trace_id"])


def ancestors(span: Span, spans: dict[str, Span]) -> list[str]:
    chain = []
    while span["parent_span_id"] is not None:
        span = spans[span["parent_span_id"]]
        chain.append(span["span_id"])
    return chain


def test_one_trace_follows_a_job_from_its_create_call_to_its_processes(host: LocalHostProcess,
                                                                       tmp_path: Path) -> None:
    seen = tmp_path / "traceparents"
    seen.mkdir()
    with httpx.Client(base_url=host.endpoint, params=Q, timeout=30, headers=host.headers) as http:
        http.put(WS, json={"location": "local"}).raise_for_status()
        http.put(f"{WS}/experiments/e", json={}).raise_for_status()
        http.put(CLUSTER, json={"properties": {
            "vmSize": "STANDARD_D1_V2", "scaleSettings": {"manual": {"targetNodeCount": 2}},
            "userAccountSettings": {"adminUserName": "u", "adminUserPassword": "p"}}}).raise_for_status()
        wait_until("2 idle nodes", lambda: http.get(CLUSTER).json()["properties"]["nodeStateCounts"]
                   ["idleNodeCount"] == 2, 60)
        # Both nodes run the job preparation (a process launch on each); the master runs the command.
        body = {"properties": {
            "cluster": {"id": CLUSTER}, "nodeCount": 2, "stdOutErrPathPrefix": "$AZ_BATCHAI_JOB_TEMP",
            "jobPreparation": {"commandLine": f'echo "$TRACEPARENT" > {seen}/prep-$$'},
            "customToolkitSettings": {"commandLine": f'echo "$TRACEPARENT" > {seen}/command; echo "$TRACEPARENT"'}}}
        http.put(JOB, json=body).raise_for_status()
        props = wait_until("the job to end", lambda: (p := http.get(JOB).json()["properties"])["executionState"]
                           in ("succeeded", "failed") and p, 90)
        assert props["executionState"] == "succeeded", props
        shown = http.get(JOB).text
        assert "traceContext" not in shown and create_trace_id(host) not in shown  # stored, never returned

    data_dir = host.data_dir
    creates = [s for s in read_spans(data_dir) if s["name"] == "Jobs_Create" and s["kind"] == "SERVER"]
    assert len(creates) == 1, creates
    create = creates[0]
    assert create["parent_span_id"] is None  # the root: the test sent no traceparent
    assert create["attributes"]["url.path"].endswith("/jobs/job1")
    assert create["service"] == "batchai-localhost"
    spans = wait_until("every span of the job's trace with its parent", lambda: connected_trace(data_dir, create), 15)

    (dispatch,) = [s for s in spans.values() if s["name"] == "dispatch"
                   and s["attributes"].get("batchai.decision") == "placed"]
    assert create["span_id"] in ancestors(dispatch, spans)
    attempts = [s for s in spans.values() if s["name"] == "agent.attempt"]
    assert sorted(s["attributes"]["batchai.master"] for s in attempts) == [False, True]
    assert len({s["attributes"]["batchai.node"] for s in attempts}) == 2
    assert len({s["file"] for s in attempts}) == 2, "one attempt span from each agent process"
    assert all(s["service"] == "batchai-agent" and s["parent_span_id"] == dispatch["span_id"] for s in attempts)
    assert all(s["attributes"]["batchai.exit_code"] == 0 for s in attempts)
    launches = [s for s in spans.values() if s["name"] == "agent.launch"]
    for attempt in attempts:
        mine = [s for s in launches if attempt["span_id"] in ancestors(s, spans)]
        roles = sorted(s["attributes"]["batchai.role"] for s in mine)
        assert roles == (["jobPreparation", "master"] if attempt["attributes"]["batchai.master"]
                         else ["jobPreparation"]), roles
    assert sum(1 for s in spans.values() if s["parent_span_id"] is None) == 1  # one trace, one root

    # The processes saw the trace: each TRACEPARENT names the trace and the launch span that started it.
    written = [p.read_text().strip() for p in seen.iterdir()]
    assert len(written) == 3, written  # two preparations, one command
    for value in written:
        version, trace_id, span_id, _flags = value.split("-")
        assert (version, trace_id) == ("00", create["trace_id"])
        assert spans[span_id]["name"] == "agent.launch"

    # Nothing secret in any span: the job's command lines and the host's token are not attributes.
    token = host.headers.get("Authorization", "").removeprefix("Bearer ")
    text = json.dumps([s["attributes"] for s in read_spans(data_dir)])
    assert str(seen) not in text and (not token or token not in text)


def metric_names(data_dir: Path) -> set[str]:
    """The names of the metrics the processes exported so far (the file exporter: every 5 s)."""
    names = set()
    for path in (data_dir / "telemetry" / "metrics").glob("*.jsonl"):
        for line in path.read_text().splitlines():
            try:
                batch = json.loads(line)
            except ValueError:
                continue
            names |= {m["name"] for r in batch["resource_metrics"] for s in r["scope_metrics"] for m in s["metrics"]}
    return names


def test_metrics_of_the_queues_nodes_and_starts_are_exported(host: LocalHostProcess) -> None:
    wanted = {"batchai.queue.depth", "batchai.nodes", "batchai.job.queue_wait", "batchai.job.submit_to_start"}
    wait_until("the scheduler's metrics", lambda: wanted <= metric_names(host.data_dir), 20,
               describe=lambda: sorted(metric_names(host.data_dir)))
