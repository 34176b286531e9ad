"""Definitions of BatchAI.json (2018-05-01) shared by several resources, and the small types and
checks the resource modules build on.

Rules that the spec only states in prose (``description``) are enforced by ``model_validator``s on
the model that owns the fields; their messages name the wire fields so that a 400 says what to fix.

Secret values are dropped from every dump (see ``WireModel``). A dump of a model therefore no longer
satisfies rules such as "one of accountKey or accountKeySecretReference must be specified"; validate
such redacted documents with ``context=REDACTED`` and those rules only forbid giving both.
"""

from __future__ import annotations

import enum
import posixpath
import re
from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, ClassVar, Self

from pydantic import AfterValidator, BeforeValidator, Field, PlainSerializer, ValidationInfo, model_validator

from shared.models.base import WireModel

# --------------------------------------------------------------------------------------------------
# Small types and helpers
# --------------------------------------------------------------------------------------------------

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1

Int32 = Annotated[int, Field(ge=-(2**31), le=INT32_MAX)]
Int64 = Annotated[int, Field(ge=-(2**63), le=INT64_MAX)]
# Node counts may be zero (an idle cluster); process/node counts of a job must be at least one.
NonNegativeInt32 = Annotated[int, Field(ge=0, le=INT32_MAX)]
PositiveInt32 = Annotated[int, Field(ge=1, le=INT32_MAX)]

REDACTED: dict[str, Any] = {"redacted": True}
"""Validation context for documents whose secrets were dropped by a dump (responses, stored views)."""


def secrets_redacted(info: ValidationInfo) -> bool:
    """Whether the document being validated had its secret values removed (see ``REDACTED``)."""
    return isinstance(info.context, dict) and bool(info.context.get("redacted"))


def wire_name(model: type[WireModel], attribute: str) -> str:
    """The spec's property name of an attribute, for messages that must name the wire field."""
    field = model.model_fields[attribute]
    return field.alias or attribute


def given(model: WireModel, *attributes: str) -> list[str]:
    """Wire names of those attributes that are set (not None), in the order asked."""
    return [wire_name(type(model), name) for name in attributes if getattr(model, name) is not None]


def one_of(model: WireModel, info: ValidationInfo, value: str, reference: str) -> None:
    """The spec's "one of <value> or <value>SecretReference must be specified" rule."""
    present = given(model, value, reference)
    names = f"{wire_name(type(model), value)} or {wire_name(type(model), reference)}"
    if len(present) > 1:
        raise ValueError(f"only one of {names} can be specified; got both")
    if not present and not secrets_redacted(info):
        raise ValueError(f"one of {names} must be specified")


def quoted(text: str, limit: int = 64) -> str:
    """User text inside an error message: quoted, and cut short so a message stays readable."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


# --- durations --------------------------------------------------------------------------------------

_ISO_DURATION = re.compile(
    r"^P(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:[.,]\d+)?)S)?)?$",
    re.IGNORECASE,
)
_DOTNET_TIMESPAN = re.compile(
    r"^(?:(?P<days>\d+)\.)?(?P<hours>\d{1,2}):(?P<minutes>\d{2}):(?P<seconds>\d{2})(?:\.(?P<fraction>\d{1,7}))?$"
)
_DURATION_FORMS = "a duration such as '7.00:00:00' (d.hh:mm:ss), '01:30:00' (hh:mm:ss) or 'P7D' / 'PT1H30M' (ISO 8601)"


def _seconds_to_microseconds(text: str) -> int:
    return int((Decimal(text.replace(",", ".")) * 1_000_000).to_integral_value())


def parse_duration(value: object) -> object:
    """Read a wire duration: the .NET TimeSpan form the spec uses ("7.00:00:00", "01:00:00") or an
    ISO 8601 duration ("P7D", "PT1H"), which is what Azure's own examples and SDKs send.

    Years and months are refused: their length varies, so they cannot be a fixed time limit.
    """
    if isinstance(value, timedelta):
        return value  # built in Python, already a duration
    if not isinstance(value, str):
        raise ValueError(f"must be {_DURATION_FORMS}")
    text = value.strip()
    try:
        if match := _DOTNET_TIMESPAN.match(text):
            hours, minutes, seconds = int(match["hours"]), int(match["minutes"]), int(match["seconds"])
            if hours > 23 or minutes > 59 or seconds > 59:
                raise ValueError(f"{quoted(text)} is out of range: hours must be 0-23, minutes and seconds 0-59")
            fraction = match["fraction"] or "0"
            return timedelta(days=int(match["days"] or 0), hours=hours, minutes=minutes, seconds=seconds,
                             microseconds=_seconds_to_microseconds("0." + fraction))
        match = _ISO_DURATION.match(text)
        if match and text.upper() not in ("P", "PT") and not text.upper().endswith("T"):
            if match["years"] or match["months"]:
                raise ValueError(f"{quoted(text)} uses years or months, whose length varies; use days (D) or weeks (W)")
            return timedelta(
                weeks=int(match["weeks"] or 0),
                days=int(match["days"] or 0),
                hours=int(match["hours"] or 0),
                minutes=int(match["minutes"] or 0),
                microseconds=_seconds_to_microseconds(match["seconds"] or "0"),
            )
    except (OverflowError, InvalidOperation):
        raise ValueError(f"{quoted(text)} is too long a duration") from None
    raise ValueError(f"{quoted(text)} is not {_DURATION_FORMS}")


def format_duration(value: timedelta) -> str:
    """The wire form of a duration: ISO 8601 ("P7D", "PT1H30M"), which is what the spec's
    ``format: duration`` means to its clients — azure-mgmt-batchai cannot read "7.00:00:00"."""
    sign = "-" if value < timedelta(0) else ""
    micros = abs(value) // timedelta(microseconds=1)
    days, micros = divmod(micros, 86_400_000_000)
    hours, micros = divmod(micros, 3_600_000_000)
    minutes, micros = divmod(micros, 60_000_000)
    seconds = Decimal(micros) / 1_000_000
    time = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    if seconds:
        time += f"{seconds.normalize():f}S"
    if not days and not time:
        return "PT0S"
    return sign + "P" + (f"{days}D" if days else "") + (f"T{time}" if time else "")


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]
"""A spec ``format: duration``: read from .NET or ISO 8601 text, written as ISO 8601."""


# --- names, ids and paths ----------------------------------------------------------------------------

ENV_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DIRECTORY_ID_PATTERN = re.compile(r"^[A-Za-z0-9_]+$")


def _environment_name(name: str) -> str:
    # The variable is exported into a shell on the node; other names cannot be set there.
    if not ENV_NAME_PATTERN.match(name):
        raise ValueError(f"{quoted(name)} is not an environment variable name: use letters, digits and "
                         "underscores, not starting with a digit")
    return name


EnvironmentName = Annotated[str, AfterValidator(_environment_name)]


def _relative_mount_path(path: str) -> str:
    # Mounts live under $AZ_BATCHAI_MOUNT_ROOT / $AZ_BATCHAI_JOB_MOUNT_ROOT; the spec calls the path
    # relative, so it may neither leave that root nor be the root itself.
    normal = posixpath.normpath(path) if path else ""
    if path.startswith("/") or normal in ("", ".") or normal == ".." or normal.startswith("../") or "\x00" in path:
        raise ValueError(f"{quoted(path)} must be a relative path below the mount root (no leading '/', no '..')")
    return path


RelativeMountPath = Annotated[str, AfterValidator(_relative_mount_path)]


def climbs(path: str) -> bool:
    """Whether a path has a '..' segment: a job's file areas are only ever below what it names."""
    return ".." in path.split("/")


def _no_parent_segment(path: str) -> str:
    # Output and log folders are listed and served by the service (invariant 8: confinement).
    if climbs(path):
        raise ValueError(f"{quoted(path)} must not contain a '..' segment: a job's files stay below the folder it names")
    return path


JobFolderPath = Annotated[str, AfterValidator(_no_parent_segment)]
"""pathPrefix, pathSuffix, stdOutErrPathPrefix: a path that never climbs with '..'."""


def check_environment(variables: Sequence[EnvironmentVariable] | None,
                      secrets: Sequence[EnvironmentVariableWithSecretValue] | None) -> None:
    """Variables and secrets share one environment, so their names must be unique across both lists."""
    seen: dict[str, str] = {}
    entries = [("environmentVariables", v.name) for v in variables or ()]
    entries += [("secrets", s.name) for s in secrets or ()]
    counters: dict[str, int] = {}
    for list_name, name in entries:
        index = counters.get(list_name, 0)
        counters[list_name] = index + 1
        here = f"{list_name}[{index}].name"
        if name in seen:
            raise ValueError(f"{here} {quoted(name)} is already given by {seen[name]}; environment variable "
                             "names must be unique across environmentVariables and secrets")
        seen[name] = here


# --------------------------------------------------------------------------------------------------
# Enums
# --------------------------------------------------------------------------------------------------


class ProvisioningState(enum.StrEnum):
    """Provisioning state of clusters, jobs, workspaces and experiments (one value set in the spec)."""

    CREATING = "creating"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DELETING = "deleting"


class CachingType(enum.StrEnum):
    """Host caching of a file server's data disks."""

    NONE = "none"
    READONLY = "readonly"
    READWRITE = "readwrite"


class StorageAccountType(enum.StrEnum):
    """Storage of a file server's data disks."""

    STANDARD_LRS = "Standard_LRS"
    PREMIUM_LRS = "Premium_LRS"


# --------------------------------------------------------------------------------------------------
# ARM envelope and references
# --------------------------------------------------------------------------------------------------


class ResourceId(WireModel):
    """A reference to another ARM resource (cluster, subnet, Key Vault, ...) by its full id."""

    id: str


class Resource(WireModel):
    """ARM envelope of a tracked (top-level, located) resource: the workspace."""

    id: str | None = None
    name: str | None = None
    type: str | None = None
    location: str | None = None
    tags: dict[str, str] | None = None


class ProxyResource(WireModel):
    """ARM envelope of a resource nested in a workspace: no location or tags of its own."""

    id: str | None = None
    name: str | None = None
    type: str | None = None


class NameValuePair(WireModel):
    """Free-form detail of a BatchAIError."""

    name: str | None = None
    value: str | None = None


class KeyVaultSecretReference(WireModel):
    """Lets users keep a secret in Key Vault instead of sending its value to the service."""

    source_vault: ResourceId
    secret_url: str


# --------------------------------------------------------------------------------------------------
# Environment variables
# --------------------------------------------------------------------------------------------------


class EnvironmentVariable(WireModel):
    """A variable set for a job or a setup task; its value is not secret and is reported back."""

    name: EnvironmentName
    value: str


class EnvironmentVariableWithSecretValue(WireModel):
    """A variable whose value the service uses but never reports back."""

    _secret_fields: ClassVar[tuple[str, ...]] = ("value",)

    name: EnvironmentName
    value: str | None = None
    value_secret_reference: KeyVaultSecretReference | None = None

    @model_validator(mode="after")
    def _value_or_reference(self, info: ValidationInfo) -> Self:
        one_of(self, info, "value", "value_secret_reference")
        return self


# --------------------------------------------------------------------------------------------------
# Storage mounted on nodes
# --------------------------------------------------------------------------------------------------


class AzureStorageCredentialsInfo(WireModel):
    """How nodes authenticate to a storage account; the key itself is never reported back."""

    _secret_fields: ClassVar[tuple[str, ...]] = ("account_key",)

    account_key: str | None = None
    account_key_secret_reference: KeyVaultSecretReference | None = None

    @model_validator(mode="after")
    def _key_or_reference(self, info: ValidationInfo) -> Self:
        one_of(self, info, "account_key", "account_key_secret_reference")
        return self


_FILE_MODE = r"^[0-7]{3,4}$"  # octal permission bits, passed to the mount command


class AzureFileShareReference(WireModel):
    """An Azure Files share mounted on the nodes."""

    account_name: str
    azure_file_url: str
    credentials: AzureStorageCredentialsInfo
    relative_mount_path: RelativeMountPath
    file_mode: str = Field(default="0777", pattern=_FILE_MODE)
    directory_mode: str = Field(default="0777", pattern=_FILE_MODE)


class AzureBlobFileSystemReference(WireModel):
    """A blob container mounted on the nodes with blobfuse."""

    account_name: str
    container_name: str
    credentials: AzureStorageCredentialsInfo
    relative_mount_path: RelativeMountPath
    mount_options: str | None = None


class FileServerReference(WireModel):
    """A Batch AI file server (NFS) mounted on the nodes."""

    file_server: ResourceId
    source_directory: str | None = None
    relative_mount_path: RelativeMountPath
    mount_options: str | None = None


class UnmanagedFileSystemReference(WireModel):
    """Any file system the user mounts with a command of their own."""

    mount_command: str
    relative_mount_path: RelativeMountPath


class MountVolumes(WireModel):
    """Everything mounted under one mount root; two volumes cannot share a mount path."""

    azure_file_shares: list[AzureFileShareReference] | None = None
    azure_blob_file_systems: list[AzureBlobFileSystemReference] | None = None
    file_servers: list[FileServerReference] | None = None
    unmanaged_file_systems: list[UnmanagedFileSystemReference] | None = None

    @model_validator(mode="after")
    def _distinct_mount_paths(self) -> Self:
        seen: dict[str, str] = {}
        for attribute in ("azure_file_shares", "azure_blob_file_systems", "file_servers", "unmanaged_file_systems"):
            list_name = wire_name(type(self), attribute)
            for index, volume in enumerate(getattr(self, attribute) or ()):
                here = f"{list_name}[{index}].relativeMountPath"
                path = posixpath.normpath(volume.relative_mount_path)
                if path in seen:
                    raise ValueError(f"{here} {quoted(path)} is already used by {seen[path]}; "
                                     "each volume needs its own relativeMountPath")
                seen[path] = here
        return self


# --------------------------------------------------------------------------------------------------
# Containers
# --------------------------------------------------------------------------------------------------


class PrivateRegistryCredentials(WireModel):
    """Login to a private Docker registry; the password is never reported back."""

    _secret_fields: ClassVar[tuple[str, ...]] = ("password",)

    username: str
    password: str | None = None
    password_secret_reference: KeyVaultSecretReference | None = None

    @model_validator(mode="after")
    def _password_or_reference(self, info: ValidationInfo) -> Self:
        one_of(self, info, "password", "password_secret_reference")
        return self


class ImageSourceRegistry(WireModel):
    """Where the job's Docker image comes from."""

    server_url: str | None = None
    image: str
    credentials: PrivateRegistryCredentials | None = None


# Docker's --shm-size syntax (units.RAMInBytes): a number with an optional b/k/m/g/t/p unit.
_SHM_SIZE = r"^\d+(?:\.\d+)? ?[kKmMgGtTpP]?[iI]?[bB]?$"


class ContainerSettings(WireModel):
    """Run the job in a Docker container instead of directly on the node."""

    image_source_registry: ImageSourceRegistry
    shm_size: str | None = Field(default=None, pattern=_SHM_SIZE)


# --------------------------------------------------------------------------------------------------
# Node access and file server pieces
# --------------------------------------------------------------------------------------------------


class UserAccountSettings(WireModel):
    """The admin account created on every node, for SSH; the password is never reported back."""

    _secret_fields: ClassVar[tuple[str, ...]] = ("admin_user_password",)

    admin_user_name: str
    admin_user_ssh_public_key: str | None = None
    admin_user_password: str | None = None


class SshConfiguration(WireModel):
    """Who may SSH to a file server, and as whom."""

    public_ips_to_allow: list[str] | None = Field(default=None, alias="publicIPsToAllow", max_length=400)
    user_account_settings: UserAccountSettings


class DataDisks(WireModel):
    """The file server's data disks (RAID 0 when more than one)."""

    disk_size_in_gb: PositiveInt32 = Field(alias="diskSizeInGB")
    caching_type: CachingType = CachingType.NONE
    disk_count: PositiveInt32
    storage_account_type: StorageAccountType


class MountSettings(WireModel):
    """Where a file server exports its disks; set by the service."""

    mount_point: str | None = None
    file_server_public_ip: str | None = Field(default=None, alias="fileServerPublicIP")
    file_server_internal_ip: str | None = Field(default=None, alias="fileServerInternalIP")


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------


class CloudErrorBody(WireModel):
    """The error every failed call answers with (see shared.errors)."""

    code: str | None = None
    message: str | None = None
    target: str | None = None
    details: list[CloudErrorBody] | None = None


class CloudError(WireModel):
    """Envelope of an error answer: {"error": {...}}."""

    error: CloudErrorBody | None = None


class BatchAIError(WireModel):
    """An error a cluster's nodes or a job's execution ran into, reported inside the resource."""

    code: str | None = None
    message: str | None = None
    details: list[NameValuePair] | None = None
