"""Jobs: what a user submits (``JobCreateParameters``) and what the service reports (``Job``).

A job names exactly one toolkit; ``toolType`` is never sent, the service derives it from the
toolkit settings given (``tool_type_of``). Process counts default to the node count when they
are run.
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta
from typing import Annotated, Any, Self

from pydantic import AfterValidator, ConfigDict, Field, ValidationInfo, model_validator

from shared.models.base import WireModel
from shared.models.common import (
    DIRECTORY_ID_PATTERN,
    BatchAIError,
    CommandLine,
    ContainerSettings,
    Duration,
    EnvironmentVariable,
    EnvironmentVariableWithSecretValue,
    Int32,
    JobFolderPath,
    Int64,
    MountVolumes,
    PositiveInt32,
    ProvisioningState,
    ProxyResource,
    ResourceId,
    check_environment,
    invalid_at,
    quoted,
    reading_answer,
)
from shared.models.limits import (MAX_DIRECTORIES, MAX_ENVIRONMENT_VARIABLES, MAX_NODE_COUNT, MAX_PROCESSES_PER_NODE,
                                  MAX_SECRETS)

MAX_WALL_CLOCK_TIME_DEFAULT = timedelta(days=7)


class JobPriority(enum.StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"


class ToolType(enum.StrEnum):
    CNTK = "cntk"
    TENSORFLOW = "tensorflow"
    CAFFE = "caffe"
    CAFFE2 = "caffe2"
    CHAINER = "chainer"
    HOROVOD = "horovod"
    MPI = "mpi"
    CUSTOM = "custom"
    # The spec's ToolType enum omits it, but JobProperties.toolType documents "pytorch" and the
    # service reports it for pyTorchSettings jobs.
    PYTORCH = "pytorch"


class ExecutionState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    TERMINATING = "terminating"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class FileType(enum.StrEnum):
    FILE = "file"
    DIRECTORY = "directory"


# --------------------------------------------------------------------------------------------------
# Toolkit settings
# --------------------------------------------------------------------------------------------------


class CNTKLanguage(enum.StrEnum):
    BRAINSCRIPT = "BrainScript"
    PYTHON = "Python"


class PyTorchBackend(enum.StrEnum):
    TCP = "TCP"
    GLOO = "Gloo"
    MPI = "MPI"
    # Not in the spec's prose list, but torch.distributed's GPU backend, and a value of
    # AZ_BATCHAI_PYTORCH_BACKEND in reference/ENVIRONMENT.md.
    NCCL = "NCCL"


def _spelled_as(values: type[enum.StrEnum]) -> AfterValidator:
    """A spec string whose valid values are given only in prose: any case of them is accepted and
    kept as given, as the service did (it took and echoed "gloo" and "python")."""
    names = ", ".join(repr(v.value) for v in values)

    def check(value: str) -> str:
        if value.lower() not in {v.value.lower() for v in values}:
            raise ValueError(f"{quoted(value)} is not one of {names} (in any case)")
        return value

    return AfterValidator(check)


CNTKLanguageType = Annotated[str, _spelled_as(CNTKLanguage)]
PyTorchBackendName = Annotated[str, _spelled_as(PyTorchBackend)]


def _same_value(given: str | None, value: enum.StrEnum) -> bool:
    """Whether a prose-enum string given in any case names `value`."""
    return given is not None and given.lower() == value.value.lower()


class CNTKsettings(WireModel):
    """CNTK: a BrainScript config file, or a Python script.

    Without a languageType the job's paths tell: a pythonScriptFilePath means Python (the service
    reported "Python" for such a job), else BrainScript; the language is then reported."""

    language_type: CNTKLanguageType | None = None
    config_file_path: str | None = None
    python_script_file_path: str | None = None
    python_interpreter_path: str | None = None
    command_line_args: CommandLine | None = None
    process_count: PositiveInt32 | None = None

    @model_validator(mode="after")
    def _paths_match_language(self) -> Self:
        if self.language_type is None:
            python = self.python_script_file_path is not None and self.config_file_path is None
            self.language_type = CNTKLanguage.PYTHON.value if python else CNTKLanguage.BRAINSCRIPT.value
        if _same_value(self.language_type, CNTKLanguage.BRAINSCRIPT):
            for name, value in (("pythonScriptFilePath", self.python_script_file_path),
                                ("pythonInterpreterPath", self.python_interpreter_path)):
                if value is not None:
                    raise ValueError(f"{name} can be specified only if languageType is 'Python'")
        elif self.config_file_path is not None:
            raise ValueError("configFilePath can be specified only if languageType is 'BrainScript'")
        elif self.python_script_file_path is None:
            raise ValueError("pythonScriptFilePath is required when languageType is 'Python'")
        return self


class PyTorchSettings(WireModel):
    python_script_file_path: str
    python_interpreter_path: str | None = None
    command_line_args: CommandLine | None = None
    process_count: PositiveInt32 | None = None
    communication_backend: PyTorchBackendName | None = None


class TensorFlowSettings(WireModel):
    """TensorFlow: one process, or distributed with workers and parameter servers."""

    python_script_file_path: str
    python_interpreter_path: str | None = None
    master_command_line_args: CommandLine | None = None
    worker_command_line_args: CommandLine | None = None
    parameter_server_command_line_args: CommandLine | None = None
    worker_count: PositiveInt32 | None = None
    parameter_server_count: PositiveInt32 | None = None


class CaffeSettings(WireModel):
    """Caffe: a solver config file xor a Python script."""

    config_file_path: str | None = None
    python_script_file_path: str | None = None
    python_interpreter_path: str | None = None
    command_line_args: CommandLine | None = None
    process_count: PositiveInt32 | None = None

    @model_validator(mode="after")
    def _config_xor_script(self) -> Self:
        if (self.config_file_path is None) == (self.python_script_file_path is None):
            raise ValueError("exactly one of configFilePath or pythonScriptFilePath must be specified")
        if self.python_interpreter_path is not None and self.python_script_file_path is None:
            raise ValueError("pythonInterpreterPath can be specified only if pythonScriptFilePath is specified")
        return self


class Caffe2Settings(WireModel):
    python_script_file_path: str
    python_interpreter_path: str | None = None
    command_line_args: CommandLine | None = None


class ChainerSettings(WireModel):
    python_script_file_path: str
    python_interpreter_path: str | None = None
    command_line_args: CommandLine | None = None
    process_count: PositiveInt32 | None = None


class CustomToolkitSettings(WireModel):
    command_line: CommandLine | None = None


class CustomMpiSettings(WireModel):
    command_line: CommandLine
    process_count: PositiveInt32 | None = None


class HorovodSettings(WireModel):
    python_script_file_path: str
    python_interpreter_path: str | None = None
    command_line_args: CommandLine | None = None
    process_count: PositiveInt32 | None = None


TOOLKITS: dict[str, ToolType] = {
    "cntk_settings": ToolType.CNTK,
    "py_torch_settings": ToolType.PYTORCH,
    "tensor_flow_settings": ToolType.TENSORFLOW,
    "caffe_settings": ToolType.CAFFE,
    "caffe2_settings": ToolType.CAFFE2,
    "chainer_settings": ToolType.CHAINER,
    "custom_toolkit_settings": ToolType.CUSTOM,
    "custom_mpi_settings": ToolType.MPI,
    "horovod_settings": ToolType.HOROVOD,
}
"""Toolkit settings attribute -> the toolType it implies."""


# --------------------------------------------------------------------------------------------------
# Job pieces
# --------------------------------------------------------------------------------------------------


class JobPreparation(WireModel):
    command_line: CommandLine


class InputDirectory(WireModel):
    id: str = Field(pattern=DIRECTORY_ID_PATTERN.pattern, max_length=64)
    path: str


class OutputDirectory(WireModel):
    id: str = Field(pattern=DIRECTORY_ID_PATTERN.pattern, max_length=64)
    path_prefix: JobFolderPath
    path_suffix: JobFolderPath | None = None


class JobBasePropertiesConstraints(WireModel):
    max_wall_clock_time: Duration = MAX_WALL_CLOCK_TIME_DEFAULT

    @model_validator(mode="after")
    def _positive(self) -> Self:
        if self.max_wall_clock_time <= timedelta(0):
            raise ValueError("maxWallClockTime must be longer than zero")
        return self


def _unique_ids(kind: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for index, value in enumerate(ids):
        # Ids become AZ_BATCHAI_INPUT_<id> / AZ_BATCHAI_OUTPUT_<id>: they must differ as variables do.
        if value.upper() in seen:
            raise ValueError(f"{kind}[{index}].id {quoted(value)} is given twice")
        seen.add(value.upper())


class JobBaseProperties(WireModel):
    """What a user may set when creating a job."""

    scheduling_priority: JobPriority = JobPriority.NORMAL
    cluster: ResourceId
    mount_volumes: MountVolumes | None = None
    node_count: Annotated[int, Field(ge=1, le=MAX_NODE_COUNT)]
    container_settings: ContainerSettings | None = None
    cntk_settings: CNTKsettings | None = None
    py_torch_settings: PyTorchSettings | None = None
    tensor_flow_settings: TensorFlowSettings | None = None
    caffe_settings: CaffeSettings | None = None
    caffe2_settings: Caffe2Settings | None = None
    chainer_settings: ChainerSettings | None = None
    custom_toolkit_settings: CustomToolkitSettings | None = None
    custom_mpi_settings: CustomMpiSettings | None = None
    horovod_settings: HorovodSettings | None = None
    job_preparation: JobPreparation | None = None
    std_out_err_path_prefix: JobFolderPath = Field(min_length=1)
    input_directories: list[InputDirectory] | None = Field(default=None, max_length=MAX_DIRECTORIES)
    output_directories: list[OutputDirectory] | None = Field(default=None, max_length=MAX_DIRECTORIES)
    environment_variables: list[EnvironmentVariable] | None = Field(default=None, max_length=MAX_ENVIRONMENT_VARIABLES)
    secrets: list[EnvironmentVariableWithSecretValue] | None = Field(default=None, max_length=MAX_SECRETS)
    constraints: JobBasePropertiesConstraints = Field(default_factory=JobBasePropertiesConstraints)

    @model_validator(mode="after")
    def _exactly_one_toolkit(self) -> Self:
        given = [self._wire(name) for name in TOOLKITS if getattr(self, name) is not None]
        if len(given) != 1:
            names = ", ".join(self._wire(name) for name in TOOLKITS)
            found = f"got {len(given)}" + (f" ({', '.join(given)})" if given else "")
            raise ValueError(f"exactly one toolkit setting must be specified, one of {names}; {found}")
        return self

    @model_validator(mode="after")
    def _counts_fit_nodes(self) -> Self:
        tf = self.tensor_flow_settings
        if (tf is not None and tf.parameter_server_count is not None and self.node_count is not None
                and tf.parameter_server_count > self.node_count):  # nodeCount is optional in responses
            raise invalid_at(("tensorFlowSettings", "parameterServerCount"),
                             f"tensorFlowSettings.parameterServerCount ({tf.parameter_server_count}) must be "
                             f"less than or equal to nodeCount ({self.node_count})", tf.parameter_server_count)
        return self

    @model_validator(mode="after")
    def _counts_within_limits(self, info: ValidationInfo) -> Self:
        """Process counts are bounded per node of the job (shared/models/limits.py)."""
        if reading_answer(info) or self.node_count is None:
            return self
        limit = MAX_PROCESSES_PER_NODE * self.node_count
        for attribute in TOOLKITS:
            settings = getattr(self, attribute)
            for count in ("process_count", "worker_count", "parameter_server_count"):
                value = getattr(settings, count, None)
                if value is not None and value > limit:
                    where = (self._wire(attribute), type(settings).model_fields[count].alias or count)
                    raise invalid_at(where, f"at most {MAX_PROCESSES_PER_NODE} processes per node of the job are "
                                     f"accepted, {limit} for nodeCount {self.node_count}; got {value}", value)
        return self

    @model_validator(mode="after")
    def _process_count_reported(self) -> Self:
        """processCount defaults to nodeCount (the spec), and the service reported it so."""
        for name in TOOLKITS:
            settings = getattr(self, name)
            if settings is not None and "process_count" in type(settings).model_fields \
                    and settings.process_count is None and self.node_count is not None:
                settings.process_count = self.node_count
        return self

    @model_validator(mode="after")
    def _unique_names(self) -> Self:
        check_environment(self.environment_variables, self.secrets)
        _unique_ids("inputDirectories", [d.id for d in self.input_directories or ()])
        _unique_ids("outputDirectories", [d.id for d in self.output_directories or ()])
        return self

    @classmethod
    def _wire(cls, attribute: str) -> str:
        return cls.model_fields[attribute].alias or attribute


def tool_type_of(properties: Any) -> ToolType:
    """The toolType implied by the one toolkit setting a job carries."""
    for name, tool in TOOLKITS.items():
        if getattr(properties, name, None) is not None:
            return tool
    raise ValueError("the job has no toolkit settings")


class JobCreateParameters(WireModel):
    """Body of PUT .../jobs/{name}."""

    properties: JobBaseProperties


# --------------------------------------------------------------------------------------------------
# Responses
# --------------------------------------------------------------------------------------------------


class JobPropertiesExecutionInfo(WireModel):
    start_time: datetime | None = None
    end_time: datetime | None = None
    exit_code: Int32 | None = None
    errors: list[BatchAIError] | None = None


class JobProperties(JobBaseProperties):
    """A job as the service reports it: its settings plus the state the service keeps."""

    # Responses are read leniently: lists of redacted secrets and optional pieces must parse.
    cluster: ResourceId | None = None  # type: ignore[assignment]
    node_count: Int32 | None = None  # type: ignore[assignment]
    std_out_err_path_prefix: str | None = None  # type: ignore[assignment]
    tool_type: ToolType | None = None
    job_output_directory_path_segment: str | None = None
    creation_time: datetime | None = None
    provisioning_state: ProvisioningState | None = None
    provisioning_state_transition_time: datetime | None = None
    execution_state: ExecutionState | None = None
    execution_state_transition_time: datetime | None = None
    execution_info: JobPropertiesExecutionInfo | None = None

    @model_validator(mode="after")
    def _exactly_one_toolkit(self) -> Self:
        return self


class Job(ProxyResource):
    """Answer of GET/PUT of a job."""

    properties: JobProperties | None = None


class JobListResult(WireModel):
    value: list[Job] | None = None
    next_link: str | None = None


class FileProperties(WireModel):
    last_modified: datetime | None = None
    content_length: Int64 | None = None


class File(WireModel):
    """One entry of a job's output directory listing."""

    model_config = ConfigDict(str_max_length=None)  # written by the service: a deep path makes a long URL

    name: str | None = None
    file_type: FileType | None = None
    download_url: str | None = None
    properties: FileProperties | None = None


class FileListResult(WireModel):
    value: list[File] | None = None
    next_link: str | None = None


class RemoteLoginInformation(WireModel):
    node_id: str | None = None
    ip_address: str | None = None
    port: float | None = None


class RemoteLoginInformationListResult(WireModel):
    value: list[RemoteLoginInformation] | None = None
    next_link: str | None = None


__all__ = [
    "CNTKLanguage",
    "CNTKsettings",
    "Caffe2Settings",
    "CaffeSettings",
    "ChainerSettings",
    "CustomMpiSettings",
    "CustomToolkitSettings",
    "ExecutionState",
    "File",
    "FileListResult",
    "FileProperties",
    "FileType",
    "HorovodSettings",
    "InputDirectory",
    "Job",
    "JobBaseProperties",
    "JobBasePropertiesConstraints",
    "JobCreateParameters",
    "JobListResult",
    "JobPreparation",
    "JobPriority",
    "JobProperties",
    "JobPropertiesExecutionInfo",
    "OutputDirectory",
    "PyTorchBackend",
    "PyTorchSettings",
    "RemoteLoginInformation",
    "RemoteLoginInformationListResult",
    "TOOLKITS",
    "TensorFlowSettings",
    "ToolType",
    "tool_type_of",
]
