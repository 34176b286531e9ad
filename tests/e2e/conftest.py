"""End-to-end fixtures: the real local host in a child process, and clients that talk to it."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator

import httpx
import pytest

from shared.localhost.process import LocalHostProcess, start_local_host

API_VERSION = "2018-05-01"
SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"


@pytest.fixture(scope="session")
def local_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHostProcess]:
    host = start_local_host(tmp_path_factory.mktemp("local-host") / "state")
    yield host
    assert host.stop() == 0, "\n".join(host.output[-40:])


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
    host = start_local_host(tmp_path_factory.mktemp("cosmos-host"), env=env)
    yield host
    assert host.stop() == 0, "\n".join(host.output[-40:])


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
