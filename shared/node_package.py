"""The node agent as its own small package, and the bundle a VM installs it from.

``batchai-node`` holds ``node_bootstrap`` and the few modules of ``shared`` it imports (nothing of the
control plane's: no Azure SDKs, no web server), and needs only ``AGENT_REQUIREMENTS``. The bundle is
one ``.tar.gz`` of that wheel and of the wheels it depends on, so that a VM installs it with
``pip install --no-index`` from what it fetched by one signed URL: never from PyPI.

Built at deploy time (``python -m shared.node_package --out DIR``) from this checkout. The dependency
wheels come either from this interpreter's installed distributions, repacked (offline; the node's
Python must then be the same minor version, or the packages pure Python), or from ``pip download``
for the node's Python version and platform (Ubuntu 24.04: 3.12, manylinux x86_64).
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import io
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import zipfile
from datetime import datetime
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from shared.node_boot import AGENT_DISTRIBUTION
from shared.ports.blob_store import Account, BlobStore

ROOT = Path(__file__).resolve().parents[1]
# What node_bootstrap imports from shared (tests/unit/test_node_package.py checks the list is complete).
SHARED_MODULES = ("__init__.py", "errors.py", "gc_tuning.py", "ids.py", "job_environment.py", "local_files.py", "logs.py",
                  "ports/__init__.py", "ports/blob_store.py", "settings.py", "signed_urls.py", "telemetry.py",
                  "volumes.py",
                  # the API models: the agent API's messages (models/agent.py) and the job's settings they carry
                  "models/__init__.py", "models/agent.py", "models/base.py", "models/cluster.py", "models/common.py",
                  "models/experiment.py", "models/fileserver.py", "models/job.py", "models/limits.py",
                  "models/operation.py", "models/usage.py", "models/workspace.py")
AGENT_REQUIREMENTS = ("httpx>=0.27", "pydantic>=2.10,<3", "opentelemetry-sdk>=1.30")
REQUIRES_PYTHON = ">=3.11"
BUNDLE_CONTAINER = "batchai-agent"
BUNDLE_BLOB = "batchai-node.tar.gz"


def version() -> str:
    version: str = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    return version


def agent_files(root: Path = ROOT) -> dict[str, Path]:
    """Archive name -> source file: every file of node_bootstrap, and SHARED_MODULES."""
    files = {f"node_bootstrap/{p.relative_to(root / 'node_bootstrap')}": p
             for p in sorted((root / "node_bootstrap").rglob("*"))
             if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}
    files.update({f"shared/{name}": root / "shared" / name for name in SHARED_MODULES})
    return files


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _write_wheel(path: Path, files: dict[str, bytes], dist_info: str, executable: frozenset[str] = frozenset()) -> Path:
    """A wheel of these files (dist-info included), with its RECORD; reproducible (fixed timestamps)."""
    rows = [(name, _record_hash(data), str(len(data))) for name, data in files.items()]
    record = io.StringIO()
    csv.writer(record, lineterminator="\n").writerows([*rows, (f"{dist_info}/RECORD", "", "")])
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as wheel:
        for name, data in [*files.items(), (f"{dist_info}/RECORD", record.getvalue().encode())]:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (0o755 if name in executable else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            wheel.writestr(info, data)
    return path


def build_agent_wheel(out_dir: Path, root: Path = ROOT) -> Path:
    """``batchai_node-<version>-py3-none-any.whl`` from this checkout."""
    ver = version()
    dist_info = f"batchai_node-{ver}.dist-info"
    files = {name: path.read_bytes() for name, path in agent_files(root).items()}
    meta = [f"Metadata-Version: 2.1", f"Name: {AGENT_DISTRIBUTION}", f"Version: {ver}",
            "Summary: The Batch AI node agent (node_bootstrap), as installed on a cluster's VMs",
            f"Requires-Python: {REQUIRES_PYTHON}", *(f"Requires-Dist: {r}" for r in AGENT_REQUIREMENTS)]
    files[f"{dist_info}/METADATA"] = ("\n".join(meta) + "\n").encode()
    files[f"{dist_info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: batchai-rebuilt\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    out_dir.mkdir(parents=True, exist_ok=True)
    executable = frozenset(name for name, path in agent_files(root).items() if path.suffix == ".sh")
    return _write_wheel(out_dir / f"batchai_node-{ver}-py3-none-any.whl", files, dist_info, executable)


def _closure(requirements: tuple[str, ...]) -> list[metadata.Distribution]:
    """The installed distributions these requirements need, transitively (markers of this interpreter)."""
    seen: dict[str, metadata.Distribution] = {}
    todo = [(Requirement(r), frozenset[str]()) for r in requirements]
    while todo:
        req, extras = todo.pop()
        if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in (extras or {""})):
            continue
        name = canonicalize_name(req.name)
        if name in seen:
            continue
        dist = metadata.distribution(req.name)
        seen[name] = dist
        todo.extend((Requirement(r), frozenset(req.extras)) for r in dist.requires or [])
    return list(seen.values())


def repack_installed(dist: metadata.Distribution, out_dir: Path) -> Path:
    """A wheel of an installed distribution, from the files its RECORD lists (what pip installed)."""
    wheel_meta = dist.read_text("WHEEL") or ""
    tags = [line.split(":", 1)[1].strip() for line in wheel_meta.splitlines() if line.startswith("Tag:")]
    files: dict[str, bytes] = {}
    dist_info = ""
    for entry in dist.files or []:
        name = str(entry)
        if name.startswith("..") or "__pycache__" in name or name.endswith(("/RECORD", "/INSTALLER", "/REQUESTED",
                                                                             "/direct_url.json")):
            continue
        files[name] = Path(str(dist.locate_file(entry))).read_bytes()  # typeshed: a SimplePath, a real path here
        if name.split("/", 1)[0].endswith(".dist-info"):
            dist_info = name.split("/", 1)[0]
    stem = dist_info.removesuffix(".dist-info")
    tag = tags[0] if tags else "py3-none-any"
    return _write_wheel(out_dir / f"{stem}-{tag}.whl", files, dist_info)


def download_wheels(out_dir: Path, python_version: str, platform: str) -> None:
    """The dependencies' wheels for the node's Python and platform, from the package index."""
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--dest", str(out_dir),
                    "--python-version", python_version, "--platform", platform, *AGENT_REQUIREMENTS], check=True)


def build_bundle(out: Path, *, python_version: str | None = None, platform: str = "manylinux2014_x86_64") -> Path:
    """The bundle (.tar.gz of wheels): the agent's, and its dependencies' (repacked from this interpreter,
    or with ``python_version`` downloaded for that Python)."""
    with tempfile.TemporaryDirectory() as tmp:
        wheels = Path(tmp)
        build_agent_wheel(wheels)
        if python_version is None:
            for dist in _closure(AGENT_REQUIREMENTS):
                repack_installed(dist, wheels)
        else:
            download_wheels(wheels, python_version, platform)
        out.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(out, "w:gz") as tar:
            for wheel in sorted(wheels.glob("*.whl")):
                tar.add(wheel, arcname=wheel.name)
    return out


def publish(blobs: BlobStore, account: Account, bundle: Path) -> None:
    """Put the bundle where the control plane signs URLs for it (the VMs' user data carries one)."""
    blobs.create_container(account, BUNDLE_CONTAINER)
    blobs.upload(account, BUNDLE_CONTAINER, BUNDLE_BLOB, bundle)


def bundle_url(blobs: BlobStore, account: Account, expires: datetime) -> str:
    return blobs.download_url(account, BUNDLE_CONTAINER, BUNDLE_BLOB, expires)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.node_package", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="the bundle file to write (.tar.gz)")
    parser.add_argument("--python-version", help="download dependency wheels for this Python (e.g. 3.12)")
    parser.add_argument("--platform", default="manylinux2014_x86_64")
    args = parser.parse_args(argv)
    print(build_bundle(args.out, python_version=args.python_version, platform=args.platform))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
