"""What a node needs to start a job's container besides the command lines (toolkits.py builds those):
a private Docker client configuration for the registry login, whether the node has GPUs, and the
ssh identity mpirun in a container uses to reach the other nodes' containers."""

from __future__ import annotations

import functools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SSH_KEYS = ("id_ed25519", "id_ecdsa", "id_rsa")  # the names ssh tries, in its order


@contextmanager
def private_docker_config(node_dir: Path) -> Iterator[Path]:
    """A Docker client configuration folder (DOCKER_CONFIG) for one attempt's login and pull: mode
    0700 in the node's folder, which no container mounts, and removed as soon as the container has
    started, so the registry password `docker login` stores in its config.json (0600) lives only
    for the pull and never in the node's shared ~/.docker."""
    folder = Path(tempfile.mkdtemp(prefix="docker-config-", dir=node_dir))  # mkdtemp makes it 0700
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def registry_login(argv: list[str], password: str, env: dict[str, str], stdout: Path, stderr: Path) -> int:
    """Run `docker login ... --password-stdin` with the password on its stdin (never in argv, which
    every user of the machine can read, nor in a log); its output goes to the given files. Its exit code."""
    with stdout.open("ab") as out, stderr.open("ab") as err:
        try:
            return subprocess.run(argv, input=password.encode(), env=env, stdout=out, stderr=err, timeout=120,
                                  check=False).returncode
        except subprocess.TimeoutExpired:
            err.write(b"docker login did not answer within 120 s\n")
            return 124


@functools.cache
def node_has_gpus() -> bool:
    """A node gives its containers `--gpus all` when `nvidia-smi -L` lists a GPU: the driver is what
    the container toolkit needs, whatever the VM size says (an N-series VM on an image without the
    driver would fail the container's start; a node without nvidia-smi has no usable GPU)."""
    if shutil.which("nvidia-smi") is None:
        return False
    try:
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return listed.returncode == 0 and "GPU" in listed.stdout


def ssh_identity() -> tuple[str, str | None]:
    """The node's job user (the agent's user: it runs the job's docker commands) and its private key
    (the cluster's key pair, which every node of the cluster trusts for that user), if it has one."""
    user = pwd.getpwuid(os.geteuid())
    folder = Path(user.pw_dir) / ".ssh"
    key = next((str(folder / name) for name in SSH_KEYS if (folder / name).is_file()), None)
    return user.pw_name, key
