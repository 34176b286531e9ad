"""A sweep's search space: the parameter kinds and names of Batch AI's `utilities/job_factory.py`
(NumParam, DiscreteParam, DictParam, FileParam), their grid values, and their Optuna distributions.

Values a trial gets are plain JSON scalars; a dictionary parameter NAME gives NAME__KEY for each of
its keys (as the utilities did). Categorical kinds (discrete, dictionary, file) are sampled by
index, so any JSON value can be a choice.
"""

from __future__ import annotations

import enum
import math
import re
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from shared.models.base import SecretWireModel, WireModel
from shared.models.common import quoted

if TYPE_CHECKING:  # Optuna is imported where the search runs, not by every reader of the models (the CLI)
    from optuna.distributions import BaseDistribution

NAME_RE = re.compile(r"^[A-Z_][A-Z0-9_]{0,63}$")
MAX_VALUES = 10_000  # per parameter: bounds the grid and the documents (invariant 8)
Scalar = str | int | float


def _name(value: str) -> str:
    if not NAME_RE.match(value):
        raise ValueError(f"parameter name {quoted(value)} must be uppercase letters, digits and '_' "
                         "(not starting with a digit), at most 64")
    return value


ParameterName = Annotated[str, AfterValidator(_name)]


class DataType(str, enum.Enum):
    INTEGER = "INTEGER"
    REAL = "REAL"


class Scale(str, enum.Enum):
    LINEAR = "LINEAR"
    LOG = "LOG"
    RANDOM_UNIFORM = "RANDOM_UNIFORM"  # random search only: uniform over [start, end], no grid


class NumericParameter(WireModel):
    """A number from start to end (both included); a grid needs step (LINEAR) or numValues."""

    param_type: Literal["NumParam"]
    parameter_name: ParameterName
    data_type: DataType
    start: float | int
    end: float | int
    scale: Scale
    step: float | int | None = Field(default=None, gt=0)
    num_values: int | None = Field(default=None, ge=1, le=MAX_VALUES)

    @model_validator(mode="after")
    def _range(self) -> NumericParameter:
        if not (math.isfinite(self.start) and math.isfinite(self.end)) or self.start >= self.end:
            raise ValueError("end must be greater than start, both finite")
        if self.scale == Scale.LOG and self.start <= 0:
            raise ValueError("a LOG scale needs start > 0")
        if self.step is not None and (self.end - self.start) / self.step >= MAX_VALUES:
            raise ValueError(f"step gives more than {MAX_VALUES} values")
        return self

    def grid(self) -> list[Scalar] | None:
        """The utilities' values: LINEAR by step (end included) or by count, LOG by count (geometric)."""
        if self.scale == Scale.LINEAR and self.step is not None:
            count = int(math.floor((self.end - self.start) / self.step + 1e-9)) + 1
            values = [self.start + i * self.step for i in range(count)]
        elif self.scale == Scale.LINEAR and self.num_values is not None:
            n = self.num_values
            values = [self.start + (self.end - self.start) * i / max(n - 1, 1) for i in range(n)]
        elif self.scale == Scale.LOG and self.num_values is not None:
            n, low, high = self.num_values, math.log10(self.start), math.log10(self.end)
            values = [10 ** (low + (high - low) * i / max(n - 1, 1)) for i in range(n)]
        else:
            return None
        if self.data_type == DataType.INTEGER:
            return list(dict.fromkeys(int(round(v)) for v in values))
        return [float(f"{v:.12g}") for v in values]  # 1e-4 .. 1e-1, not 0.00099999

    def distribution(self) -> BaseDistribution:
        from optuna.distributions import FloatDistribution, IntDistribution

        log = self.scale == Scale.LOG
        if self.data_type == DataType.INTEGER:
            return IntDistribution(math.ceil(self.start), math.floor(self.end), log=log)
        return FloatDistribution(float(self.start), float(self.end), log=log)


class DiscreteParameter(WireModel):
    param_type: Literal["DiscreteParam"]
    parameter_name: ParameterName
    values: list[Scalar] = Field(min_length=1, max_length=MAX_VALUES)


class DictParameter(WireModel):
    """Values that go together: each choice is an object; its keys become NAME__KEY."""

    param_type: Literal["DictParam"]
    parameter_name: ParameterName
    values: list[dict[str, Scalar]] = Field(min_length=1, max_length=MAX_VALUES)

    @model_validator(mode="after")
    def _same_keys(self) -> DictParameter:
        keys = set(self.values[0])
        if not keys:
            raise ValueError("each value must have at least one key")
        for index, value in enumerate(self.values):
            if set(value) != keys:
                raise ValueError(f"values[{index}] has other keys than values[0]")
            for key in value:
                _name(f"{self.parameter_name}__{key}")
        return self


class StorageType(str, enum.Enum):
    FILE = "FILE"
    BLOB = "BLOB"


class FileParameter(SecretWireModel):
    """One value per file of a mounted share or container whose path (below `directory`) matches
    `filterStr` (re.match, as the utilities did); the value is the file's path on the node:
    $AZ_BATCHAI_{JOB_,}MOUNT_ROOT/<mountPath>/<path>. The files are listed when the sweep is created."""

    _secret_fields = ("storage_account_key",)

    param_type: Literal["FileParam"]
    parameter_name: ParameterName
    storage_account_name: str = Field(min_length=3, max_length=24, pattern=r"^[a-z0-9]+$")
    storage_account_key: str | None = Field(default=None, max_length=256)  # never returned by a read
    storage_type: StorageType
    mount_method: Literal["JOB", "CLUSTER"]
    mount_path: str = Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9_.-]+$")
    container: str | None = Field(default=None, max_length=63)
    fileshare: str | None = Field(default=None, max_length=63)
    directory: str | None = Field(default=None, max_length=1024)
    filter_str: str | None = Field(default=None, max_length=1024)

    @model_validator(mode="after")
    def _where(self) -> FileParameter:
        if self.storage_type == StorageType.BLOB and not self.container:
            raise ValueError("a BLOB file parameter needs container")
        if self.storage_type == StorageType.FILE and not self.fileshare:
            raise ValueError("a FILE file parameter needs fileshare")
        if self.directory and ".." in self.directory.replace("\\", "/").split("/"):
            raise ValueError("directory must not contain '..'")
        if self.filter_str is not None:
            try:
                re.compile(self.filter_str)
            except re.error as exc:
                raise ValueError(f"filterStr does not compile: {exc}") from None
        return self


Parameter = Annotated[NumericParameter | DiscreteParameter | DictParameter | FileParameter,
                      Field(discriminator="param_type")]


def choices(parameter: Parameter, files: list[str] | None = None) -> list[Scalar | dict[str, Scalar]] | None:
    """The finite values of a parameter (None: a continuous numeric range without grid values)."""
    if isinstance(parameter, NumericParameter):
        grid = parameter.grid() if parameter.scale != Scale.RANDOM_UNIFORM else None
        return None if grid is None else [*grid]
    if isinstance(parameter, FileParameter):
        return list(files or [])
    return list(parameter.values)


def grid_point(values: list[list[Scalar | dict[str, Scalar]]], index: int) -> tuple[int, ...]:
    """The index-th combination of the cartesian product in itertools.product's order (first
    parameter slowest), without building the product."""
    point = []
    for options in reversed(values):
        index, here = divmod(index, len(options))
        point.append(here)
    return tuple(reversed(point))


def grid_size(values: list[list[Scalar | dict[str, Scalar]]]) -> int:
    return math.prod(len(v) for v in values)


def variables(name: str, value: Scalar | dict[str, Scalar]) -> dict[str, Scalar]:
    """What one parameter's value sets: NAME, or NAME__KEY for each key of a dictionary value."""
    if isinstance(value, dict):
        return {f"{name}__{key}": item for key, item in value.items()}
    return {name: value}


def placeholder_names(parameters: list[Parameter]) -> set[str]:
    """Every name a template may use as {{NAME}}."""
    names: set[str] = set()
    for p in parameters:
        if isinstance(p, DictParameter):
            names |= {f"{p.parameter_name}__{key}" for key in p.values[0]}
        else:
            names.add(p.parameter_name)
    return names


def distribution(parameter: Parameter, count: int | None) -> BaseDistribution:
    """Optuna's view of a parameter: numeric ranges as they are, finite kinds as an index."""
    from optuna.distributions import CategoricalDistribution

    if isinstance(parameter, NumericParameter):
        return parameter.distribution()
    assert count is not None
    return CategoricalDistribution(list(range(count)))
