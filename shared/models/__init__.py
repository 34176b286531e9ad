"""Pydantic v2 models of the Batch AI 2018-05-01 API (``BatchAI.json``), by resource.

Class names are the spec's definition names; attributes are snake_case with the wire names as
aliases (see ``shared.models.base``).
"""

from shared.models.base import REVEAL as REVEAL
from shared.models.base import WireModel as WireModel
from shared.models.cluster import *  # noqa: F403
from shared.models.common import (  # re-exported: `as` marks them so for the type checker
    REDACTED as REDACTED,
    AzureBlobFileSystemReference as AzureBlobFileSystemReference,
    AzureFileShareReference as AzureFileShareReference,
    AzureStorageCredentialsInfo as AzureStorageCredentialsInfo,
    BatchAIError as BatchAIError,
    CachingType as CachingType,
    CloudError as CloudError,
    CloudErrorBody as CloudErrorBody,
    ContainerSettings as ContainerSettings,
    DataDisks as DataDisks,
    EnvironmentVariable as EnvironmentVariable,
    EnvironmentVariableWithSecretValue as EnvironmentVariableWithSecretValue,
    FileServerReference as FileServerReference,
    ImageSourceRegistry as ImageSourceRegistry,
    KeyVaultSecretReference as KeyVaultSecretReference,
    MountSettings as MountSettings,
    MountVolumes as MountVolumes,
    NameValuePair as NameValuePair,
    PrivateRegistryCredentials as PrivateRegistryCredentials,
    ProvisioningState as ProvisioningState,
    ProxyResource as ProxyResource,
    Resource as Resource,
    ResourceId as ResourceId,
    SshConfiguration as SshConfiguration,
    StorageAccountType as StorageAccountType,
    UnmanagedFileSystemReference as UnmanagedFileSystemReference,
    UserAccountSettings as UserAccountSettings,
    format_duration as format_duration,
    parse_duration as parse_duration,
)
from shared.models.experiment import *  # noqa: F403
from shared.models.fileserver import *  # noqa: F403
from shared.models.job import *  # noqa: F403
from shared.models.operation import *  # noqa: F403
from shared.models.usage import *  # noqa: F403
from shared.models.workspace import *  # noqa: F403
