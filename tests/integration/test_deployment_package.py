"""The package Azure Functions builds, built here the same way.

- requirements.txt installed into an empty folder (as the Functions remote build does), and the app's
  files that .funcignore keeps, are ALL the app needs: with nothing else on the path, the real
  azure-functions library indexes `function_app` to the same functions, triggers and settings the local
  host serves.
- Every lower bound of the Azure SDKs in pyproject.toml works: those exact versions installed, every
  Azure adapter imports.

Packages come from the registry through pip's cache; the first run downloads them once.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PIP_TIMEOUT = 600
AZURE_ADAPTERS = ("shared.adapters.azure.cosmos_store", "shared.adapters.azure.servicebus_messaging",
                  "shared.adapters.azure.azure_blobs", "shared.adapters.azure.vmss_pool")

# What the Functions host sees of each function: name, trigger, its settings and its bindings.
_INDEX_SCRIPT = """
import json, sys
import function_app
from shared.localhost.functions_index import index
out = []
for f in index(function_app.app):
    out.append({"name": f.name, "trigger": f.trigger_type, "route": f.route, "methods": list(f.methods),
                "queue": f.queue_name, "topic": f.topic_name, "subscription": f.subscription_name,
                "connection": f.connection,
                "schedule": f.schedule, "runOnStartup": f.run_on_startup, "bindings": list(f.binding_names)})
import node_bootstrap.agent  # what each VM runs, installed with the same dependencies
local_only = sorted(m for m in ("uvicorn", "typer", "rich", "proton", "croniter") if m in sys.modules)
print(json.dumps({"functions": out, "local_only_imported": local_only}, sort_keys=True))
"""


def _pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *args],
                   check=True, timeout=PIP_TIMEOUT)


def _copy_app(dest: Path) -> None:
    """The files `func azure functionapp publish` sends: everything .funcignore does not leave out."""
    patterns = [line.strip() for line in (ROOT / ".funcignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]

    def ignored(name: str) -> bool:
        return any(fnmatch.fnmatch(name, p) for p in patterns)

    def ignore(folder: str, names: list[str]) -> list[str]:
        return [n for n in names if ignored(n)]

    for entry in ROOT.iterdir():
        if ignored(entry.name):
            continue
        if entry.is_dir():
            shutil.copytree(entry, dest / entry.name, ignore=ignore)
        else:
            shutil.copy2(entry, dest / entry.name)


def _index(python_path: list[Path], isolated: bool) -> dict:
    """Index function_app in a fresh interpreter; isolated: only python_path and the standard library."""
    if isolated:
        # -I: no user site, no PYTHON* variables; -S: no site-packages (not even this venv's).
        code = f"import sys; sys.path[:0] = {[str(p) for p in python_path]!r}\n" + _INDEX_SCRIPT
        argv = [sys.executable, "-I", "-S", "-c", code]
        env = {"PATH": os.environ.get("PATH", "")}
    else:
        argv = [sys.executable, "-c", _INDEX_SCRIPT]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in python_path)}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=python_path[0], timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_requirements_txt_alone_indexes_the_app_as_the_local_host_does(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    app = tmp_path / "app"
    app.mkdir()
    _pip("--target", str(site), "-r", str(ROOT / "requirements.txt"))
    _copy_app(app)
    assert not (app / "tests").exists() and (app / "function_app.py").exists()

    deployed = _index([app, site], isolated=True)
    local = _index([ROOT], isolated=False)

    assert deployed["functions"], "no function indexed"
    assert deployed["functions"] == local["functions"]
    assert deployed["local_only_imported"] == []
    assert {f["connection"] for f in deployed["functions"] if f["trigger"] == "serviceBusTrigger"} == {"BATCHAI_SERVICEBUS"}
    triggers = {f["trigger"] for f in deployed["functions"]}
    assert {"httpTrigger", "serviceBusTrigger", "timerTrigger"} <= triggers
    # Timer cadences are app settings (Azure's set by infra/main.bicep, the local host's by default).
    assert {f["name"]: f["schedule"] for f in deployed["functions"] if f["trigger"] == "timerTrigger"} == {
        "ReconcileClusters": "%BATCHAI_RECONCILE_SCHEDULE%", "JobEventsOutbox": "%BATCHAI_OUTBOX_SCHEDULE%"}


def _lower_bounds() -> list[str]:
    """`name==X` for each Azure SDK that pyproject.toml gives as `name>=X...`."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = []
    for requirement in project["dependencies"]:
        match = re.match(r"^(azure-[a-z-]+)(?:\[[^\]]*\])?>=([0-9.]+)", requirement)
        if match:
            pins.append(f"{match.group(1)}=={match.group(2)}")
    return pins


def test_lower_bounds_of_the_azure_sdks_import_every_adapter(tmp_path: Path) -> None:
    pins = _lower_bounds()
    assert any(p.startswith("azure-mgmt-compute==") for p in pins)
    site = tmp_path / "lower-bounds"
    # The SDKs themselves at their lower bounds; what they depend on comes from this environment.
    _pip("--no-deps", "--target", str(site), *pins)
    code = ("import importlib, importlib.metadata as m, json, sys\n"
            f"for name in {list(AZURE_ADAPTERS)!r}: importlib.import_module(name)\n"
            f"print(json.dumps({{p.split('==')[0]: m.version(p.split('==')[0]) for p in {pins!r}}}))\n"
            "import azure.mgmt.compute, azure.mgmt.network\n"
            f"assert azure.mgmt.compute.__file__.startswith({str(site)!r}), azure.mgmt.compute.__file__\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    versions = json.loads(done.stdout.splitlines()[-1])
    assert {n: Version(v) for n, v in versions.items()} == {
        p.split("==")[0]: Version(p.split("==")[1]) for p in pins}
