"""requirements.txt (what Azure Functions installs) is rendered from pyproject.toml and holds only
what the Functions app needs."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from infra.requirements import render

ROOT = Path(__file__).resolve().parents[2]
# Needed by the local host or the CLI only: never shipped to Functions.
LOCAL_OR_CLIENT_ONLY = {"uvicorn", "typer", "rich", "python-qpid-proton", "croniter", "torch", "pytest"}


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower()


def test_requirements_txt_is_rendered_from_pyproject() -> None:
    assert (ROOT / "requirements.txt").read_text() == render(), "run `python infra/requirements.py`"


def test_functions_package_holds_no_local_or_client_only_dependency() -> None:
    names = {_name(line) for line in render().splitlines() if line and not line.startswith("#")}
    assert names and not names & LOCAL_OR_CLIENT_ONLY


def test_local_and_cli_dependencies_are_extras_the_makefile_installs() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert {_name(d) for d in extras["local"]} >= {"uvicorn", "croniter", "python-qpid-proton"}
    assert {_name(d) for d in extras["cli"]} >= {"typer", "rich"}
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"pip install .*-e '\.\[[^\]]*\blocal\b[^\]]*\]'", makefile)
    assert re.search(r"pip install .*-e '\.\[[^\]]*\bcli\b[^\]]*\]'", makefile)
