"""End-to-end fixtures: the real local host in a child process, and clients that talk to it."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from shared.localhost.process import LocalHostProcess, start_local_host

API_VERSION = "2018-05-01"
SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"

# The hosts of the whole session, which every module shares: what a test or a module makes on them
# stays for the rest of the run unless it is removed (see clusters_made_meanwhile_are_deleted).
SESSION_HOSTS: list[LocalHostProcess] = []


@contextmanager
def session_host(data_dir: Path, env: Mapping[str, str] | None = None) -> Iterator[LocalHostProcess]:
    host = start_local_host(data_dir, env=env)
    SESSION_HOSTS.append(host)
    try:
        yield host
    finally:
        SESSION_HOSTS.remove(host)
    assert host.stop() == 0, "\n".join(host.output[-40:])


@pytest.fixture(scope="session")
def local_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHostProcess]:
    with session_host(tmp_path_factory.mktemp("local-host") / "state") as host:
        yield host


def clusters_with_a_pool(host: LocalHostProcess) -> set[str]:
    """Ids of the clusters a host's local pool has a pool for (each pool.json names its cluster)."""
    ids = set()
    for spec in (host.data_dir / "pools").glob("*/pool.json"):
        try:
            ids.add(json.loads(spec.read_text())["bootstrap"]["cluster_id"])
        except (OSError, ValueError, KeyError, TypeError):  # removed meanwhile
            continue
    return ids


@contextmanager
def clusters_made_meanwhile_are_deleted() -> Iterator[None]:
    """Clusters made on the session hosts meanwhile (through the SDK, REST or the CLI) are deleted at
    the end, pass or fail: their idle agents would otherwise heartbeat for the rest of the run. A
    delete answers once the cluster's agents have stopped."""
    before = {host.pid: clusters_with_a_pool(host) for host in SESSION_HOSTS}
    yield
    for host in list(SESSION_HOSTS):
        made = clusters_with_a_pool(host) - before.get(host.pid, set())
        if not made or host.process.poll() is not None:
            continue
        with httpx.Client(base_url=host.endpoint, params={"api-version": API_VERSION}, timeout=60,
                          headers=host.headers) as client:
            for cluster in sorted(made):
                answer = client.delete(cluster)
                assert answer.status_code in (200, 204), f"deleting {cluster}: {answer.status_code} {answer.text}"


@pytest.fixture(scope="module", autouse=True)
def clusters_of_the_module_deleted() -> Iterator[None]:
    """What a module's own fixtures made on the session hosts goes when the module ends."""
    with clusters_made_meanwhile_are_deleted():
        yield


@pytest.fixture(autouse=True)
def clusters_of_the_test_deleted() -> Iterator[None]:
    """What a test made on the session hosts goes when the test ends (set up after the module's
    fixtures, so theirs stay for the module's other tests)."""
    with clusters_made_meanwhile_are_deleted():
        yield


@pytest.fixture(scope="session")
def http(local_host: LocalHostProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=local_host.endpoint, params={"api-version": API_VERSION}, timeout=30,
                      headers=local_host.headers) as client:
        yield client


def batchai_client(host: LocalHostProcess, subscription: str = SUBSCRIPTION):  # type: ignore[no-untyped-def]
    """azure-mgmt-batchai 7.0.0, unmodified but for its endpoint and credential (the host's owner token)."""
    from azure.core.pipeline.policies import SansIOHTTPPolicy
    from azure.mgmt.batchai import BatchAI

    authorization = host.headers["Authorization"]

    class LocalToken(SansIOHTTPPolicy):  # type: ignore[misc]
        def on_request(self, request):  # type: ignore[no-untyped-def]
            request.http_request.headers["Authorization"] = authorization

    return BatchAI(credential=object(), subscription_id=subscription, base_url=host.endpoint,
                   authentication_policy=LocalToken(), polling_interval=0)




COSMOS_TEST_KEY = base64.b64encode(b"cosmosdb-server ignores signatures").decode()


@pytest.fixture(scope="session")
def cosmos_host(cosmos_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHostProcess]:
    """A second local host whose state lives in the Cosmos DB test server."""
    env = {
        "BATCHAI_STORE": "cosmos",
        "BATCHAI_COSMOS_ENDPOINT": cosmos_server,
        "BATCHAI_COSMOS_KEY": COSMOS_TEST_KEY,
        "BATCHAI_COSMOS_DATABASE": f"e2e-{uuid.uuid4().hex[:8]}",
        "BATCHAI_COSMOS_VERIFY_TLS": "false",
        "BATCHAI_COSMOS_ENDPOINT_DISCOVERY": "false",
    }
    with session_host(tmp_path_factory.mktemp("cosmos-host"), env=env) as host:
        yield host


@pytest.fixture(params=["sqlite", pytest.param("cosmos", marks=pytest.mark.cosmos)])
def any_host(request: pytest.FixtureRequest) -> LocalHostProcess:
    """The local host over each store adapter."""
    return request.getfixturevalue("local_host" if request.param == "sqlite" else "cosmos_host")


@pytest.fixture
def sdk(any_host: LocalHostProcess):  # type: ignore[no-untyped-def]
    """azure-mgmt-batchai against the local host, once over each store adapter."""
    return batchai_client(any_host)


@pytest.fixture
def api(any_host: LocalHostProcess) -> Iterator[httpx.Client]:
    """Plain REST calls to the same host as `sdk`."""
    with httpx.Client(base_url=any_host.endpoint, params={"api-version": API_VERSION}, timeout=30,
                      headers=any_host.headers) as client:
        yield client
