"""Terminating a job (job_runs.terminate_job): a queued job fails at once; a running one is
`terminating`, keeps its nodes until each has stopped its processes, then fails with JobTerminated;
the watchdog ends one whose nodes never confirm."""

from __future__ import annotations

from shared import job_runs, nodes
from shared.api import agent
from shared.api.request import ApiRequest
from shared.composition import Services
from shared.documents.resources import JobDocument
from tests.integration.test_dispatch_and_scaling import dispatch, job, make_cluster, reconcile, svc, uid
from tests.integration.test_watchdog import registered, rounds, submit

__all__ = ["svc"]


def report_stopped(svc: Services, node_id: str, name: str) -> None:
    """The node's agent says it stopped the attempt's processes, through the agents' API."""
    key = nodes.node_key(uid(svc), node_id)
    nodes.change(svc.store, uid(svc), node_id, lambda d: setattr(d, "credential", nodes.hash_secret("c")) or True)
    doc = job(svc, name)
    body = f'{{"job": "{doc["id"]}", "attempt": {doc["attempt"]}, "exitCode": 143, "stopped": true}}'.encode()
    answer = agent.report(svc, ApiRequest("POST", "http://h/agent/report", body=body,
                                          headers={agent.NODE_HEADER: key, agent.CREDENTIAL_HEADER: "c"}))
    assert answer.status == 200, answer.body


def test_a_queued_job_fails_at_once(svc: Services) -> None:
    make_cluster(svc, {"manual": {"targetNodeCount": 1}})
    submit(svc, "queued", 1)
    job_runs.terminate_job(svc, JobDocument.load(job(svc, "queued")))
    props = job(svc, "queued")["resource"]["properties"]
    assert props["executionState"] == "failed" and props["executionInfo"]["errors"][0]["code"] == "JobTerminated"


def test_a_running_job_is_terminating_until_every_node_stopped_it(svc: Services) -> None:
    make_cluster(svc, {"manual": {"targetNodeCount": 2}})
    registered(svc)
    submit(svc, "pair", 2)
    dispatch(svc)
    first, second = job(svc, "pair")["nodes"]
    job_runs.terminate_job(svc, JobDocument.load(job(svc, "pair")))
    assert job(svc, "pair")["state"] == "terminating"
    held = {n.node_id: n.job for n in nodes.list_docs(svc.store, uid(svc))}
    assert held[first] == held[second] == job(svc, "pair")["id"]  # the nodes stay taken meanwhile
    report_stopped(svc, first, "pair")
    assert job(svc, "pair")["state"] == "terminating"
    report_stopped(svc, second, "pair")
    props = job(svc, "pair")["resource"]["properties"]
    assert props["executionState"] == "failed" and props["executionInfo"]["errors"][0]["code"] == "JobTerminated"
    assert all(n.state == "idle" and n.job is None for n in nodes.list_docs(svc.store, uid(svc)))


def test_the_watchdog_ends_a_termination_its_nodes_never_confirm(svc: Services) -> None:
    make_cluster(svc, {"manual": {"targetNodeCount": 1}})
    beating = registered(svc)
    reconcile(svc)
    submit(svc, "stuck", 1)
    dispatch(svc)
    job_runs.terminate_job(svc, JobDocument.load(job(svc, "stuck")))
    rounds(svc, 15, beating=beating)  # 30 s
    assert job(svc, "stuck")["state"] == "terminating"
    rounds(svc, 1, beating=beating)
    assert job(svc, "stuck")["state"] == "failed"
    assert all(n.job is None for n in nodes.list_docs(svc.store, uid(svc)))
