"""Experiments: a named group of jobs inside a workspace.

PUT of an experiment takes no body in the spec, so there is no create model; ``Experiment`` is what
the service answers.
"""

from __future__ import annotations

from datetime import datetime

from shared.models.base import WireModel
from shared.models.common import ProvisioningState, ProxyResource


class ExperimentProperties(WireModel):
    """State the service keeps about an experiment; nothing in it is settable."""

    creation_time: datetime | None = None
    provisioning_state: ProvisioningState | None = None
    provisioning_state_transition_time: datetime | None = None


class Experiment(ProxyResource):
    """Answer of GET/PUT of an experiment."""

    properties: ExperimentProperties | None = None


class ExperimentListResult(WireModel):
    """One page of experiments."""

    value: list[Experiment] | None = None
    next_link: str | None = None


__all__ = ["Experiment", "ExperimentListResult", "ExperimentProperties"]
