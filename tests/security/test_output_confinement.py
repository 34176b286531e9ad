"""No path out of a job's files (invariant 8), on the real local host: a log or output folder that
climbs with '..' (written, or brought in by the job's own variables) is refused at create with a
400 naming the field, and nothing is stored; links a job plants in its folders — to the owner
token, the URL-signing key, the database, the data folder itself — are neither listed nor served,
not even when a listed file is swapped for a link after its URL was handed out; and no URL, even
one signed with the host's own key, reaches anything of the data folder but jobs' and storage's
files."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.composition import build_signer
from shared.localhost.process import LocalHostProcess
from shared.settings import Settings
from tests.e2e.hosts import running_host
from tests.e2e.polling import wait_until
from tests.security.one_node_cluster import one_node_cluster

WS = "/subscriptions/sec/resourceGroups/rg/providers/Microsoft.BatchAI/workspaces/confined"
CLUSTER = f"{WS}/clusters/one"
Q = {"api-version": "2018-05-01"}
SHARE = {"azureFileShares": [{"accountName": "acc", "azureFileUrl": "https://acc.file.core.windows.net/outs",
                              "relativeMountPath": "afs", "credentials": {"accountKey": "a2V5"}}]}


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHostProcess]:
    with running_host(tmp_path_factory.mktemp("confinement") / "state") as host:
        yield host


@pytest.fixture(scope="module")
def http(host: LocalHostProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=host.endpoint, params=Q, timeout=30, headers=host.headers) as client:
        one_node_cluster(client, WS)
        yield client


def job_body(**properties: Any) -> dict[str, Any]:
    return {"properties": {"cluster": {"id": CLUSTER}, "nodeCount": 1, "stdOutErrPathPrefix": "$AZ_BATCHAI_JOB_TEMP",
                           "customToolkitSettings": {"commandLine": "true"}, **properties}}


CLIMBING = {
    "stdOutErrPathPrefix": ({"stdOutErrPathPrefix": "$AZ_BATCHAI_JOB_TEMP/../../.."},
                            "properties.stdOutErrPathPrefix"),
    "pathPrefix": ({"outputDirectories": [{"id": "OUT", "pathPrefix": "$AZ_BATCHAI_JOB_TEMP/../.."}]},
                   "properties.outputDirectories[0].pathPrefix"),
    "pathSuffix": ({"outputDirectories": [{"id": "A", "pathPrefix": "$AZ_BATCHAI_JOB_TEMP"},
                                          {"id": "B", "pathPrefix": "$AZ_BATCHAI_JOB_TEMP", "pathSuffix": "x/../../.."}]},
                   "properties.outputDirectories[1].pathSuffix"),
    "pathSuffix through a variable": ({"environmentVariables": [{"name": "UP", "value": ".."}],
                                       "outputDirectories": [{"id": "OUT", "pathPrefix": "$AZ_BATCHAI_JOB_TEMP",
                                                              "pathSuffix": "$UP/${UP}/$UP"}]},
                                      "properties.outputDirectories[0].pathSuffix"),
    "stdOutErrPathPrefix through a secret": ({"secrets": [{"name": "ROOT", "value": "/x/.."}],
                                              "stdOutErrPathPrefix": "$ROOT/data"}, "properties.stdOutErrPathPrefix"),
}


@pytest.mark.parametrize("case", CLIMBING, ids=list(CLIMBING))
def test_a_folder_that_climbs_is_refused_at_create(http: httpx.Client, case: str) -> None:
    properties, target = CLIMBING[case]
    name = "climb-" + "".join(c for c in case if c.isalnum())[:40]
    answer = http.put(f"{WS}/experiments/e/jobs/{name}", json=job_body(**properties))
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["target"] == target and "'..'" in error["message"], error
    assert http.get(f"{WS}/experiments/e/jobs/{name}").status_code == 404  # nothing stored


def listing(http: httpx.Client, job: str, directory_id: str, directory: str = "") -> dict[str, dict[str, Any]]:
    params = {**Q, "outputdirectoryid": directory_id, **({"directory": directory} if directory else {})}
    answer = http.post(f"{WS}/experiments/e/jobs/{job}/listOutputFiles", params=params)
    answer.raise_for_status()
    return {entry["name"]: entry for entry in answer.json()["value"]}


def test_links_a_job_plants_are_neither_listed_nor_served(host: LocalHostProcess, http: httpx.Client,
                                                         tmp_path: Path) -> None:
    data = host.data_dir.resolve()
    token = (data / "token").read_text().strip()
    gate = tmp_path / "gate"
    command = " && ".join([
        "cd $AZ_BATCHAI_OUTPUT_OUT", "echo model > model.txt",
        f"ln -s {data}/token token-link", f"ln -s {data}/url-signing.key key-link", f"ln -s {data} data-link",
        f"ln -s {data}/state.sqlite3 $AZ_BATCHAI_OUTPUT_SHARE/db-link", "echo shared > $AZ_BATCHAI_OUTPUT_SHARE/s.txt",
        f"ln -s {data}/token $AZ_BATCHAI_STDOUTERR_DIR/token-link", "echo started",
        f"for i in $(seq 1200); do [ -e {gate} ] && break; sleep 0.05; done",
        "rm model.txt", f"ln -s {data}/token model.txt",  # a listed file becomes a link to the token
    ])
    http.put(f"{WS}/experiments/e/jobs/planter", json=job_body(
        mountVolumes=SHARE, customToolkitSettings={"commandLine": command},
        outputDirectories=[{"id": "OUT", "pathPrefix": "$AZ_BATCHAI_JOB_TEMP", "pathSuffix": "out"},
                           {"id": "SHARE", "pathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT/afs"}])).raise_for_status()
    outputs = wait_until("the job's outputs", lambda: (found := listing(http, "planter", "OUT")) and
                         "model.txt" in found and found, timeout=90)
    wait_until("every link planted", lambda: "s.txt" in listing(http, "planter", "SHARE"))

    assert set(outputs) == {"model.txt"}, outputs  # token-link, key-link, data-link: not listed
    assert set(listing(http, "planter", "SHARE")) == {"s.txt"}
    assert "token-link" not in listing(http, "planter", "stdouterr")
    assert listing(http, "planter", "OUT", "data-link") == {}  # nor is what a linked folder holds
    model_url = outputs["model.txt"]["downloadUrl"]
    assert httpx.get(model_url, timeout=10).content == b"model\n"

    # Not even a URL signed with the host's own key reaches the data folder's secrets or a link.
    signer = build_signer(Settings(data_dir=data))
    later = datetime.now(UTC) + timedelta(minutes=5)
    [node_dir] = (data / "pools").glob("*/node-*")
    links = sorted((node_dir / "jobs").glob("*/temp/**/token-link"))  # in OUT and in stdouterr
    assert len(links) == 2, links
    for secret in (data / "token", data / "url-signing.key", data / "state.sqlite3", data / "messages.sqlite3",
                   node_dir / "bootstrap.json", *links):
        relative = secret.relative_to(data).as_posix()
        se = int(later.timestamp())
        answer = httpx.get(f"{host.endpoint}/files/{relative}", params={"se": se, "sig": signer.sign(relative, se)},
                           timeout=10)
        assert answer.status_code == 403 and answer.json()["error"]["target"] == "path", (relative, answer.text)
        assert token not in answer.text

    gate.touch()  # the job now swaps model.txt for a link to the token, and ends
    wait_until("the job to succeed", lambda: http.get(f"{WS}/experiments/e/jobs/planter").json()["properties"]
               ["executionState"] == "succeeded", timeout=60)
    swapped = httpx.get(model_url, timeout=10)  # the URL handed out while it was a file
    assert 400 <= swapped.status_code < 500 and token not in swapped.text, swapped.text
    assert "model.txt" not in listing(http, "planter", "OUT")
