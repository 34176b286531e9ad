"""Clusters: a pool of VMs of one size inside a workspace, with their scale and node setup.

``ClusterCreateParameters`` / ``ClusterUpdateParameters`` are what PUT / PATCH accept (no read-only
properties); ``Cluster`` is what the service answers.
"""

from __future__ import annotations

import enum
import json
import re
from datetime import datetime
from typing import Any, ClassVar, Self

from pydantic import Field, ValidationInfo, field_validator, model_validator

from shared.models.base import SecretWireModel, WireModel
from shared.models.common import (
    BatchAIError,
    CommandLine,
    EnvironmentVariable,
    EnvironmentVariableWithSecretValue,
    Int32,
    KeyVaultSecretReference,
    MountVolumes,
    NodeCount,
    ProvisioningState,
    ProxyResource,
    ResourceId,
    UserAccountSettings,
    check_environment,
    given,
    one_of,
    check_vm_size_name,
    quoted,
)
from shared.models.limits import MAX_ENVIRONMENT_VARIABLES, MAX_SECRETS


class VmPriority(enum.StrEnum):
    """Dedicated VMs, or cheaper low-priority ones that may be taken away."""

    DEDICATED = "dedicated"
    LOWPRIORITY = "lowpriority"


class DeallocationOption(enum.StrEnum):
    """What happens to running jobs when nodes are removed from a cluster."""

    REQUEUE = "requeue"
    TERMINATE = "terminate"
    WAITFORJOBCOMPLETION = "waitforjobcompletion"


class AllocationState(enum.StrEnum):
    """Whether the cluster is changing its number of nodes."""

    STEADY = "steady"
    RESIZING = "resizing"


# --------------------------------------------------------------------------------------------------
# Scale
# --------------------------------------------------------------------------------------------------


class ManualScaleSettings(WireModel):
    """A fixed number of nodes, changed only by the user."""

    # The spec gives targetNodeCount both `required` and a default of 0; required wins.
    target_node_count: NodeCount
    node_deallocation_option: DeallocationOption = DeallocationOption.REQUEUE


class AutoScaleSettings(WireModel):
    """Let the service size the cluster between two bounds from its queued and running jobs."""

    minimum_node_count: NodeCount
    maximum_node_count: NodeCount
    initial_node_count: NodeCount = 0

    @model_validator(mode="after")
    def _bounds_in_order(self) -> Self:
        if self.minimum_node_count > self.maximum_node_count:
            raise ValueError(f"minimumNodeCount ({self.minimum_node_count}) must not exceed "
                             f"maximumNodeCount ({self.maximum_node_count})")
        if self.initial_node_count > self.maximum_node_count:
            raise ValueError(f"initialNodeCount ({self.initial_node_count}) must not exceed "
                             f"maximumNodeCount ({self.maximum_node_count})")
        # Only a given initialNodeCount can contradict the minimum: the default 0 just means
        # "start empty and let autoscale reach the minimum", also when given (azure-mgmt-batchai and
        # az send initialNodeCount 0 whenever none is set).
        if "initial_node_count" in self.model_fields_set and 0 < self.initial_node_count < self.minimum_node_count:
            raise ValueError(f"initialNodeCount ({self.initial_node_count}) must be at least "
                             f"minimumNodeCount ({self.minimum_node_count})")
        return self


class ScaleSettings(WireModel):
    """Manual or automatic scaling: the spec says exactly one of the two."""

    manual: ManualScaleSettings | None = None
    auto_scale: AutoScaleSettings | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        present = given(self, "manual", "auto_scale")
        if len(present) != 1:
            raise ValueError("exactly one of manual or autoScale must be specified; got "
                             + (" and ".join(present) if present else "neither"))
        return self


# --------------------------------------------------------------------------------------------------
# VM image and node setup
# --------------------------------------------------------------------------------------------------

_IMAGE_ID = re.compile(r"/subscriptions/[^/\s]+/resourceGroups/[^/\s]+/providers/Microsoft\.Compute/images/[^/\s]+",
                       re.IGNORECASE)


class ImageReference(WireModel):
    """The OS image of the nodes: a Marketplace image, or a custom image derived from one."""

    publisher: str
    offer: str
    sku: str
    version: str | None = None
    virtual_machine_image_id: str | None = None

    @model_validator(mode="after")
    def _image_id_form(self) -> Self:
        image = self.virtual_machine_image_id
        if image is not None and not _IMAGE_ID.fullmatch(image):
            raise ValueError("virtualMachineImageId must be of the form /subscriptions/{subscriptionId}/"
                             "resourceGroups/{resourceGroup}/providers/Microsoft.Compute/images/{imageName}")
        return self


class VirtualMachineConfiguration(WireModel):
    """OS image configuration shared by all nodes of a cluster."""

    image_reference: ImageReference | None = None


class AppInsightsReference(SecretWireModel):
    """Where node performance counters go; the instrumentation key is treated as a secret."""

    _secret_fields: ClassVar[tuple[str, ...]] = ("instrumentation_key",)

    component: ResourceId
    instrumentation_key: str | None = None
    instrumentation_key_secret_reference: KeyVaultSecretReference | None = None

    @model_validator(mode="after")
    def _key_or_reference(self, info: ValidationInfo) -> Self:
        one_of(self, info, "instrumentation_key", "instrumentation_key_secret_reference")
        return self


class PerformanceCountersSettings(WireModel):
    """Opt-in upload of node performance counters."""

    app_insights_reference: AppInsightsReference


class SetupTask(WireModel):
    """A command run as root on each node when it joins the cluster or reboots; must be idempotent."""

    command_line: CommandLine
    environment_variables: list[EnvironmentVariable] | None = Field(default=None, max_length=MAX_ENVIRONMENT_VARIABLES)
    secrets: list[EnvironmentVariableWithSecretValue] | None = Field(default=None, max_length=MAX_SECRETS)
    std_out_err_path_prefix: str
    # Read-only: generated by the service. ClusterBaseProperties refuses it in requests.
    std_out_err_path_suffix: str | None = None

    @model_validator(mode="after")
    def _unique_variables(self) -> Self:
        check_environment(self.environment_variables, self.secrets)
        return self


class NodeSetup(WireModel):
    """What every node does before it runs jobs: mounts, performance counters, setup task."""

    setup_task: SetupTask | None = None
    mount_volumes: MountVolumes | None = None
    performance_counters_settings: PerformanceCountersSettings | None = None


class NodeStateCounts(WireModel):
    """How many of the cluster's nodes are in each state."""

    idle_node_count: Int32 | None = None
    running_node_count: Int32 | None = None
    preparing_node_count: Int32 | None = None
    unusable_node_count: Int32 | None = None
    leaving_node_count: Int32 | None = None


# --------------------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------------------

# "Batch AI service supports all Azure VM sizes except STANDARD_A0 and those with premium storage
# (STANDARD_GS, STANDARD_DS, and STANDARD_DSV2 series)."
_UNSUPPORTED_VM_SIZE = re.compile(r"standard_(a0|gs\d.*|ds\d.*)", re.IGNORECASE)


def check_vm_size(value: str) -> str:
    if _UNSUPPORTED_VM_SIZE.fullmatch(check_vm_size_name(value)):
        raise ValueError(f"{quoted(value)} is not supported: clusters support all Azure VM sizes "
                         "except STANDARD_A0 and the premium storage series STANDARD_GS, STANDARD_DS "
                         "and STANDARD_DSV2")
    return value


class ClusterBaseProperties(WireModel):
    """What a user may set when creating a cluster."""

    vm_size: str
    vm_priority: VmPriority = VmPriority.DEDICATED
    scale_settings: ScaleSettings | None = None
    virtual_machine_configuration: VirtualMachineConfiguration | None = None
    node_setup: NodeSetup | None = None
    user_account_settings: UserAccountSettings
    subnet: ResourceId | None = None

    @field_validator("vm_size")
    @classmethod
    def _supported_vm_size(cls, value: str) -> str:
        return check_vm_size(value)

    @model_validator(mode="after")
    def _no_read_only_suffix(self) -> Self:
        task = self.node_setup.setup_task if self.node_setup else None
        if task is not None and task.std_out_err_path_suffix is not None:
            raise ValueError("nodeSetup.setupTask.stdOutErrPathSuffix is read-only: the service generates it")
        return self


class ManualScaleSettingsPatch(WireModel):
    """A PATCH of manual scaling: only the fields given change."""

    target_node_count: NodeCount | None = None
    node_deallocation_option: DeallocationOption | None = None


class AutoScaleSettingsPatch(WireModel):
    """A PATCH of automatic scaling: only the fields given change."""

    minimum_node_count: NodeCount | None = None
    maximum_node_count: NodeCount | None = None
    initial_node_count: NodeCount | None = None


class ScaleSettingsPatch(WireModel):
    """scaleSettings in a PATCH, merged into the cluster's current ones (JSON merge patch).

    Merging lets two clients change different fields at once without one undoing the other; the
    merged result must then be a valid ``ScaleSettings``. Naming the other mode switches to it."""

    manual: ManualScaleSettingsPatch | None = None
    auto_scale: AutoScaleSettingsPatch | None = None

    def merged_into(self, current: dict[str, Any] | None) -> ScaleSettings:
        """The scale settings after this patch; ValidationError if they are not valid."""
        merged = {key: dict(value) for key, value in (current or {}).items()}
        patch = self.to_wire()
        if patch and not patch.keys() & merged.keys():
            merged = {}  # a switch between manual and autoScale replaces the settings
        for mode, fields in patch.items():
            merged.setdefault(mode, {}).update(fields)
        return ScaleSettings.model_validate_json(json.dumps(merged))  # JSON: strict enums accept text


class ClusterUpdateProperties(WireModel):
    """The only thing a PATCH may change on a cluster: its scale."""

    scale_settings: ScaleSettingsPatch | None = None


class ClusterCreateParameters(WireModel):
    """Body of PUT .../clusters/{name}."""

    # Not `required` in the spec, but ClusterBaseProperties has required members, so a body
    # without `properties` can never be valid; requiring it gives the precise error.
    properties: ClusterBaseProperties


class ClusterUpdateParameters(WireModel):
    """Body of PATCH .../clusters/{name}."""

    properties: ClusterUpdateProperties | None = None


# --------------------------------------------------------------------------------------------------
# Responses
# --------------------------------------------------------------------------------------------------


class ClusterProperties(WireModel):
    """A cluster as the service reports it: its settings plus the state the service keeps."""

    vm_size: str | None = None
    vm_priority: VmPriority = VmPriority.DEDICATED
    scale_settings: ScaleSettings | None = None
    virtual_machine_configuration: VirtualMachineConfiguration | None = None
    node_setup: NodeSetup | None = None
    user_account_settings: UserAccountSettings | None = None
    subnet: ResourceId | None = None
    creation_time: datetime | None = None
    provisioning_state: ProvisioningState | None = None
    provisioning_state_transition_time: datetime | None = None
    allocation_state: AllocationState | None = None
    allocation_state_transition_time: datetime | None = None
    errors: list[BatchAIError] | None = None
    current_node_count: Int32 | None = None
    node_state_counts: NodeStateCounts | None = None


class Cluster(ProxyResource):
    """Answer of GET/PUT/PATCH of a cluster."""

    properties: ClusterProperties | None = None


class ClusterListResult(WireModel):
    """One page of clusters."""

    value: list[Cluster] | None = None
    next_link: str | None = None


__all__ = [
    "AllocationState",
    "AppInsightsReference",
    "AutoScaleSettings",
    "Cluster",
    "ClusterBaseProperties",
    "ClusterCreateParameters",
    "ClusterListResult",
    "ClusterProperties",
    "ClusterUpdateParameters",
    "ClusterUpdateProperties",
    "DeallocationOption",
    "ImageReference",
    "ManualScaleSettings",
    "NodeSetup",
    "NodeStateCounts",
    "PerformanceCountersSettings",
    "ScaleSettings",
    "ScaleSettingsPatch",
    "ManualScaleSettingsPatch",
    "AutoScaleSettingsPatch",
    "SetupTask",
    "VirtualMachineConfiguration",
    "VmPriority",
]
