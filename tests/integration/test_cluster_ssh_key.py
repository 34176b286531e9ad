"""Each cluster gets its own ssh key pair for mpirun between its nodes: made when the cluster is
created, handed to its pool (so to its VMs' user data), and never in any answer of the API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.api import clusters
from shared.api.request import ApiRequest
from shared.composition import Services
from tests.integration.fake_pool import FakeVmPool
from tests.integration.test_dispatch_and_scaling import Q, ROUTE, cluster_doc, make_cluster, make_services


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Services]:
    services = make_services(tmp_path)
    yield services
    services.close()


def test_each_cluster_has_its_own_key_pair_that_no_read_returns(svc: Services, tmp_path: Path) -> None:
    make_cluster(svc, {"manual": {"targetNodeCount": 1}}, name="a")
    make_cluster(svc, {"manual": {"targetNodeCount": 1}}, name="b")
    keys = {name: cluster_doc(svc, name)["sshKey"] for name in ("a", "b")}
    assert keys["a"]["private"].startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert keys["a"]["public"].startswith("ssh-ed25519 ")
    assert keys["a"]["private"] != keys["b"]["private"]
    pool = svc.pool
    assert isinstance(pool, FakeVmPool)
    spec = pool.specs[f"c{cluster_doc(svc, 'a')['uid']}"]
    assert spec.bootstrap is not None and spec.bootstrap.ssh_public_key == keys["a"]["public"]
    assert spec.bootstrap.ssh_private_key == keys["a"]["private"] and keys["a"]["private"] not in repr(spec)
    answers = [clusters.get(svc, ApiRequest("GET", "http://h/x", route={**ROUTE, "clusterName": "a"}, query=Q)),
               clusters.list_by_workspace(svc, ApiRequest("GET", "http://h/x", route=ROUTE, query=Q))]
    for answer in answers:
        text = json.dumps(answer.body)
        assert answer.status == 200
        assert "sshKey" not in text and "PRIVATE KEY" not in text and keys["a"]["public"] not in text
    stored = sorted(tmp_path.glob("*.db*"))  # the store at rest (and its WAL): the service's user only
    assert tmp_path / "state.db" in stored
    assert all(path.stat().st_mode & 0o777 == 0o600 for path in stored), [(p, oct(p.stat().st_mode)) for p in stored]
