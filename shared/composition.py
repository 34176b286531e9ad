"""The composition root: the only place that picks adapters (from Settings).

Functions call `services()` when invoked, never at import time, so that indexing the app does
no I/O. The local host and tests install their own with `use_services`.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared.auth import local_token
from shared.auth.authenticate import Authenticator, entra_rules
from shared.ports.blob_store import BlobStore
from shared.ports.clock import Clock, SystemClock
from shared.ports.messaging import Messaging
from shared.ports.state_store import StateStore
from shared.ports.vm_pool import VmPool
from shared.resources import CONTAINERS
from shared.settings import Settings
from shared.signed_urls import UrlSigner, load_or_create_key
from shared.wakeups import Wakeups
from shared.webhook_destinations import WebhookDestinations

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential


@dataclass
class Services:
    settings: Settings
    store: StateStore
    clock: Clock
    messaging: Messaging
    pool: VmPool
    wakeups: Wakeups
    # Blob storage and the signer of the local host's download URLs: built from settings unless
    # given (building them does no I/O; the signing key is read or made on first use).
    signer: UrlSigner = None  # type: ignore[assignment]
    blobs: BlobStore = None  # type: ignore[assignment]
    # Who callers are (the local token is read from the data folder when there is one).
    auth: Authenticator = None  # type: ignore[assignment]
    # Where webhooks may go, checked with this resolver (the system's unless given).
    webhooks: WebhookDestinations = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.signer is None:
            self.signer = build_signer(self.settings)
        if self.blobs is None:
            self.blobs = build_blobs(self.settings, self.signer)
        if self.auth is None:
            self.auth = build_authenticator(self.settings)
        if self.webhooks is None:
            self.webhooks = WebhookDestinations(self.settings)

    def close(self) -> None:
        self.pool.close()
        self.messaging.close()
        self.store.close()
        self.blobs.close()


def azure_credential() -> TokenCredential:
    """Keyless access on Azure: the app's managed identity (AZURE_CLIENT_ID names a user-assigned one),
    or a developer's az login elsewhere. Imported when first needed: the local host never is."""
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


def build_store(settings: Settings) -> StateStore:
    if settings.store == "cosmos":
        from shared.adapters.azure.cosmos_store import CosmosStateStore

        # Without a key: Entra ID, with the Cosmos DB data-plane role (containers declared by infra/main.bicep).
        store: StateStore = CosmosStateStore(
            settings.cosmos_endpoint,
            settings.cosmos_key or azure_credential(),
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

        connection = settings.servicebus_connection
        if "=" not in connection:  # a namespace's host name: keyless, through the app's identity
            return ServiceBusMessaging(connection, credential=azure_credential())
        return ServiceBusMessaging(connection)
    from shared.adapters.local.sqlite_messaging import SqliteMessaging

    return SqliteMessaging(settings.messaging_path, clock)


def build_pool(settings: Settings) -> VmPool:
    if settings.pool == "vmss":
        from shared.adapters.azure.vmss_pool import VmssPool

        return VmssPool(settings.azure_subscription_id, settings.azure_resource_group, azure_credential(),
                        agent_package=settings.agent_package, default_subnet_id=settings.default_subnet_id or None,
                        read_interval=settings.arm_read_interval_seconds)
    from shared.adapters.local.local_pool import LocalVmPool

    return LocalVmPool(settings.pools_dir, endpoint_file=settings.endpoint_file)


def local_base_url(settings: Settings) -> str:
    """Where signed URLs point: the public endpoint if set, else the running local host's address."""
    if settings.public_endpoint:
        return settings.public_endpoint
    try:
        return settings.endpoint_file.read_text().strip()
    except FileNotFoundError:
        raise RuntimeError(f"cannot sign a URL: no public_endpoint and no local host address in "
                           f"{settings.endpoint_file}") from None


# The folders of data_dir whose files download URLs may name: jobs' folders on the local nodes,
# the folders that stand for shares and file servers, and blob containers. Never the rest (the owner
# token, the URL-signing key, the databases, the nodes' bootstrap secrets).
SERVED_AREAS = ("pools/*/*/jobs", "pools/*/*/mounts", "pools/*/shared", "storage", "blobs")


def build_signer(settings: Settings) -> UrlSigner:
    """Signs URLs of files under data_dir, served by the local host's files route."""
    return UrlSigner(functools.partial(load_or_create_key, settings.url_key_path),
                     functools.partial(local_base_url, settings), settings.data_dir, SERVED_AREAS)


def build_blobs(settings: Settings, signer: UrlSigner | None = None) -> BlobStore:
    if settings.blobs == "azure":
        from shared.adapters.azure.azure_blobs import DEFAULT_ENDPOINT, AzureBlobStore

        return AzureBlobStore(settings.blob_endpoint or DEFAULT_ENDPOINT)
    from shared.adapters.local.folder_blobs import FolderBlobStore

    return FolderBlobStore(settings.blobs_dir, signer or build_signer(settings))


def build_authenticator(settings: Settings) -> Authenticator:
    """The local host's owner token (if its data folder has one), Functions keys, App Service's
    principal headers when configured, and Entra ID JWTs when a tenant or key set is configured."""
    try:
        token = local_token.read(settings.token_path) or None
    except FileNotFoundError:
        token = None
    rules = None
    if settings.auth_tenant_id or settings.auth_jwks_url:
        if not settings.auth_audience or not (settings.auth_tenant_id or settings.auth_issuer):
            raise ValueError("JWT authentication needs BATCHAI_AUTH_AUDIENCE and BATCHAI_AUTH_TENANT_ID "
                             "(or BATCHAI_AUTH_ISSUER with BATCHAI_AUTH_JWKS_URL)")
        rules = entra_rules(settings.auth_tenant_id, settings.auth_audience, settings.auth_issuer,
                            settings.auth_jwks_url)
    return Authenticator(local_token=token, function_keys=_listed(settings.auth_function_keys),
                         app_service=settings.auth_app_service, jwt_rules=rules,
                         owners=frozenset(_listed(settings.auth_owners)))


def _listed(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def build_services(settings: Settings, clock: Clock | None = None) -> Services:
    clock = clock or SystemClock()
    signer = build_signer(settings)
    return Services(settings=settings, store=build_store(settings), clock=clock,
                    messaging=build_messaging(settings, clock), pool=build_pool(settings), wakeups=Wakeups(),
                    signer=signer, blobs=build_blobs(settings, signer))


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
