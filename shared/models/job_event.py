"""A job's events as `GET .../jobs/{job}/events` answers them (shared/api/job_events.py): the
CloudEvents 1.0 events of its state changes, as published on the job-events topic (shared/events.py)."""

from __future__ import annotations

from pydantic import ConfigDict

from shared.models.base import WireModel


class JobEventError(WireModel):
    model_config = ConfigDict(str_max_length=None)  # written by the service, never by a user

    code: str
    message: str


class JobEventData(WireModel):
    state: str
    previous_state: str | None
    exit_code: int | None
    attempt: int
    errors: list[JobEventError]


class JobEvent(WireModel):
    """A CloudEvents 1.0 event of a job's state change, as published on the job-events topic."""

    specversion: str
    id: str
    source: str
    type: str
    subject: str
    time: str | None
    datacontenttype: str
    sequence: str  # CloudEvents' sequence extension: the job's events in order
    data: JobEventData


__all__ = ["JobEvent", "JobEventData", "JobEventError"]
