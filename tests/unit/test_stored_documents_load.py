"""An upgrade keeps every job: documents written by the previous release (tests/fixtures/stored_documents,
made by its generate.py) load into the typed models and are written back as they were — nothing lost or
changed, only internal fields the previous release left out appear with their defaults."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shared.documents.base import Document
from shared.documents.nodes import ClusterLease, Heartbeat, NodeDocument, SubscriptionRoleAssignment, TimerLease
from shared.documents.resources import KINDS, TeardownRecord, load_resource

FIXTURES = Path(__file__).parents[1] / "fixtures" / "stored_documents"


def model_of(container: str, raw: dict[str, Any]) -> Document:
    if container == "resources":
        return TeardownRecord.load(raw) if raw["kind"] == "fileServerTeardown" else load_resource(raw)
    if container == "leases":
        return (TimerLease if raw["pk"] == "timers" else ClusterLease).load(raw)
    return {"nodes": NodeDocument, "heartbeats": Heartbeat, "roleAssignments": SubscriptionRoleAssignment}[
        container].load(raw)


def stored(container: str) -> list[dict[str, Any]]:
    return list(json.loads((FIXTURES / f"{container}.json").read_text()))


def documents() -> list[tuple[str, dict[str, Any]]]:
    return [(c, raw) for c in ("resources", "nodes", "heartbeats", "leases", "roleAssignments") for raw in stored(c)]


@pytest.mark.parametrize(("container", "raw"), documents(), ids=lambda v: v if isinstance(v, str) else v["id"][:60])
def test_a_stored_document_loads_and_is_written_back_unchanged(container: str, raw: dict[str, Any]) -> None:
    model = model_of(container, raw)
    written = model.to_json()
    added = {k for k in written.keys() - raw.keys()}
    assert {k: v for k, v in written.items() if k not in added} == raw
    defaults = {name: field.get_default(call_default_factory=True) for name, field in type(model).model_fields.items()}
    by_alias = {type(model).model_fields[n].alias or n: v for n, v in defaults.items()}
    assert all(written[k] == by_alias.get(k, object()) for k in added), f"{added} are not defaults"


def test_every_resource_kind_has_its_model() -> None:
    kinds = {raw["kind"] for raw in stored("resources")} - {"fileServerTeardown"}
    assert kinds <= KINDS.keys()
    assert all(type(load_resource(raw)) is KINDS[raw["kind"]] for raw in stored("resources") if raw["kind"] in KINDS)
