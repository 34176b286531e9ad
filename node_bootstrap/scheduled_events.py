"""Azure Scheduled Events on a VM: a low-priority (Spot) VM learns of its eviction about 30 s before
it happens, from the instance metadata service. The agent tells the control plane at once, so the
job queues again (spending no retry) before the VM is gone, instead of after the heartbeats stop.
Only in VM mode: the local pool has no metadata service."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

log = logging.getLogger("node_bootstrap.scheduled_events")
IMDS_URL = "http://169.254.169.254/metadata/scheduledevents?api-version=2020-07-01"
POLL_SECONDS = 5.0


class ScheduledEvent(BaseModel):
    """One event of the metadata service's document (its own names; fields not read are ignored)."""

    model_config = ConfigDict(extra="ignore")
    event_type: str | None = Field(default=None, alias="EventType")
    resources: list[str] | None = Field(default=None, alias="Resources")


class ScheduledEvents(BaseModel):
    model_config = ConfigDict(extra="ignore")
    events: list[ScheduledEvent] | None = Field(default=None, alias="Events")


def preempted(document: ScheduledEvents, node_id: str) -> bool:
    """Pure: does a Scheduled Events document announce this VM's eviction? A scale set's instance
    is named `<scale set>_<instance id>`, and the node id is the instance id."""
    for event in document.events or ():
        if event.event_type != "Preempt":
            continue
        resources = event.resources or []
        if not resources or any(r == node_id or r.endswith(f"_{node_id}") for r in resources):
            return True
    return False


class EvictionWatcher:
    """Polls the metadata service and calls `on_eviction` once when this VM is to be evicted."""

    def __init__(self, node_id: str, on_eviction: Callable[[], None], stopping: threading.Event,
                 url: str = IMDS_URL, every: float = POLL_SECONDS) -> None:
        self.node_id, self.on_eviction, self.stopping = node_id, on_eviction, stopping
        self.url, self.every = url, every
        self.thread = threading.Thread(target=self._run, name="scheduled-events", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        with httpx.Client(timeout=2.0, trust_env=False) as client:
            while not self.stopping.wait(self.every):
                try:
                    answer = client.get(self.url, headers={"Metadata": "true"})
                    document = ScheduledEvents.model_validate_json(answer.content)
                except (httpx.HTTPError, ValidationError):
                    continue  # the service is briefly unavailable at times: ask again next round
                if preempted(document, self.node_id):
                    log.info("this VM is being evicted")
                    self.on_eviction()
                    return
