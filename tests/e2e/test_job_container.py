"""A job with containerSettings on nodes whose `docker` is a stand-in (tests/e2e/job_scripts/fake_docker.py:
this machine has no container engine): each node starts one container for the attempt, runs the job
preparation and then its tasks in it, and removes it at the end (the spec: the preparation runs "in the
same container as job", so what it installs is there for the job). A container that cannot start fails
the job, naming the image, before the preparation runs. What a real engine does with the container
is Docker's business; tests/e2e/test_toolkits.py covers a node without any engine."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.localhost.process import start_local_host
from tests.e2e.polling import wait_until
from tests.e2e.test_toolkits import AFS, SCRIPTS, Jobs, script


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jobs]:
    root = tmp_path_factory.mktemp("container")
    bin_dir = root / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").symlink_to(SCRIPTS / "fake_docker.py")
    path = os.pathsep.join([str(bin_dir), os.environ.get("PATH", "")])
    host = start_local_host(root / "state", env={"PATH": path, "FAKE_DOCKER_STATE": str(root / "docker")})
    try:
        jobs = Jobs(host)
        jobs.path = os.pathsep.join([str(bin_dir), jobs.path])  # the job's PATH: the node's docker first
        yield jobs
        jobs.http.close()
    finally:
        assert host.stop() == 0, "\n".join(host.output[-40:])


def containers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def docker_state(jobs: Jobs) -> Path:
    return jobs.host.data_dir.parent / "docker"


def test_preparation_and_tasks_run_in_one_container_per_node_removed_at_the_end(jobs: Jobs) -> None:
    image = "caffe2ai/caffe2"
    props = jobs.succeeded("c2", {
        "environmentVariables": [{"name": "PATH", "value": jobs.path}, {"name": "GREETING", "value": "hello"}],
        "containerSettings": {"imageSourceRegistry": {"image": image}},
        "jobPreparation": {"commandLine": "echo $FAKE_CONTAINER > $AZ_BATCHAI_JOB_TEMP/prepared-in"},
        "caffe2Settings": {"pythonScriptFilePath": script("in_container.py")}})
    assert props["containerSettings"]["imageSourceRegistry"]["image"] == image
    first, second = jobs.text("c2", "stdout-0.txt"), jobs.text("c2", "stdout-1.txt")
    assert first.startswith("ok in a container") and "task 0 in batchai-" in first, jobs.logs("c2")
    assert "task 1 in batchai-" in second and first.split()[-1] != second.split()[-1]  # a container per node
    wait_until("both containers removed", lambda: containers(docker_state(jobs)) == [])
    calls = (docker_state(jobs) / "calls.log").read_text().splitlines()
    assert calls.count("run --detach") == 2 and calls.count("rm --force") == 2
    assert calls.count("exec -e") == 4  # on each node: the preparation, then the task


def test_a_container_that_cannot_start_fails_the_job_naming_the_image_before_the_preparation(jobs: Jobs) -> None:
    props = jobs.run("nopull", {"nodeCount": 1,
                                "containerSettings": {"imageSourceRegistry": {"image": "missing/image"}},
                                "jobPreparation": {"commandLine": f"touch {AFS}/prep-ran"},
                                "customToolkitSettings": {"commandLine": "true"}})
    assert props["executionState"] == "failed"
    error = props["executionInfo"]["errors"][0]
    assert error["code"] == "ContainerStartFailed" and "'missing/image'" in error["message"], error
    assert not (jobs.share / "prep-ran").exists()
    assert "Unable to find image" in jobs.text("nopull", "stderr-job_prep.txt")
