"""One cluster's trouble with its VM pool stays that cluster's: shown in its `errors` through the API,
never stopping another cluster's round. The pool manager drives the real VM scale set adapter against
the ARM stand-in (tests/fakes/arm_compute.py), over the embedded store and queues."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared import cluster_work, lanes
from shared.adapters.azure.vmss_pool import VmssPool
from shared.adapters.local.sqlite_messaging import SqliteMessaging
from shared.adapters.local.sqlite_store import SqliteStateStore
from shared.api import clusters, workspaces
from shared.api.request import ApiRequest
from shared.composition import Services
from shared.documents.resources import ClusterDocument
from shared.ports.clock import ManualClock
from shared.resources import CONTAINERS, R
from shared.settings import Settings
from shared.wakeups import Wakeups
from tests.contract.test_vm_pool import RESOURCE_GROUP, SUBNET_ID, StaticCredential
from tests.fakes.arm_compute import FakeArmCompute
from tests.integration.test_event_delivery import answered

SUB, RG = "sub", "rg"
ROUTE = {"subscriptionId": SUB, "resourceGroupName": RG, "workspaceName": "ws"}
Q = {"api-version": "2018-05-01"}
# A subnet of a subscription the service's identity may not use: ARM refuses the scale set (403).
FOREIGN_SUBNET = ("/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/net/providers"
                  "/Microsoft.Network/virtualNetworks/vnet/subnets/default")


@pytest.fixture
def fake_arm() -> Iterator[FakeArmCompute]:
    with FakeArmCompute() as fake:
        yield fake


def make_services(tmp_path: Path, fake: FakeArmCompute, default_subnet: str = SUBNET_ID) -> Services:
    settings = Settings(data_dir=tmp_path, pool="vmss", default_subnet_id=default_subnet,
                        public_endpoint="https://batchai.example", default_location="westeurope")
    store = SqliteStateStore(tmp_path / "state.db")
    store.open(CONTAINERS)
    clock = ManualClock()
    pool = VmssPool(fake.subscription_id, RESOURCE_GROUP, StaticCredential(), base_url=fake.base_url,
                    polling_interval=0.01, default_subnet_id=default_subnet or None)
    svc = Services(settings=settings, store=store, clock=clock, messaging=SqliteMessaging(tmp_path / "m.db", clock),
                   pool=pool, wakeups=Wakeups())
    for queue, options in lanes.STATIC_QUEUES.items():
        svc.messaging.create_queue(queue, options)
    request(svc, workspaces.create, {}, {"location": "westeurope"})
    return svc


def request(svc: Services, handler: Any, route: dict[str, str], body: Any, method: str = "PUT") -> tuple[int, Any]:
    req = ApiRequest(method, "http://h/x", route={**ROUTE, **route}, query=Q,
                     body=b"" if body is None else json.dumps(body).encode())
    return answered(handler, svc, req)


def cluster_body(target: int, subnet: str | None = None) -> dict[str, Any]:
    props: dict[str, Any] = {"vmSize": "STANDARD_D1_V2", "scaleSettings": {"manual": {"targetNodeCount": target}},
                             "userAccountSettings": {"adminUserName": "u", "adminUserPassword": "Pa55w0rd!Pa55"}}
    if subnet:
        props["subnet"] = {"id": subnet}
    return {"properties": props}


def get_cluster(svc: Services, name: str) -> dict[str, Any]:
    status, body = request(svc, clusters.get, {"clusterName": name}, None, "GET")
    assert status == 200, body
    return body["properties"]


def scale_set_capacity(fake: FakeArmCompute, svc: Services, name: str) -> int | None:
    doc = svc.store.read(R, SUB, f"cluster|{RG}|ws|{name}")
    assert doc is not None
    scale_set = fake.scale_set(RESOURCE_GROUP, f"c{ClusterDocument.load(doc).cluster_uid}")
    return None if scale_set is None else sum(1 for i in scale_set.instances.values() if i.state != "Deleting")


def test_bad_arm_settings_show_on_their_cluster_and_the_good_one_keeps_scaling(tmp_path: Path,
                                                                                fake_arm: FakeArmCompute) -> None:
    svc = make_services(tmp_path, fake_arm)
    try:
        assert request(svc, clusters.create, {"clusterName": "bad"}, cluster_body(1, FOREIGN_SUBNET))[0] == 200
        assert request(svc, clusters.create, {"clusterName": "good"}, cluster_body(2))[0] == 200
        for _ in range(3):
            cluster_work.reconcile_all(svc)  # the timer's rounds
        bad = get_cluster(svc, "bad")
        assert [e["code"] for e in bad["errors"]] == ["PoolOperationFailed"]
        assert "LinkedAuthorizationFailed" in bad["errors"][0]["message"] or "linked scope" in bad["errors"][0]["message"]
        assert scale_set_capacity(fake_arm, svc, "bad") is None
        good = get_cluster(svc, "good")
        assert "errors" not in good
        assert scale_set_capacity(fake_arm, svc, "good") == 2 and good["currentNodeCount"] == 2
        # The good one keeps scaling while the bad one keeps failing.
        assert request(svc, clusters.update, {"clusterName": "good"},
                       {"properties": {"scaleSettings": {"manual": {"targetNodeCount": 3}}}}, "PATCH")[0] == 200
        cluster_work.reconcile_all(svc)
        assert scale_set_capacity(fake_arm, svc, "good") == 3
        assert get_cluster(svc, "bad")["errors"][0]["code"] == "PoolOperationFailed"
    finally:
        svc.close()


def test_a_cluster_the_pool_refuses_shows_why_and_stops_no_other(tmp_path: Path, fake_arm: FakeArmCompute) -> None:
    """A ValueError of the adapter (here: no subnet, after the deployment's default was taken away)."""
    svc = make_services(tmp_path, fake_arm)
    try:
        assert request(svc, clusters.create, {"clusterName": "first"}, cluster_body(1))[0] == 200
        assert request(svc, clusters.create, {"clusterName": "second"}, cluster_body(1, SUBNET_ID))[0] == 200
        svc.pool._default_subnet_id = None  # type: ignore[attr-defined]  # the setting was removed since
        cluster_work.reconcile_all(svc)
        first = get_cluster(svc, "first")
        assert first["errors"][0]["code"] == "InvalidPoolSettings" and "subnet" in first["errors"][0]["message"]
        assert scale_set_capacity(fake_arm, svc, "second") == 1
        assert "errors" not in get_cluster(svc, "second")
    finally:
        svc.close()


def test_a_cluster_without_subnet_is_refused_when_the_deployment_has_no_default(tmp_path: Path,
                                                                                  fake_arm: FakeArmCompute) -> None:
    svc = make_services(tmp_path, fake_arm, default_subnet="")
    try:
        status, body = request(svc, clusters.create, {"clusterName": "c"}, cluster_body(1))
        assert status == 400 and body["error"]["target"] == "properties.subnet"
        assert svc.store.read(R, SUB, f"cluster|{RG}|ws|c") is None  # nothing half-written
        assert request(svc, clusters.create, {"clusterName": "c"}, cluster_body(1, SUBNET_ID))[0] == 200
    finally:
        svc.close()
