"""The stored-document fixtures (tests/fixtures/stored_documents, written by a release's code through
generate.py) stay meaningful: each file parses, each container is there, and they hold every job
and node state and every resource kind, so that loading them proves an upgrade keeps them all."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from shared.ids import KINDS
from shared.resources import CONTAINERS

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "stored_documents"


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def test_every_container_has_a_parsable_file_of_documents_sorted_by_key() -> None:
    for spec in CONTAINERS:
        docs = load(f"{spec.name}.json")
        assert docs, spec.name
        assert all(isinstance(d, dict) and "id" in d and "pk" in d and "_etag" not in d for d in docs)
        assert [(d["pk"], d["id"]) for d in docs] == sorted((d["pk"], d["id"]) for d in docs)


def test_every_resource_kind_and_every_job_and_node_state_is_covered() -> None:
    resources = load("resources.json")
    assert {k.name for k in KINDS} <= {d["kind"] for d in resources}
    jobs = [d for d in resources if d["kind"] == "job"]
    assert {d["state"] for d in jobs} == {"queued", "running", "terminating", "succeeded", "failed"}
    assert any(d.get("attempt", 0) > 1 for d in jobs) and any(d.get("submissionId") for d in jobs)
    assert any(d.get("outboxPending") for d in jobs)
    assert {d["state"] for d in load("nodes.json")} == {"preparing", "idle", "running", "leaving", "unusable"}
    assert any(d.get("pending") for d in load("leases.json"))


def test_messages_hold_each_kind_sent_or_stored() -> None:
    messages = load("messages.json")
    for kind in ("laneMessage", "clusterWorkDispatch", "assignment", "eventDelivery", "jobEventQueued",
                 "submissionReplyJob"):
        assert messages.get(kind), kind


def test_no_machine_paths() -> None:
    for path in FIXTURES.glob("*.json"):
        text = path.read_text()
        assert "/tmp/" not in text and "/work/" not in text and "/home/" not in text, path.name
