"""Bodies of the messages the core sends itself: lane entries and cluster work signals."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict


class MessageBody(BaseModel):
    """A message body: compact JSON, refused whole when malformed (a poison message is dead-lettered)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    @classmethod
    def parse(cls, body: bytes) -> Self:
        return cls.model_validate_json(body)

    def encode(self) -> bytes:
        return self.model_dump_json().encode()


class LaneEntry(MessageBody):
    """A queued job's place in its cluster's lane: which job, and for which attempt."""

    job: str
    pk: str
    attempt: int


class WorkSignal(MessageBody):
    """Wake the function that dispatches or reconciles one cluster."""

    cluster: str
    pk: str
    action: Literal["dispatch", "reconcile"] = "dispatch"
