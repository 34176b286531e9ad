"""shared/client/client.py master_log: the file `job file stream` and `job wait` follow by default,
per reference/ENVIRONMENT.md "Per-task log files" (the recipes stream these names)."""

from __future__ import annotations

from typing import Any

import pytest

from shared.client.client import master_log
from shared.models import Job


@pytest.mark.parametrize(("settings", "stdout", "stderr"), [
    ({"tensorFlowSettings": {"pythonScriptFilePath": "t.py"}}, "stdout-wk-0.txt", "stderr-wk-0.txt"),
    ({"pyTorchSettings": {"pythonScriptFilePath": "t.py", "communicationBackend": "gloo"}}, "stdout-0.txt",
     "stderr-0.txt"),
    ({"pyTorchSettings": {"pythonScriptFilePath": "t.py"}}, "stdout-0.txt", "stderr-0.txt"),
    ({"pyTorchSettings": {"pythonScriptFilePath": "t.py", "communicationBackend": "MPI"}}, "stdout.txt", "stderr.txt"),
    ({"caffe2Settings": {"pythonScriptFilePath": "t.py"}}, "stdout-0.txt", "stderr-0.txt"),
    ({"horovodSettings": {"pythonScriptFilePath": "t.py"}}, "stdout.txt", "stderr.txt"),
    ({"customToolkitSettings": {"commandLine": "true"}}, "stdout.txt", "stderr.txt"),
    ({}, "stdout.txt", "stderr.txt"),
])
def test_the_master_tasks_log_file(settings: dict[str, Any], stdout: str, stderr: str) -> None:
    job = Job.model_validate({"properties": settings})
    assert (master_log(job), master_log(job, "stderr")) == (stdout, stderr)
