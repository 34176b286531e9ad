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
from collections.abc import Callable, Sequence
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, ClassVar, Self

from urllib.parse import urlsplit

from pydantic import (AfterValidator, BeforeValidator, ConfigDict, Field, PlainSerializer, ValidationError,
                      ValidationInfo, field_validator, model_validator)
from pydantic_core import InitErrorDetails, PydanticCustomError

from shared.ids import FILE_SERVER, ResourceRef
from shared.models.base import SecretWireModel, WireModel
from shared.models.limits import (MAX_COMMAND_LINE_LENGTH, MAX_DATA_DISKS, MAX_DISK_SIZE_GB, MAX_ENV_NAME_LENGTH,
                                  MAX_ENV_VALUE_LENGTH, MAX_MOUNT_VOLUMES, MAX_RELATIVE_MOUNT_PATH_LENGTH,
                                  MAX_NODE_COUNT, MAX_SECRET_LENGTH, MAX_TAG_NAME_LENGTH, MAX_TAG_VALUE_LENGTH, MAX_TAGS,
                                  MAX_URL_LENGTH, MAX_USER_NAME_LENGTH)

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


def invalid_at(loc: tuple[str | int, ...], message: str, value: object) -> ValidationError:
    """An error placed at a field below the model being validated (wire names), for rules that need
    several fields but must still name the one to fix; raise it from a model validator."""
    error = PydanticCustomError("value_error", "{reason}", {"reason": message})
    return ValidationError.from_exception_data("invalid", [InitErrorDetails(type=error, loc=loc, input=value)])


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
        if match := _DOTNET_TIMESPAN.fullmatch(text):
            hours, minutes, seconds = int(match["hours"]), int(match["minutes"]), int(match["seconds"])
            if hours > 23 or minutes > 59 or seconds > 59:
                raise ValueError(f"{quoted(text)} is out of range: hours must be 0-23, minutes and seconds 0-59")
            fraction = match["fraction"] or "0"
            return timedelta(days=int(match["days"] or 0), hours=hours, minutes=minutes, seconds=seconds,
                             microseconds=_seconds_to_microseconds("0." + fraction))
        match = _ISO_DURATION.fullmatch(text)
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


# --- bounded strings (shared/models/limits.py) ---------------------------------------------------------

CommandLine = Annotated[str, Field(max_length=MAX_COMMAND_LINE_LENGTH)]
SecretText = Annotated[str, Field(max_length=MAX_SECRET_LENGTH)]
Url = Annotated[str, Field(max_length=MAX_URL_LENGTH)]
UserName = Annotated[str, Field(max_length=MAX_USER_NAME_LENGTH)]
EnvironmentValue = Annotated[str, Field(max_length=MAX_ENV_VALUE_LENGTH)]
# ARM's limits on a resource's tags.
Tags = Annotated[dict[Annotated[str, Field(max_length=MAX_TAG_NAME_LENGTH)],
                      Annotated[str, Field(max_length=MAX_TAG_VALUE_LENGTH)]], Field(max_length=MAX_TAGS)]
# A node count a user gives (jobs, cluster scale): one VM scale set's worth at most.
NodeCount = Annotated[int, Field(ge=0, le=MAX_NODE_COUNT)]


# --- names, ids and paths ----------------------------------------------------------------------------

# Patterns are matched whole (fullmatch): with re.match, "$" also matches before a final newline.
ENV_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DIRECTORY_ID_PATTERN = re.compile(r"^[A-Za-z0-9_]+$")


def _environment_name(name: str) -> str:
    # The variable is exported into a shell on the node; other names cannot be set there.
    if not ENV_NAME_PATTERN.fullmatch(name):
        raise ValueError(f"{quoted(name)} is not an environment variable name: use letters, digits and "
                         "underscores, not starting with a digit")
    return name


EnvironmentName = Annotated[str, Field(max_length=MAX_ENV_NAME_LENGTH), AfterValidator(_environment_name)]

# A folder name under the mount root: it ends up in mount commands and shells on the node.
_MOUNT_SEGMENT = re.compile(r"[A-Za-z0-9_.$@+=,~-]+")


def _relative_mount_path(path: str) -> str:
    # Mounts live under $AZ_BATCHAI_MOUNT_ROOT / $AZ_BATCHAI_JOB_MOUNT_ROOT; the spec calls the path
    # relative, so it may neither leave that root nor be the root itself.
    segments = path.removesuffix("/").split("/")
    if path.startswith("/") or any(s in ("", ".", "..") for s in segments):
        raise ValueError(f"{quoted(path)} must be a relative path below the mount root (no leading '/', no '.' "
                         "or '..' segments, no empty segments)")
    if not all(_MOUNT_SEGMENT.fullmatch(s) for s in segments):
        raise ValueError(f"{quoted(path)} may hold only letters, digits, '/' and the characters _ . - $ @ + = , ~")
    return path


RelativeMountPath = Annotated[str, Field(max_length=MAX_RELATIVE_MOUNT_PATH_LENGTH),
                              AfterValidator(_relative_mount_path)]


# --- Azure Storage names (learn.microsoft.com: naming rules of storage accounts, shares, containers) --

_ACCOUNT_NAME = re.compile(r"[a-z0-9]{3,24}")
_SHARE_OR_CONTAINER = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")  # every '-' between a letter or digit


def check_account_name(name: str) -> str:
    """A storage account name: 3 to 24 lowercase letters and digits (it is a DNS label on Azure)."""
    if not _ACCOUNT_NAME.fullmatch(name):
        raise ValueError(f"{quoted(name)} is not a storage account name: use 3 to 24 lowercase letters and digits")
    return name


def check_share_or_container(name: str, what: str) -> str:
    """A file share or blob container name: 3 to 63 lowercase letters, digits and hyphens, starting
    and ending with a letter or digit, no two hyphens in a row."""
    if not (3 <= len(name) <= 63 and _SHARE_OR_CONTAINER.fullmatch(name)):
        raise ValueError(f"{quoted(name)} is not a {what} name: use 3 to 63 lowercase letters, digits and hyphens, "
                         "starting and ending with a letter or digit, without two hyphens in a row")
    return name


def check_file_url(url: str) -> str:
    """An Azure Files URL, https://<account>.file.core.windows.net/<share>: a host and a valid share name."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as exc:
        raise ValueError(f"{quoted(url)} is not a URL: {exc}") from None
    if parts.scheme.lower() not in ("http", "https") or not host or any(c.isspace() for c in url):
        raise ValueError(f"{quoted(url)} is not an http(s) URL such as https://<account>.file.core.windows.net/<share>")
    if parts.username or parts.password:
        raise ValueError("credentials in the URL are not accepted; give them in credentials")
    share = parts.path.strip("/").split("/")[0]
    if not share:
        raise ValueError(f"{quoted(url)} names no share: expected https://<account>.file.core.windows.net/<share>")
    check_share_or_container(share, "file share")
    return url


# Azure's VM size names: Standard_NC6s_v3, Standard_E64-16ds_v4 (constrained vCPU), ...
_VM_SIZE = re.compile(r"[A-Za-z0-9_-]{1,64}")


def check_vm_size_name(value: str) -> str:
    if not _VM_SIZE.fullmatch(value):
        raise ValueError(f"{quoted(value)} is not a VM size name: use 1 to 64 letters, digits, '_' or '-'")
    return value


def reading_answer(info: ValidationInfo) -> bool:
    """Whether an answer of the service is being read (see REDACTED): names it stored are not judged
    again, so a rule made stricter never makes a stored resource unreadable."""
    return secrets_redacted(info)


_AZURE_NAME_RULES: dict[str, Callable[[str], str]] = {
    "account_name": check_account_name,
    "azure_file_url": check_file_url,
    "container_name": lambda name: check_share_or_container(name, "blob container"),
}


def azure_name(value: str | None, info: ValidationInfo) -> str | None:
    """A field validator: the Azure naming rule of the field it validates (an absent accountName,
    which the share's URL may give, is left to the caller)."""
    if value is None or reading_answer(info):
        return value
    return _AZURE_NAME_RULES[info.field_name or ""](value)


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

    id: Url


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

    model_config = ConfigDict(str_max_length=None)  # written by the service, never by a user

    name: str | None = None
    value: str | None = None


class KeyVaultSecretReference(WireModel):
    """Lets users keep a secret in Key Vault instead of sending its value to the service."""

    source_vault: ResourceId
    secret_url: Url


# --------------------------------------------------------------------------------------------------
# Environment variables
# --------------------------------------------------------------------------------------------------


class EnvironmentVariable(WireModel):
    """A variable set for a job or a setup task; its value is not secret and is reported back."""

    name: EnvironmentName
    value: EnvironmentValue


class EnvironmentVariableWithSecretValue(SecretWireModel):
    """A variable whose value the service uses but never reports back."""

    _secret_fields: ClassVar[tuple[str, ...]] = ("value",)

    name: EnvironmentName
    value: EnvironmentValue | None = None
    value_secret_reference: KeyVaultSecretReference | None = None

    @model_validator(mode="after")
    def _value_or_reference(self, info: ValidationInfo) -> Self:
        one_of(self, info, "value", "value_secret_reference")
        return self


# --------------------------------------------------------------------------------------------------
# Storage mounted on nodes
# --------------------------------------------------------------------------------------------------


class AzureStorageCredentialsInfo(SecretWireModel):
    """How nodes authenticate to a storage account; the key itself is never reported back."""

    _secret_fields: ClassVar[tuple[str, ...]] = ("account_key",)

    account_key: SecretText | None = None
    account_key_secret_reference: KeyVaultSecretReference | None = None

    @model_validator(mode="after")
    def _key_or_reference(self, info: ValidationInfo) -> Self:
        one_of(self, info, "account_key", "account_key_secret_reference")
        return self


_FILE_MODE = r"^[0-7]{3,4}$"  # octal permission bits, passed to the mount command


class AzureFileShareReference(WireModel):
    """An Azure Files share mounted on the nodes."""

    account_name: str
    azure_file_url: Url
    credentials: AzureStorageCredentialsInfo
    relative_mount_path: RelativeMountPath
    file_mode: str = Field(default="0777", pattern=_FILE_MODE)
    directory_mode: str = Field(default="0777", pattern=_FILE_MODE)

    _azure_names = field_validator("account_name", "azure_file_url")(azure_name)


class AzureBlobFileSystemReference(WireModel):
    """A blob container mounted on the nodes with blobfuse."""

    account_name: str
    container_name: str
    credentials: AzureStorageCredentialsInfo
    relative_mount_path: RelativeMountPath
    mount_options: str | None = None

    _azure_names = field_validator("account_name", "container_name")(azure_name)


class FileServerReference(WireModel):
    """A Batch AI file server (NFS) mounted on the nodes."""

    file_server: ResourceId
    source_directory: str | None = None
    relative_mount_path: RelativeMountPath
    mount_options: str | None = None

    @model_validator(mode="after")
    def _file_server_id(self, info: ValidationInfo) -> Self:
        if reading_answer(info):
            return self
        if ResourceRef.parse(self.file_server.id, FILE_SERVER) is None:
            raise invalid_at(("fileServer", "id"), f"{quoted(self.file_server.id, 300)} is not the resource id of a "
                             "Batch AI file server (/subscriptions/{s}/resourceGroups/{rg}/providers/"
                             "Microsoft.BatchAI/workspaces/{ws}/fileServers/{name})", self.file_server.id)
        source = posixpath.normpath(self.source_directory.lstrip("/")) if self.source_directory else "."
        if source == ".." or source.startswith("../"):
            raise invalid_at(("sourceDirectory",), f"{quoted(self.source_directory or '')} must stay inside the "
                             "file server (no '..')", self.source_directory)
        return self


class UnmanagedFileSystemReference(WireModel):
    """Any file system the user mounts with a command of their own."""

    mount_command: CommandLine
    relative_mount_path: RelativeMountPath


class MountVolumes(WireModel):
    """Everything mounted under one mount root; two volumes cannot share a mount path."""

    azure_file_shares: list[AzureFileShareReference] | None = Field(default=None, max_length=MAX_MOUNT_VOLUMES)
    azure_blob_file_systems: list[AzureBlobFileSystemReference] | None = Field(default=None,
                                                                              max_length=MAX_MOUNT_VOLUMES)
    file_servers: list[FileServerReference] | None = Field(default=None, max_length=MAX_MOUNT_VOLUMES)
    unmanaged_file_systems: list[UnmanagedFileSystemReference] | None = Field(default=None,
                                                                             max_length=MAX_MOUNT_VOLUMES)

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


class PrivateRegistryCredentials(SecretWireModel):
    """Login to a private Docker registry; the password is never reported back."""

    _secret_fields: ClassVar[tuple[str, ...]] = ("password",)

    username: UserName
    password: SecretText | None = None
    password_secret_reference: KeyVaultSecretReference | None = None

    @model_validator(mode="after")
    def _password_or_reference(self, info: ValidationInfo) -> Self:
        one_of(self, info, "password", "password_secret_reference")
        return self


class ImageSourceRegistry(WireModel):
    """Where the job's Docker image comes from."""

    server_url: Url | None = None
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


class UserAccountSettings(SecretWireModel):
    """The admin account created on every node, for SSH; the password is never reported back."""

    _secret_fields: ClassVar[tuple[str, ...]] = ("admin_user_password",)

    admin_user_name: UserName
    admin_user_ssh_public_key: SecretText | None = None
    admin_user_password: SecretText | None = None


class SshConfiguration(WireModel):
    """Who may SSH to a file server, and as whom."""

    public_ips_to_allow: list[str] | None = Field(default=None, alias="publicIPsToAllow", max_length=400)
    user_account_settings: UserAccountSettings


class DataDisks(WireModel):
    """The file server's data disks (RAID 0 when more than one)."""

    disk_size_in_gb: Annotated[int, Field(ge=1, le=MAX_DISK_SIZE_GB)] = Field(alias="diskSizeInGB")
    caching_type: CachingType = CachingType.NONE
    disk_count: Annotated[int, Field(ge=1, le=MAX_DATA_DISKS)]
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

    model_config = ConfigDict(str_max_length=None)  # written by the service, never by a user

    code: str | None = None
    message: str | None = None
    target: str | None = None
    details: list[CloudErrorBody] | None = None


class CloudError(WireModel):
    """Envelope of an error answer: {"error": {...}}."""

    error: CloudErrorBody | None = None


class BatchAIError(WireModel):
    """An error a cluster's nodes or a job's execution ran into, reported inside the resource."""

    model_config = ConfigDict(str_max_length=None)  # written by the service, never by a user

    code: str | None = None
    message: str | None = None
    details: list[NameValuePair] | None = None
