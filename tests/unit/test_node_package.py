"""The node agent's own package: built from this checkout, with every module of shared it imports and
nothing of the control plane's; the cluster's key pair; what logs do with a private key."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

from shared import logs
from shared.cluster_keys import new_cluster_key
from shared.node_package import AGENT_REQUIREMENTS, build_agent_wheel, build_bundle

AGENT_ENTRY_POINTS = ["node_bootstrap.__main__", "node_bootstrap.mounts", "node_bootstrap.blob_sync",
                      "node_bootstrap.toolkits", "node_bootstrap.attempt", "node_bootstrap.scheduled_events"]


def test_agent_wheel_holds_every_shared_module_the_agent_imports(tmp_path: Path) -> None:
    wheel = build_agent_wheel(tmp_path / "dist")
    assert wheel.name.startswith("batchai_node-") and wheel.name.endswith("-py3-none-any.whl")
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        archive.extractall(unpacked)
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert not any(n.startswith(("functions/", "shared/api/", "shared/adapters/", "shared/localhost/")) for n in names)
    assert "node_bootstrap/local_rsh.sh" in names
    assert sorted(line.split(": ", 1)[1] for line in metadata.splitlines() if line.startswith("Requires-Dist")) == \
        sorted(AGENT_REQUIREMENTS)
    # Import the agent from the unpacked wheel alone: every shared module it pulls in must come from there.
    check = ("import importlib, sys; sys.path.insert(0, sys.argv[1]); "
             f"[importlib.import_module(m) for m in {AGENT_ENTRY_POINTS!r}]; "
             "bad = [m for m, mod in sys.modules.items() if m.split('.')[0] in ('shared', 'node_bootstrap') "
             "and not (getattr(mod, '__file__', None) or sys.argv[1]).startswith(sys.argv[1])]; "
             "print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-I", "-c", check, str(unpacked)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_bundle_holds_the_agent_and_its_dependencies_only(tmp_path: Path) -> None:
    bundle = build_bundle(tmp_path / "bundle.tar.gz")
    with tarfile.open(bundle) as tar:
        names = tar.getnames()
    assert any(n.startswith("batchai_node-") for n in names)
    assert any(n.startswith("httpx-") for n in names) and any(n.startswith("pydantic_core-") for n in names)
    assert not any(n.startswith(("azure_", "uvicorn-", "torch-")) for n in names)  # not the control plane's


def test_cluster_key_pair_and_logs_never_show_the_private_key() -> None:
    key = new_cluster_key()
    assert key.private.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert key.public.startswith("ssh-ed25519 ") and key.public.endswith(" batchai-cluster")
    assert key.private not in repr(key)
    body = key.private.splitlines()[1]
    assert body not in logs.redact(f"writing {key.private}")
