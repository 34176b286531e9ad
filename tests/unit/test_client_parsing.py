"""The client reads every answer its service can give (shared/client/parsing.py)."""

from __future__ import annotations

from datetime import datetime

import pytest
from pydantic import ValidationError

from shared.client.parsing import parse_answer
from shared.models import Cluster, Job

CLUSTER_ID = "/subscriptions/s/resourceGroups/g/providers/Microsoft.BatchAI/workspaces/w/clusters/c"


def test_a_cluster_that_breaks_a_request_rule_is_read() -> None:
    # A service filled in initialNodeCount 0 for `--min 1 --max 1` when its request rule refused an explicit
    # one below the minimum: the CLI then refused its own cluster. Any answer that a request rule refuses
    # (here az's `-t 1 --min 2 --max 2` kept by a service that takes it) must still be read.
    answer = {"id": CLUSTER_ID, "name": "c", "properties": {
        "vmSize": "STANDARD_NC6", "creationTime": "2026-01-01T00:00:00Z",
        "scaleSettings": {"autoScale": {"minimumNodeCount": 2, "maximumNodeCount": 2, "initialNodeCount": 1}}}}
    with pytest.raises(ValidationError):
        Cluster.model_validate(answer, strict=False)
    cluster = parse_answer(Cluster, answer)
    assert cluster.properties is not None and cluster.properties.scale_settings is not None
    auto = cluster.properties.scale_settings.auto_scale
    assert auto is not None and (auto.minimum_node_count, auto.initial_node_count) == (2, 1)
    assert isinstance(cluster.properties.creation_time, datetime)  # the parts that validate are typed
    assert cluster.to_wire()["properties"]["scaleSettings"] == answer["properties"]["scaleSettings"]


def test_unknown_fields_and_values_from_a_newer_service_are_taken() -> None:
    answer = {"id": CLUSTER_ID, "name": "c", "somethingNew": {"a": 1}, "properties": {
        "vmSize": "STANDARD_NC6", "allocationState": "hibernating", "newCounter": 3, "currentNodeCount": 2}}
    cluster = parse_answer(Cluster, answer)
    assert cluster.properties is not None
    assert cluster.properties.allocation_state == "hibernating" and cluster.properties.current_node_count == 2


def test_a_job_with_a_backend_the_models_do_not_list_is_read() -> None:
    answer = {"name": "j", "properties": {"nodeCount": 2, "executionState": "running",
                                          "pyTorchSettings": {"pythonScriptFilePath": "x.py",
                                                              "communicationBackend": "a-new-backend"}}}
    job = parse_answer(Job, answer)
    assert job.properties is not None and job.properties.execution_state == "running"
    assert job.to_wire()["properties"]["pyTorchSettings"]["communicationBackend"] == "a-new-backend"


def test_what_is_not_an_object_still_fails() -> None:
    with pytest.raises(ValidationError):
        parse_answer(Cluster, ["not", "a", "cluster"])
