"""What the local host's download URLs may name, without a host: only files of the served areas of
the data folder, reached through no link, plain files only; and job folders that climb with '..',
literally or through the job's variables, are refused by the model and at create, naming the field."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from shared import errors
from shared.api.files import serve_file
from shared.composition import SERVED_AREAS
from shared.job_files import check_folder_paths
from shared.models import JobCreateParameters
from shared.signed_urls import PathRefused, UrlSigner

LATER = timedelta(minutes=5)
JOB_FOLDER = "pools/c1/node-0001/jobs/seg-1/temp/out"


@pytest.fixture
def signer(tmp_path: Path) -> UrlSigner:
    data = tmp_path / "data"
    for name in ("token", "url-signing.key", "state.sqlite3"):
        (data / name).parent.mkdir(parents=True, exist_ok=True)
        (data / name).write_text("secret")
    (data / "pools/c1/node-0001").mkdir(parents=True)
    (data / "pools/c1/node-0001/bootstrap.json").write_text("secret")
    (data / JOB_FOLDER).mkdir(parents=True)
    (data / JOB_FOLDER / "model.txt").write_text("model")
    return UrlSigner(b"k" * 32, lambda: "http://host:1", data, SERVED_AREAS)


def fetch(signer: UrlSigner, relative: str) -> tuple[int, bytes | str | None]:
    """The files route's answer to a correctly signed URL of `relative`."""
    se = int((datetime.now(UTC) + LATER).timestamp())
    try:
        return 200, serve_file(signer, relative, str(se), signer.sign(relative, se), datetime.now(UTC)).body
    except errors.ApiError as exc:
        return exc.status, exc.target


@pytest.mark.parametrize("relative", ["token", "url-signing.key", "state.sqlite3", "pools/c1/node-0001/bootstrap.json",
                                      "pools/c1/bootstrap.token", "telemetry/x.jsonl", "pools/c1/node-0001/jobs"])
def test_nothing_outside_the_served_areas_is_signed_or_served(signer: UrlSigner, relative: str) -> None:
    with pytest.raises(PathRefused):
        signer.url_for(signer.root / relative, datetime.now(UTC) + LATER)
    assert fetch(signer, relative) == (403, "path")


def test_a_file_of_a_job_folder_is_served(signer: UrlSigner) -> None:
    assert signer.url_for(signer.root / JOB_FOLDER / "model.txt", datetime.now(UTC) + LATER)
    assert fetch(signer, f"{JOB_FOLDER}/model.txt") == (200, b"model")


def test_links_inside_a_served_area_are_refused(signer: UrlSigner) -> None:
    folder = signer.root / JOB_FOLDER
    (folder / "token-link").symlink_to(signer.root / "token")  # to a secret of the data folder
    (folder / "model-link").symlink_to(folder / "model.txt")  # even to a served file
    (folder / "up").symlink_to(signer.root)  # a folder on the way
    for relative in ("token-link", "model-link", "up/token", "up/" + JOB_FOLDER + "/model.txt"):
        assert fetch(signer, f"{JOB_FOLDER}/{relative}") == (403, "path"), relative
    with pytest.raises(PathRefused):
        signer.real_path(f"{JOB_FOLDER}/up/token")
    with pytest.raises(PathRefused):
        signer.relative(folder / ".." / ".." / ".." / ".." / ".." / ".." / "token")


def test_only_plain_files_are_served(signer: UrlSigner) -> None:
    os.mkfifo(signer.root / JOB_FOLDER / "pipe")  # would block a reader forever
    assert fetch(signer, f"{JOB_FOLDER}/pipe") == (404, "path")
    assert fetch(signer, JOB_FOLDER) == (404, "path")
    assert fetch(signer, f"{JOB_FOLDER}/absent") == (404, "path")


BODY = {"cluster": {"id": "/subscriptions/s/resourceGroups/r/providers/Microsoft.BatchAI/workspaces/w/clusters/c"},
        "nodeCount": 1, "stdOutErrPathPrefix": "$AZ_BATCHAI_JOB_TEMP", "customToolkitSettings": {"commandLine": "true"}}


@pytest.mark.parametrize(("properties", "loc"), [
    ({"stdOutErrPathPrefix": "/a/../b"}, ("properties", "stdOutErrPathPrefix")),
    ({"outputDirectories": [{"id": "O", "pathPrefix": ".."}]}, ("properties", "outputDirectories", 0, "pathPrefix")),
    ({"outputDirectories": [{"id": "O", "pathPrefix": "/x", "pathSuffix": "a/.."}]},
     ("properties", "outputDirectories", 0, "pathSuffix")),
])
def test_the_model_refuses_a_climbing_folder_naming_the_field(properties: dict[str, object],
                                                              loc: tuple[object, ...]) -> None:
    with pytest.raises(ValidationError) as refused:
        JobCreateParameters.model_validate({"properties": {**BODY, **properties}}, by_alias=True, by_name=False)
    assert [e["loc"] for e in refused.value.errors()] == [loc]


def test_a_dotted_name_that_does_not_climb_is_accepted() -> None:
    body = {**BODY, "outputDirectories": [{"id": "O", "pathPrefix": "/x/..y/z..", "pathSuffix": "..."}]}
    params = JobCreateParameters.model_validate({"properties": body}, by_alias=True, by_name=False).properties
    check_folder_paths(params)


def test_variables_that_make_a_folder_climb_are_refused_naming_the_field() -> None:
    spec = {**BODY, "environmentVariables": [{"name": "UP", "value": "a/../.."}],
            "outputDirectories": [{"id": "O", "pathPrefix": "/x"}, {"id": "P", "pathPrefix": "/x", "pathSuffix": "$UP"}]}
    params = JobCreateParameters.model_validate({"properties": spec}, by_alias=True, by_name=False).properties
    with pytest.raises(errors.ApiError) as refused:
        check_folder_paths(params)
    assert (refused.value.status, refused.value.target) == (400, "properties.outputDirectories[1].pathSuffix")
