"""A cluster's bootstrap token registers only the nodes its pool made, each once (issue 16.8).

With the embedded store and an in-memory pool: a made-up node id is refused (403, no credential,
nothing stored); a node of the pool registers; a second registration of its id with another
credential is refused and changes nothing, while the same credential (a restarted agent, a retry
whose answer was lost) is accepted. Where the pool gives each node its own token, the pool's token
registers nobody and a node's token registers that node only. Then on the real local host: its
real node registers and runs a job, while a rogue id and a second registration are refused."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from node_bootstrap.agent import own_credential
from shared import errors, nodes
from shared.api import agent
from shared.api.request import ApiRequest, ApiResponse
from shared.composition import Services
from shared.localhost.process import LocalHostProcess
from shared.ports.vm_pool import node_token
from tests.e2e.hosts import running_host
from tests.e2e.polling import wait_until
from tests.security.one_node_cluster import one_node_cluster
from tests.integration.test_dispatch_and_scaling import cluster_doc, make_cluster, svc, uid

__all__ = ["svc"]
CREDENTIAL, OTHER = "c" * 40, "o" * 40
LEAKS = ("credential", "setupTask", "storage", "volumes")  # what a registration must not hand a stranger


def register(svc: Services, node_id: str, token: str | None = None, credential: str = CREDENTIAL) -> ApiResponse:
    body = {"clusterId": cluster_doc(svc)["resource"]["id"], "nodeId": node_id, "address": "127.0.0.9",
            "token": cluster_doc(svc)["agentToken"] if token is None else token, "credential": credential}
    return agent.register(svc, ApiRequest("POST", "http://h/agent/register", body=json.dumps(body).encode()))


def refused(svc: Services, node_id: str, **kwargs: Any) -> errors.ApiError:
    with pytest.raises(errors.ApiError) as caught:
        register(svc, node_id, **kwargs)
    assert not any(leak in json.dumps(caught.value.body()) for leak in LEAKS[1:])
    assert CREDENTIAL not in json.dumps(caught.value.body())
    return caught.value


def beats(svc: Services, node_id: str, credential: str) -> bool:
    headers = {agent.NODE_HEADER: nodes.node_key(uid(svc), node_id), agent.CREDENTIAL_HEADER: credential}
    svc.clock.advance(1)  # beats come no faster than the heartbeat rate limit allows
    try:
        return agent.heartbeat(svc, ApiRequest("POST", "http://h/agent/heartbeat", body=b"{}", headers=headers)).status == 200
    except errors.ApiError:
        return False


def test_a_made_up_node_id_is_refused_and_nothing_stored(svc: Services) -> None:
    make_cluster(svc, {"manual": {"targetNodeCount": 1}})
    for rogue in ("node-rogue", "node-9999", "0"):
        error = refused(svc, rogue)
        assert (error.status, error.code, error.target) == (403, "NodeNotAdmitted", "nodeId")
    assert [d.node_id for d in nodes.list_docs(svc.store, uid(svc))] == ["node-0001"]


def test_a_node_registers_once_and_again_only_with_its_credential(svc: Services) -> None:
    make_cluster(svc, {"manual": {"targetNodeCount": 1}})
    first = register(svc, "node-0001")
    assert first.status == 200 and first.body["credential"] == CREDENTIAL
    error = refused(svc, "node-0001", credential=OTHER)  # somebody else, with the cluster's token
    assert (error.status, error.code, error.target) == (403, "NodeNotAdmitted", "nodeId")
    assert beats(svc, "node-0001", CREDENTIAL) and not beats(svc, "node-0001", OTHER)  # nothing changed
    assert register(svc, "node-0001").status == 200  # the same agent again: restarted, or its answer was lost
    assert beats(svc, "node-0001", CREDENTIAL)


def test_a_node_that_left_the_pool_cannot_register_again(svc: Services) -> None:
    make_cluster(svc, {"manual": {"targetNodeCount": 1}})
    pool_id = next(iter(svc.pool.pools))  # type: ignore[attr-defined]
    svc.pool.remove_nodes(pool_id, ["node-0001"])
    nodes.delete(svc.store, uid(svc), "node-0001")
    assert refused(svc, "node-0001").status == 403


def test_where_nodes_get_their_own_tokens_the_pools_token_registers_nobody(svc: Services) -> None:
    make_cluster(svc, {"manual": {"targetNodeCount": 2}})
    svc.pool.gives_node_tokens = True  # as the local pool does
    pool_token = cluster_doc(svc)["agentToken"]
    assert refused(svc, "node-0001").status == 403  # the pool's token
    assert refused(svc, "node-0002", token=node_token(pool_token, "node-0001")).status == 401  # another node's
    assert refused(svc, "node-0001", token=node_token("another cluster's", "node-0001")).status == 401
    assert register(svc, "node-0001", token=node_token(pool_token, "node-0001")).status == 200


def test_the_agent_keeps_its_credential_private_and_reuses_it(tmp_path: Path) -> None:
    made = own_credential(tmp_path)
    assert len(made) >= 32 and own_credential(tmp_path) == made
    assert stat.S_IMODE((tmp_path / "credential").stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["credential"]


# ---------------------------------------------------------------- the real local host

WS = "/subscriptions/sec/resourceGroups/rg/providers/Microsoft.BatchAI/workspaces/nodes"
CLUSTER = f"{WS}/clusters/one"
Q = {"api-version": "2018-05-01"}


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHostProcess]:
    with running_host(tmp_path_factory.mktemp("registration") / "state") as host:
        yield host


def test_on_the_local_host_only_the_pools_own_node_registers(host: LocalHostProcess) -> None:
    with httpx.Client(base_url=host.endpoint, params=Q, timeout=30, headers=host.headers) as http:
        one_node_cluster(http, WS, nodeSetup={"setupTask": {
            "commandLine": "true", "stdOutErrPathPrefix": "$AZ_BATCHAI_JOB_TEMP",
            "secrets": [{"name": "S", "value": "setup-secret"}]}})
        counts = lambda: http.get(CLUSTER).json()["properties"]["nodeStateCounts"]  # noqa: E731
        wait_until("the real node to register and be idle", lambda: counts()["idleNodeCount"] == 1, timeout=60)

        [node_dir] = (host.data_dir / "pools").glob("*/node-*")
        boot = json.loads((node_dir / "bootstrap.json").read_text())
        pool_token = (node_dir.parent / "bootstrap.token").read_text()
        assert boot["token"] == node_token(pool_token, node_dir.name) and pool_token not in json.dumps(boot)

        def attempt(node_id: str, token: str) -> httpx.Response:
            return httpx.post(f"{host.endpoint}/agent/register", timeout=10, json={
                "clusterId": boot["cluster_id"], "nodeId": node_id, "address": "127.0.0.250", "token": token,
                "credential": os.urandom(24).hex()})

        for node_id, token in (("node-rogue", pool_token),  # the attack: the cluster's token, any id
                               ("node-9999", node_token(pool_token, "node-9999")),  # a token for an id never made
                               (node_dir.name, boot["token"])):  # the real node's id and token, a second time
            answer = attempt(node_id, token)
            assert answer.status_code == 403, (node_id, answer.text)
            assert answer.json()["error"]["target"] == "nodeId"
            assert not any(leak in answer.text for leak in LEAKS) and "setup-secret" not in answer.text
        assert counts()["idleNodeCount"] == 1 and sum(counts().values()) == 1  # no rogue node joined

        http.put(f"{WS}/experiments/e/jobs/after", json={"properties": {  # the real node still works
            "cluster": {"id": CLUSTER}, "nodeCount": 1, "stdOutErrPathPrefix": "$AZ_BATCHAI_JOB_TEMP",
            "customToolkitSettings": {"commandLine": "true"}}}).raise_for_status()
        wait_until("the job to succeed on the real node", lambda: http.get(f"{WS}/experiments/e/jobs/after").json()
                   ["properties"]["executionState"] == "succeeded", timeout=60)
