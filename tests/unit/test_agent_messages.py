"""shared/models/agent.py: the agent API's messages, as the control plane writes them and a node's
agent reads them (secrets only where the node needs them; an older agent still reads a newer answer)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from node_bootstrap.agent import Agent, Bootstrap
from node_bootstrap.attempt import Outcome
from shared.models import JobBaseProperties
from shared.models.agent import (AssignedNode, Assignment, AssignmentAnswer, AttemptRef, MountableVolume, Report,
                                 Work)
from shared.volumes import AZURE_FILE_SHARE, Volume

CLUSTER = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.BatchAI/workspaces/ws/clusters/c"
SECRETS = ("job-secret-value", "registry-password", "account-key")


def assignment() -> Assignment:
    spec = JobBaseProperties.model_validate({
        "cluster": {"id": CLUSTER}, "nodeCount": 2, "stdOutErrPathPrefix": "/logs",
        "customMpiSettings": {"commandLine": "run"}, "secrets": [{"name": "TOKEN", "value": SECRETS[0]}],
        "containerSettings": {"imageSourceRegistry": {"image": "me/x", "credentials": {
            "username": "me", "password": SECRETS[1]}}}}, strict=False)
    volume = Volume(AZURE_FILE_SHARE, "afs", account="acct", key=SECRETS[2], share="s",
                    share_url="https://acct.file.core.windows.net/s")
    return Assignment(job="job|rg|ws|e|j", job_id="/x/jobs/j", attempt=3, master=True,
                      nodes=[AssignedNode(node_id="n0", address="10.0.0.4"),
                             AssignedNode(node_id="n1", address="10.0.0.5")],
                      properties=spec, job_output_directory_path_segment="s/ws/e/j/u",
                      volumes=[MountableVolume.of(volume)], trace_context={"traceparent": "00-a-b-01"})


def test_an_assignment_reaches_its_node_whole_with_the_secrets_it_needs() -> None:
    sent = assignment()
    body = json.dumps(AssignmentAnswer(state="running", assignment=sent).to_wire(reveal_secrets=True))
    read = AssignmentAnswer.read(body).assignment
    assert read == sent
    assert read is not None and read.secret_values() == list(SECRETS)
    assert read.volumes[0].volume() == sent.volumes[0].volume() and read.seed == "s/ws/e/j/u#3"


def test_an_assignment_dumped_without_revealing_holds_no_secret() -> None:
    shown = json.dumps(AssignmentAnswer(state="running", assignment=assignment()).to_wire())
    assert not any(secret in shown for secret in SECRETS)
    assert "***" in repr(MountableVolume(kind=AZURE_FILE_SHARE, relative_mount_path="a", key=SECRETS[2]))


def test_nothing_to_run_is_said_not_left_out() -> None:
    assert AssignmentAnswer(state="idle").to_wire() == {"state": "idle", "assignment": None}
    assert AssignmentAnswer.read('{"state": "idle", "assignment": null}').assignment is None


def test_an_agent_reads_answers_of_a_newer_control_plane() -> None:
    wire = AssignmentAnswer(state="running", assignment=assignment()).to_wire(reveal_secrets=True)
    wire["future"] = 1
    wire["assignment"]["future"] = {"x": 1}
    wire["assignment"]["volumes"][0]["future"] = "y"
    assert AssignmentAnswer.read(json.dumps(wire)).assignment == assignment()


def test_a_volume_of_a_kind_this_node_does_not_know_is_that_volumes_failure_not_an_unreadable_answer() -> None:
    volume = MountableVolume.model_validate({"kind": "floppy", "relativeMountPath": "f"})
    with pytest.raises(ValueError, match="floppy"):
        volume.volume()


def test_a_nodes_messages_are_refused_with_unknown_fields_or_coerced_values() -> None:
    report = {"job": "job|x", "attempt": 1, "exitCode": 0}
    assert Report.model_validate_json(json.dumps(report), by_alias=True, by_name=False).exit_code == 0
    for bad in ({**report, "root": True}, {**report, "attempt": "1"}, {**report, "attempt": 0}):
        with pytest.raises(ValidationError):
            Report.model_validate_json(json.dumps(bad), by_alias=True, by_name=False)
    with pytest.raises(ValidationError):
        Work.model_validate_json('{"idleSeconds": -1}', by_alias=True, by_name=False)


def test_an_assignment_the_agent_cannot_read_is_reported_as_the_attempts_failure(tmp_path: Path) -> None:
    agent = Agent(Bootstrap(node_dir=tmp_path, cluster_id="c", node_id="n0", address="127.0.0.1", token="t"))
    reported: list[tuple[AttemptRef, Outcome]] = []
    agent._report = lambda ref, outcome, stopped=False: reported.append((ref, outcome))  # type: ignore[method-assign]
    agent.stopping.set()  # no pause after it
    wire = AssignmentAnswer(state="running", assignment=assignment()).to_wire(reveal_secrets=True)
    del wire["assignment"]["nodes"]
    body = json.dumps(wire).encode()
    with pytest.raises(ValidationError) as unreadable:
        AssignmentAnswer.read(body)
    agent._unreadable(body, unreadable.value)
    [(ref, outcome)] = reported
    assert (ref.job, ref.attempt, outcome.exit_code) == ("job|rg|ws|e|j", 3, 1)
    assert outcome.error is not None and outcome.error.code == "NodeAgentError" and "nodes" in outcome.error.message
