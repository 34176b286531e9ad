"""The composition root: the only place that picks adapters (from Settings).

Functions call `services()` when invoked, never at import time, so that indexing the app does
no I/O. The local host and tests install their own with `use_services`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from shared.ports.clock import Clock, SystemClock
from shared.ports.messaging import Messaging
from shared.ports.state_store import StateStore
from shared.ports.vm_pool import VmPool
from shared.resources import CONTAINERS
from shared.settings import Settings
from shared.wakeups import Wakeups


@dataclass
class Services:
    settings: Settings
    store: StateStore
    clock: Clock
    messaging: Messaging
    pool: VmPool
    wakeups: Wakeups

    def close(self) -> None:
        self.pool.close()
        self.messaging.close()
        self.store.close()


def build_store(settings: Settings) -> StateStore:
    if settings.store == "cosmos":
        from shared.adapters.azure.cosmos_store import CosmosStateStore

        store: StateStore = CosmosStateStore(
            settings.cosmos_endpoint,
            settings.cosmos_key,
            settings.cosmos_database,
            verify_tls=settings.cosmos_verify_tls,
            endpoint_discovery=settings.cosmos_endpoint_discovery,
        )
    else:
        from shared.adapters.local.sqlite_store import SqliteStateStore

        store = SqliteStateStore(settings.sqlite_path)
    store.open(CONTAINERS)
    return store


def build_messaging(settings: Settings, clock: Clock) -> Messaging:
    if settings.messaging == "servicebus":
        from shared.adapters.azure.servicebus_messaging import ServiceBusMessaging

        return ServiceBusMessaging(settings.servicebus_connection)
    from shared.adapters.local.sqlite_messaging import SqliteMessaging

    return SqliteMessaging(settings.messaging_path, clock)


def build_pool(settings: Settings) -> VmPool:
    if settings.pool == "vmss":
        from azure.identity import DefaultAzureCredential  # the Functions app's managed identity on Azure

        from shared.adapters.azure.vmss_pool import VmssPool

        return VmssPool(settings.azure_subscription_id, settings.azure_resource_group, DefaultAzureCredential())
    from shared.adapters.local.local_pool import LocalVmPool

    return LocalVmPool(settings.pools_dir, endpoint_file=settings.endpoint_file)


def build_services(settings: Settings, clock: Clock | None = None) -> Services:
    clock = clock or SystemClock()
    return Services(settings=settings, store=build_store(settings), clock=clock,
                    messaging=build_messaging(settings, clock), pool=build_pool(settings), wakeups=Wakeups())


_lock = threading.Lock()
_current: Services | None = None


def services() -> Services:
    """The services of this process, built from the environment on first use."""
    global _current
    if _current is None:
        with _lock:
            if _current is None:
                _current = build_services(Settings.from_env())
    return _current


def use_services(svc: Services | None) -> None:
    """Install (or with None, forget) the services this process uses."""
    global _current
    with _lock:
        _current = svc
