"""The sweep resource (beside Batch AI's API, under an experiment): what a user sends, and the
trials the service keeps in the sweep's document.

A sweep's body: a job template (a job's `properties`, Batch AI's format, with `{{NAME}}`
placeholders), the parameters (shared/sweeps/space.py), how to sample, the primary metric and
where to read it, the budget and an optional early-termination policy."""

from __future__ import annotations

import enum
import re
from datetime import timedelta
from typing import Literal

from pydantic import Field, JsonValue, model_validator

from shared.models.base import WireModel
from shared.models.common import Duration
from shared.sweeps.space import Parameter, Scalar

MAX_TRIALS = 500  # a sweep's trials live in its document
METRICS_FILE = "metrics.jsonl"  # in $AZ_BATCHAI_STDOUTERR_DIR: one {"name", "value", "step"} per line


class Algorithm(str, enum.Enum):
    GRID = "grid"
    RANDOM = "random"
    BAYESIAN = "bayesian"  # Optuna's TPE


class Sampling(WireModel):
    algorithm: Algorithm
    seed: int = Field(default=0, ge=0, le=2**31 - 1)


class Goal(str, enum.Enum):
    MAXIMIZE = "maximize"
    MINIMIZE = "minimize"


class Calculation(str, enum.Enum):
    LAST = "last"
    MEAN = "mean"
    MIN = "min"
    MAX = "max"
    BEST = "best"  # the best by the goal


class Objective(WireModel):
    """The primary metric. From the log (`source: log`): every match of `regex` in `logFile` of the
    job's stdouterr directory is one value (group 'value' or the first group), at step 'step' (a
    named group) or at the match's ordinal. From the metrics file (`source: metricsFile`): the lines
    of $AZ_BATCHAI_STDOUTERR_DIR/metrics.jsonl whose name is `metricName`."""

    metric_name: str = Field(min_length=1, max_length=128)
    goal: Goal
    source: Literal["log", "metricsFile"] = "log"
    log_file: str = Field(default="stdout.txt", max_length=256, pattern=r"^[A-Za-z0-9_.-]+$")
    regex: str | None = Field(default=None, max_length=1024)
    calculate_method: Calculation = Calculation.LAST

    @model_validator(mode="after")
    def _regex(self) -> Objective:
        if self.log_file in (".", ".."):
            raise ValueError("logFile must name a file of the job's stdouterr directory")
        if self.source == "log":
            if not self.regex:
                raise ValueError("a metric read from the log needs regex")
            try:
                compiled = re.compile(self.regex)
            except re.error as exc:
                raise ValueError(f"regex does not compile: {exc}") from None
            if compiled.groups < 1:
                raise ValueError("regex needs a group that captures the value")
        return self


class Budget(WireModel):
    max_trials: int = Field(ge=1, le=MAX_TRIALS)
    max_concurrent_trials: int = Field(default=1, ge=1, le=MAX_TRIALS)
    max_duration: Duration | None = None

    @model_validator(mode="after")
    def _positive(self) -> Budget:
        if self.max_duration is not None and self.max_duration <= timedelta(0):
            raise ValueError("maxDuration must be longer than zero")
        return self


class Policy(str, enum.Enum):
    MEDIAN = "median"  # stop a trial below the median of completed trials at the same step
    TRUNCATION = "truncation"  # stop a trial in the worst truncationPercentage at its step
    HYPERBAND = "hyperband"
    ASHA = "asha"  # asynchronous successive halving


class EarlyTermination(WireModel):
    policy: Policy
    delay_evaluation: int = Field(default=0, ge=0, le=1_000_000)  # no stop at a step <= this (steps count from 1)
    min_completed_trials: int = Field(default=3, ge=0, le=MAX_TRIALS)  # median/truncation start after
    truncation_percentage: int = Field(default=20, ge=1, le=99)
    min_resource: int = Field(default=1, ge=1, le=1_000_000)  # hyperband / asha, in steps
    max_resource: int = Field(default=100, ge=1, le=1_000_000)
    reduction_factor: int = Field(default=3, ge=2, le=100)


class SweepProperties(WireModel):
    job_template: dict[str, JsonValue]
    parameters: list[Parameter] = Field(min_length=1, max_length=32)
    sampling: Sampling
    objective: Objective
    budget: Budget
    early_termination: EarlyTermination | None = None

    @model_validator(mode="after")
    def _unique_names(self) -> SweepProperties:
        seen: set[str] = set()
        for index, p in enumerate(self.parameters):
            if p.parameter_name in seen:
                raise ValueError(f"parameters[{index}].parameterName '{p.parameter_name}' is given twice")
            seen.add(p.parameter_name)
        return self


class SweepCreateParameters(WireModel):
    properties: SweepProperties


class TrialState(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPED = "stopped"  # ended early by the policy (its job terminated)
    CANCELED = "canceled"  # the sweep was canceled or ran out of time


ENDED = frozenset({TrialState.SUCCEEDED, TrialState.FAILED, TrialState.STOPPED, TrialState.CANCELED})


class MetricPoint(WireModel):
    step: int
    value: float


class Trial(WireModel):
    """One trial: an ordinary job of the experiment, named <sweep>-<number>."""

    number: int
    job_name: str
    parameters: dict[str, Scalar]  # NAME -> value (dictionary parameters as NAME__KEY)
    # Optuna's view: the numeric value, or the index of a finite kind's value (not in answers).
    choice: dict[str, int | float] = Field(default_factory=dict)
    state: TrialState = TrialState.QUEUED
    reason: str | None = None
    intermediate: list[MetricPoint] = Field(default_factory=list)
    final_metric: float | None = None
    best_metric: float | None = None
    pruner_marks: dict[str, float] = Field(default_factory=dict)  # Optuna's rung records (hyperband, asha)
    creation_time: str
    end_time: str | None = None
    job_id: str | None = None  # in answers: the trial's job


class SweepState(str, enum.Enum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"  # every trial it was going to run has ended
    CANCELED = "canceled"
    FAILED = "failed"  # no trial succeeded


class BestTrial(WireModel):
    number: int
    job_name: str
    parameters: dict[str, Scalar]
    final_metric: float


class SweepStatus(SweepProperties):
    """A sweep as reads return it: its body (secret values removed) and how far it has come."""

    planned_trials: int
    creation_time: str
    provisioning_state: str
    provisioning_state_transition_time: str
    execution_state: SweepState
    execution_state_transition_time: str
    trial_counts: dict[str, int] = Field(default_factory=dict)
    best_trial: BestTrial | None = None


class Sweep(WireModel):
    id: str
    name: str
    type: str
    properties: SweepStatus
