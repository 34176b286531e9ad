"""Low-priority evictions: the agent hears of its VM's eviction from Scheduled Events (a stand-in
metadata service on 127.0.0.1 here), and the control plane requeues the job without spending a
retry, as it does for a lost low-priority node."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from node_bootstrap.scheduled_events import EvictionWatcher, ScheduledEvents, preempted
from shared import nodes, pools
from shared.api import agent
from shared.api.request import ApiRequest
from shared.composition import Services
from shared.documents.resources import ClusterDocument
from tests.integration.test_dispatch_and_scaling import cluster_doc, dispatch, job, make_cluster, reconcile, svc, uid
from tests.integration.test_watchdog import registered, submit

__all__ = ["svc"]

PREEMPT = {"DocumentIncarnation": 2, "Events": [{"EventId": "e1", "EventType": "Preempt", "ResourceType": "VirtualMachine",
                                                  "Resources": ["pool-abc_7"], "EventStatus": "Scheduled"}]}


def test_a_preempt_event_names_this_instance_or_every_one() -> None:
    def said(document: dict[str, object]) -> ScheduledEvents:
        return ScheduledEvents.model_validate_json(json.dumps(document))  # as the watcher reads the service's answer

    assert preempted(said(PREEMPT), "7") and not preempted(said(PREEMPT), "17")
    assert preempted(said({"Events": [{"EventType": "Preempt", "Resources": []}]}), "3")
    assert not preempted(said({"Events": [{"EventType": "Reboot", "Resources": ["pool_3"]}]}), "3")
    assert not preempted(said({}), "3")


@pytest.fixture
def metadata_service() -> Iterator[tuple[str, list[dict]]]:
    """A stand-in for the VM's metadata service; the test sets the document it serves."""
    documents: list[dict] = [{"DocumentIncarnation": 1, "Events": []}]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            ok = self.headers.get("Metadata") == "true"
            body = json.dumps(documents[-1] if ok else {"error": "Metadata header missing"}).encode()
            self.send_response(200 if ok else 400)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/metadata/scheduledevents", documents
    finally:
        server.shutdown()
        server.server_close()


def test_the_watcher_reports_the_eviction_once(metadata_service: tuple[str, list[dict]]) -> None:
    url, documents = metadata_service
    heard, stopping = threading.Event(), threading.Event()
    calls: list[int] = []
    watcher = EvictionWatcher("7", lambda: (calls.append(1), heard.set()), stopping, url=url, every=0.05)
    watcher.start()
    assert not heard.wait(0.3)
    documents.append(PREEMPT)
    assert heard.wait(5)
    watcher.thread.join(5)
    stopping.set()
    assert calls == [1] and not watcher.thread.is_alive()


def test_an_evicted_node_requeues_its_job_without_spending_a_retry(svc: Services) -> None:
    make_cluster(svc, {"manual": {"targetNodeCount": 1}})
    registered(svc)
    submit(svc, "spot", 1)
    dispatch(svc)
    [node_id] = job(svc, "spot")["nodes"]
    node = svc.store.read(nodes.N, uid(svc), nodes.node_key(uid(svc), node_id))
    secret = "credential"
    nodes.change(svc.store, uid(svc), node_id, lambda d: setattr(d, "credential", nodes.hash_secret(secret)) or True)
    answer = agent.evicting(svc, ApiRequest("POST", "http://h/agent/evicting", body=b"{}",
                                            headers={agent.NODE_HEADER: node["id"], agent.CREDENTIAL_HEADER: secret}))
    assert answer.status == 200
    doc = job(svc, "spot")
    assert doc["state"] == "queued" and doc.get("retries", 0) == 0 and doc["history"][-1]["code"] == "NodePreempted"
    assert svc.store.read(nodes.N, uid(svc), node["id"])["state"] == "leaving"


def test_a_lost_low_priority_node_spends_no_retry(svc: Services) -> None:
    make_cluster(svc, {"manual": {"targetNodeCount": 1}})
    svc.store.replace("resources", dict(cluster_doc(svc), spec=dict(cluster_doc(svc)["spec"], vmPriority="lowpriority")),
                      etag=cluster_doc(svc)["_etag"])
    registered(svc)
    submit(svc, "spot", 1)
    dispatch(svc)
    [node_id] = job(svc, "spot")["nodes"]
    svc.pool.remove_nodes(pools.pool_id(ClusterDocument.load(cluster_doc(svc))), [node_id])  # the VM vanished
    reconcile(svc)
    doc = job(svc, "spot")
    assert doc.get("retries", 0) == 0 and doc["history"][-1]["code"] == "NodePreempted"
