"""Event subscriptions: webhooks that receive a workspace's job events (an addition beside Batch AI's
API, not part of BatchAI.json).

``EventSubscriptionCreateParameters`` is what PUT accepts; ``EventSubscription`` is what the service
answers. The secret that signs deliveries is write-only: it is dropped from every dump (invariant 7).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, ClassVar

from pydantic import AfterValidator, ConfigDict, Field

from shared.ids import NAME_PATTERN
from shared.models.base import SecretWireModel, WireModel
from shared.models.common import ProvisioningState, ProxyResource
from shared.webhook_destinations import url_problem


class JobEventType(str, enum.Enum):
    """The CloudEvents `type` of an event on the job-events topic: one per state a job enters, and
    the outcome of each request sent by queue message."""

    JOB_QUEUED = "Microsoft.BatchAI.JobQueued"
    JOB_RUNNING = "Microsoft.BatchAI.JobRunning"
    JOB_TERMINATING = "Microsoft.BatchAI.JobTerminating"
    JOB_SUCCEEDED = "Microsoft.BatchAI.JobSucceeded"
    JOB_FAILED = "Microsoft.BatchAI.JobFailed"
    # Requests by queue message (shared/submissions.py): their outcome.
    JOB_SUBMISSION_ACCEPTED = "Microsoft.BatchAI.JobSubmissionAccepted"
    JOB_SUBMISSION_REJECTED = "Microsoft.BatchAI.JobSubmissionRejected"
    CLUSTER_RESIZE_ACCEPTED = "Microsoft.BatchAI.ClusterResizeAccepted"
    CLUSTER_RESIZE_REJECTED = "Microsoft.BatchAI.ClusterResizeRejected"
    SWEEP_COMPLETED = "Microsoft.BatchAI.SweepCompleted"  # a parameter sweep ended (shared/sweeps/driver.py)


def _http_url(value: str) -> str:
    """Only plain absolute http(s) URLs: the service POSTs events there (where to: the API checks)."""
    problem = url_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _experiment_name(value: str) -> str:
    if not NAME_PATTERN.fullmatch(value):
        raise ValueError("use 1 to 64 letters, digits, '-' or '_'")
    return value


class WebHookDestination(WireModel):
    """Where deliveries go."""

    endpoint_url: Annotated[str, Field(min_length=1, max_length=2048), AfterValidator(_http_url)]


class EventSubscriptionFilter(WireModel):
    """Which events a subscription receives; an absent or empty list lets every value through."""

    experiments: list[Annotated[str, AfterValidator(_experiment_name)]] | None = Field(default=None, max_length=100)
    event_types: list[JobEventType] | None = Field(default=None, max_length=100)


class EventSubscriptionCreateProperties(SecretWireModel):
    _secret_fields: ClassVar[tuple[str, ...]] = ("secret",)

    destination: WebHookDestination
    filter: EventSubscriptionFilter | None = None
    # Signs each delivery (X-BatchAI-Signature); never returned.
    secret: str | None = Field(default=None, min_length=1, max_length=256, repr=False)


class EventSubscriptionCreateParameters(WireModel):
    """Body of PUT .../workspaces/{ws}/eventSubscriptions/{name}."""

    properties: EventSubscriptionCreateProperties


class EventSubscriptionProperties(WireModel):
    destination: WebHookDestination | None = None
    filter: EventSubscriptionFilter | None = None
    has_secret: bool | None = None  # whether deliveries are signed; the secret itself is never returned
    creation_time: datetime | None = None
    provisioning_state: ProvisioningState | None = None
    provisioning_state_transition_time: datetime | None = None


class EventSubscription(ProxyResource):
    """Answer of GET/PUT of an event subscription."""

    properties: EventSubscriptionProperties | None = None


class DeadLetter(WireModel):
    """A delivery that was given up: the event, and why."""

    model_config = ConfigDict(str_max_length=None)  # written by the service, never by a user

    event_id: str
    event_type: str
    source: str
    attempts: int
    last_attempt_time: datetime
    reason: str
    status_code: int | None = None
    event: dict[str, object]


__all__ = ["DeadLetter", "EventSubscription", "EventSubscriptionCreateParameters",
           "EventSubscriptionCreateProperties", "EventSubscriptionFilter", "EventSubscriptionProperties",
           "JobEventType", "WebHookDestination"]
