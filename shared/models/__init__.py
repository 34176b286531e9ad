"""Pydantic v2 models of the Batch AI 2018-05-01 API (``BatchAI.json``), by resource.

Class names are the spec's definition names; attributes are snake_case with the wire names as
aliases (see ``shared.models.base``).
"""

from shared.models.base import REVEAL, WireModel
from shared.models.cluster import *  # noqa: F403
from shared.models.common import (
    REDACTED,
    AzureBlobFileSystemReference,
    AzureFileShareReference,
    AzureStorageCredentialsInfo,
    BatchAIError,
    CachingType,
    CloudError,
    CloudErrorBody,
    ContainerSettings,
    DataDisks,
    EnvironmentVariable,
    EnvironmentVariableWithSecretValue,
    FileServerReference,
    ImageSourceRegistry,
    KeyVaultSecretReference,
    MountSettings,
    MountVolumes,
    NameValuePair,
    PrivateRegistryCredentials,
    ProvisioningState,
    ProxyResource,
    Resource,
    ResourceId,
    SshConfiguration,
    StorageAccountType,
    UnmanagedFileSystemReference,
    UserAccountSettings,
    format_duration,
    parse_duration,
)
from shared.models.experiment import *  # noqa: F403
from shared.models.fileserver import *  # noqa: F403
from shared.models.job import *  # noqa: F403
from shared.models.operation import *  # noqa: F403
from shared.models.usage import *  # noqa: F403
from shared.models.workspace import *  # noqa: F403
