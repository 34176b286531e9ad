"""Settings of a deployment, read from environment variables (Functions app settings on Azure,
`local.settings.json` "Values" or the local host's flags on one machine)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, Field, IPvAnyNetwork

ENV_PREFIX = "BATCHAI_"


def _comma_separated(value: object) -> object:
    """A list setting given as one environment variable: "a, b" -> ["a", "b"]."""
    return [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value


class Settings(BaseModel):
    store: Literal["sqlite", "cosmos"] = "sqlite"
    data_dir: Path = Path(".batchai")
    cosmos_endpoint: str = ""
    # Empty: keyless, with the app's identity (the Cosmos DB Built-in Data Contributor role).
    cosmos_key: str = Field(default="", repr=False)
    cosmos_database: str = "batchai"
    cosmos_verify_tls: bool = True
    # Off for test servers that advertise https:// locations while serving plain HTTP.
    cosmos_endpoint_discovery: bool = True
    max_request_bytes: int = 1024 * 1024
    # Threads per local host instance that run synchronous HTTP functions (the Functions Python
    # worker's PYTHON_THREADPOOL_THREAD_COUNT; shared/localhost/http_server.py says why only a few).
    http_threads: int = Field(default=4, ge=1, le=64)
    default_location: str = "local"
    # Messaging: the embedded SQLite queues, or Azure Service Bus.
    messaging: Literal["sqlite", "servicebus"] = "sqlite"
    # A connection string, or the namespace's host name (<namespace>.servicebus.windows.net) for keyless
    # access with the app's identity (Azure Service Bus Data Owner: it makes each cluster's lanes).
    servicebus_connection: str = Field(default="", repr=False)
    # The local host's AMQP door (Service Bus clients reach its request queues): its port on 127.0.0.1; 0: any free one.
    amqp_port: int = Field(default=0, ge=0, le=65535)
    # VM pools: local agent processes, or one VM scale set per cluster.
    pool: Literal["local", "vmss", "netns"] = "local"
    # Where VMs fetch the agent bundle from (shared/node_package.py): the control plane's storage account.
    agent_storage_account: str = "batchai"
    agent_storage_key: str = Field(default="", repr=False)
    # The local host's listening address (netns pool: the bridge address its nodes reach it on).
    host_address: str = "127.0.0.1"
    # netns pool: the bridge its nodes' veths join, and the /24 on it (.1 is the host's side).
    netns_bridge: str = ""
    netns_subnet: str = "10.213.0.0/24"
    azure_subscription_id: str = ""
    azure_resource_group: str = ""
    # On Azure: the subnet (resource id) of clusters and file servers whose request names none; without it such a
    # request is refused (400, properties.subnet). infra/main.bicep sets the nodes' subnet.
    default_subnet_id: str = ""
    # The agent bundle's URL for VMs, when the control plane does not sign one from its storage
    # (shared/node_package.py; normally empty: pools carry a signed URL of BATCHAI_AGENT_STORAGE_ACCOUNT's).
    agent_package: str = ""
    # VM scale sets: a cluster's instance views and NICs are read from ARM at most once per this many
    # seconds (a round in between reuses the last listing). ARM throttles reads per subscription and
    # the Compute RP counts listings with instance views as costly calls: with the default, a cluster
    # costs 2 reads per 20 s whatever the timer's cadence.
    arm_read_interval_seconds: float = Field(default=20.0, ge=0)
    # The control plane's address as nodes reach it (Azure: the Functions app's URL).
    public_endpoint: str = ""
    heartbeat_seconds: float = 2.0
    # A node is lost after this many heartbeats in a row did not arrive.
    missed_heartbeats: int = 3
    # How often a job is requeued after failures of its nodes before it fails.
    job_retry_budget: int = 3
    # Auto-scale gives back a node idle for this long.
    autoscale_idle_seconds: float = 60.0
    # How long an agent's request for work is held open when there is none.
    assignment_wait_seconds: float = 20.0
    # Blob storage: a folder under data_dir (URLs signed by the local host), or Azure Storage.
    blobs: Literal["local", "azure"] = "local"
    # Azure only: the blob endpoint with {account} (Azurite: http://127.0.0.1:10000/{account}); empty: Azure's.
    blob_endpoint: str = ""
    # Job events to webhooks (shared/event_delivery.py): attempts per delivery before it is
    # dead-lettered; the wait after the first failed attempt, doubling each time up to the cap;
    # how long one POST (or the validation handshake) may take.
    event_delivery_attempts: int = Field(default=8, ge=1, le=100)
    event_delivery_backoff_seconds: float = Field(default=1.0, gt=0)
    event_delivery_backoff_max_seconds: float = Field(default=300.0, gt=0)
    event_delivery_timeout_seconds: float = Field(default=5.0, gt=0)
    # Where webhooks may go (shared/webhook_destinations.py). Link-local and cloud metadata addresses never;
    # loopback only when allowed (default: allowed when the pool is local, i.e. on one machine); private,
    # shared, unspecified, multicast and reserved ranges only inside these networks (comma-separated CIDRs).
    webhook_allow_loopback: bool | None = None
    webhook_allowed_networks: Annotated[list[IPvAnyNetwork], BeforeValidator(_comma_separated)] = []
    # Validation handshakes under way at once in one process; a create beyond that is answered 429 at once,
    # so endpoints that never answer cannot hold every API worker for the timeout.
    webhook_handshake_concurrency: int = Field(default=4, ge=1, le=64)
    # Authentication (shared/auth/). Locally the host creates an owner token in data_dir/token at
    # first start. On Azure: bearer JWTs from Entra ID (issuer, audience, the tenant's keys), the
    # App Service authentication headers when the app sits behind it, and Functions keys.
    auth_tenant_id: str = ""
    auth_audience: str = ""
    # Default: https://login.microsoftonline.com/{tenant}/v2.0 and its discovery document's keys.
    auth_issuer: str = ""
    auth_jwks_url: str = ""
    # Trust X-MS-CLIENT-PRINCIPAL* headers: only behind App Service authentication, which sets them.
    auth_app_service: bool = False
    # Functions host keys (comma-separated) that act as owners: `x-functions-key` header or `code` query.
    auth_function_keys: str = Field(default="", repr=False)
    # Principal ids (Entra object ids, comma-separated) that own every subscription: the first owners,
    # who then grant roles through the role assignments API.
    auth_owners: str = ""
    # The local pool starts a process per node: more than this many nodes per cluster is refused.
    local_max_nodes: int = Field(default=64, ge=1)
    # Telemetry (shared/telemetry.py): none, console, otlp (OTLP over HTTP to otel_endpoint), or
    # file (JSON lines under data_dir/telemetry/, one file per process; what the tests read).
    otel_exporter: Literal["none", "console", "otlp", "azuremonitor", "file"] = "none"
    otel_endpoint: str = ""
    # Structured logs: text for people, json for log collectors; secrets never in either.
    log_format: Literal["text", "json"] = "text"
    # An agent heartbeating more often than this is answered 429 (a bug or a flood, never a real need).
    heartbeat_min_interval_seconds: float = Field(default=0.2, ge=0)
    # Timer cadences (NCRONTAB, seconds first). The timer functions name these app settings
    # (schedule "%BATCHAI_RECONCILE_SCHEDULE%"): Azure Functions reads them from the app settings,
    # the local host from these fields. Locally every 2 s; infra/main.bicep sets Azure's (see there).
    reconcile_schedule: str = "*/2 * * * * *"
    outbox_schedule: str = "*/2 * * * * *"
    # File servers take ARM minutes to make: a round every 10 s is plenty, here and on Azure.
    file_servers_schedule: str = "*/10 * * * * *"
    # Sweeps: each round asks the search for new trials and reads running trials' metrics.
    sweeps_schedule: str = "*/2 * * * * *"
    # Whether timers also fire when a host starts. Read when the app is indexed (a decorator argument,
    # see timers_run_on_startup); on Azure false: every scale-out and restart would fire them.
    timers_run_on_startup: bool = True


    @classmethod
    def setting_name(cls, field: str) -> str:
        return ENV_PREFIX + field.upper()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Every field can be set as BATCHAI_<FIELD> (upper case); explicit overrides win."""
        environ = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for name in cls.model_fields:
            raw = environ.get(ENV_PREFIX + name.upper())
            if raw is not None:
                values[name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(values)

    @property
    def nodes_on_this_machine(self) -> bool:
        """The local and netns pools' nodes share this machine's folders: storage is folders of the data folder."""
        return self.pool in ("local", "netns")

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "state.sqlite3"

    @property
    def messaging_path(self) -> Path:
        return self.data_dir / "messages.sqlite3"

    @property
    def pools_dir(self) -> Path:
        return self.data_dir / "pools"

    @property
    def storage_dir(self) -> Path:
        """Local pool: the folders that stand for file shares, file servers and unmanaged file systems."""
        return self.data_dir.resolve() / "storage"

    @property
    def endpoint_file(self) -> Path:
        """Where the local host writes its address, for agents to find it again after a restart."""
        return self.data_dir / "endpoint"

    @property
    def blobs_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def token_path(self) -> Path:
        """The local host's owner token (created at first start, mode 0600), which the CLI picks up."""
        return self.data_dir / "token"

    @property
    def url_key_path(self) -> Path:
        """The key that signs the local host's download URLs (created on first use, mode 0600)."""
        return self.data_dir / "url-signing.key"


def app_setting_reference(field: str) -> str:
    """A trigger argument that Azure Functions resolves from an app setting: "%BATCHAI_<FIELD>%"."""
    assert field in Settings.model_fields, field
    return f"%{Settings.setting_name(field)}%"


def timers_run_on_startup(environ: Mapping[str, str] | None = None) -> bool:
    """BATCHAI_TIMERS_RUN_ON_STARTUP, read alone when the app is indexed (only this setting: a wrong
    other one must not stop indexing)."""
    environ = os.environ if environ is None else environ
    raw = environ.get(Settings.setting_name("timers_run_on_startup"))
    if raw is None:
        return bool(Settings.model_fields["timers_run_on_startup"].default)
    return Settings.model_validate({"timers_run_on_startup": raw}).timers_run_on_startup
