"""Keyless access on Azure: without keys the composition root gives the Azure adapters the app's
token credential (its managed identity) instead of a key or connection string."""

from __future__ import annotations

from typing import Any

import pytest

from shared import composition
from shared.settings import Settings


class _Credential:
    def get_token(self, *scopes: str, **kwargs: Any) -> Any:  # never called: nothing here does I/O
        raise AssertionError("no token is needed to build the adapters")


@pytest.fixture
def credential(monkeypatch: pytest.MonkeyPatch) -> _Credential:
    cred = _Credential()
    monkeypatch.setattr(composition, "azure_credential", lambda: cred)
    return cred


def test_service_bus_by_namespace_name_uses_the_identity(credential: _Credential) -> None:
    messaging = composition.build_messaging(
        Settings(messaging="servicebus", servicebus_connection="ns.servicebus.windows.net"), clock=None)  # type: ignore[arg-type]
    try:
        assert messaging._client.fully_qualified_namespace == "ns.servicebus.windows.net"  # type: ignore[attr-defined]
        assert messaging._client._credential is credential  # type: ignore[attr-defined]
    finally:
        messaging.close()


def test_cosmos_without_a_key_uses_the_identity(credential: _Credential, monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.adapters.azure import cosmos_store

    opened: list[Any] = []
    monkeypatch.setattr(cosmos_store.CosmosStateStore, "open", lambda self, containers: opened.append(self._key))
    composition.build_store(Settings(store="cosmos", cosmos_endpoint="https://acct.documents.azure.com:443/"))
    assert opened == [credential]
    composition.build_store(Settings(store="cosmos", cosmos_endpoint="https://acct.documents.azure.com:443/",
                                     cosmos_key="a-key"))
    assert opened[-1] == "a-key"


def test_scale_sets_use_the_identity(credential: _Credential) -> None:
    pool = composition.build_pool(Settings(pool="vmss", azure_subscription_id="s", azure_resource_group="rg",
                                           default_subnet_id="/subscriptions/s/x"))
    try:
        assert pool._client._config.credential is credential  # type: ignore[attr-defined]
    finally:
        pool.close()
