"""End-to-end fixtures: the real local host in a child process, and clients that talk to it."""

from __future__ import annotations

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
    with httpx.Client(base_url=local_host.endpoint, params={"api-version": API_VERSION}, timeout=30) as client:
        yield client


def batchai_client(endpoint: str, subscription: str = SUBSCRIPTION):  # type: ignore[no-untyped-def]
    """azure-mgmt-batchai 7.0.0, unmodified but for its endpoint and credential."""
    from azure.core.pipeline.policies import SansIOHTTPPolicy
    from azure.mgmt.batchai import BatchAI

    class LocalToken(SansIOHTTPPolicy):  # type: ignore[misc]
        def on_request(self, request):  # type: ignore[no-untyped-def]
            request.http_request.headers["Authorization"] = "Bearer local"

    return BatchAI(credential=object(), subscription_id=subscription, base_url=endpoint,
                   authentication_policy=LocalToken(), polling_interval=0)


@pytest.fixture(scope="session")
def sdk(local_host: LocalHostProcess):  # type: ignore[no-untyped-def]
    return batchai_client(local_host.endpoint)
