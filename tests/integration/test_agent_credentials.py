"""An agent's credential acts only for its own node and the attempt that node holds: used for
another node, or for a job its node does not run, it is refused and nothing changes."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from shared import errors, nodes
from shared.api import agent
from shared.api.request import ApiRequest, ApiResponse
from shared.composition import Services
from tests.integration.test_dispatch_and_scaling import dispatch, job, make_cluster, svc, uid
from tests.integration.test_watchdog import registered, submit

__all__ = ["svc"]


def with_credentials(svc: Services) -> dict[str, str]:
    """Each node's own credential (its id as the secret), as registration would have given it."""
    secrets = {}
    for node_id in registered(svc):
        nodes.change(svc.store, uid(svc), node_id,
                     lambda d, s=node_id: setattr(d, "credential", nodes.hash_secret(f"secret-{s}")) or True)
        secrets[node_id] = f"secret-{node_id}"
    return secrets


def call(handler: Callable[[Services, ApiRequest], ApiResponse], svc: Services, node_id: str, secret: str,
         body: bytes = b"{}") -> ApiResponse:
    headers = {agent.NODE_HEADER: nodes.node_key(uid(svc), node_id), agent.CREDENTIAL_HEADER: secret}
    return handler(svc, ApiRequest("POST", "http://h/agent", body=body, headers=headers))


def test_a_credential_is_refused_on_another_node(svc: Services) -> None:
    make_cluster(svc, {"manual": {"targetNodeCount": 2}})
    first, second = with_credentials(svc).items()
    assert call(agent.heartbeat, svc, first[0], first[1]).status == 200
    with pytest.raises(errors.ApiError) as refused:
        call(agent.heartbeat, svc, second[0], first[1])  # the first node's secret, the second node's name
    assert refused.value.status == 401 and refused.value.target == agent.CREDENTIAL_HEADER


def test_a_node_cannot_report_for_an_attempt_it_does_not_hold(svc: Services) -> None:
    make_cluster(svc, {"manual": {"targetNodeCount": 2}})
    secrets = with_credentials(svc)
    submit(svc, "one", 1)
    dispatch(svc)
    holder = job(svc, "one")["nodes"][0]
    other = next(n for n in secrets if n != holder)
    doc = job(svc, "one")
    body = f'{{"job": "{doc["id"]}", "attempt": {doc["attempt"]}, "exitCode": 1}}'.encode()
    with pytest.raises(errors.ApiError) as refused:
        call(agent.report, svc, other, secrets[other], body)
    assert refused.value.status in (403, 409)
    assert job(svc, "one")["state"] == "running"  # nothing changed
