"""The parts of a container job's launch that run commands: node_bootstrap/container_rsh.sh (mpirun's
way into the other nodes' containers) with stand-in `ssh` and `docker` commands that record their
argv and run what they were given, the registry login's private Docker configuration, and the
GPU check (node_bootstrap/job_container.py). The argv they build is in test_toolkit_plans.py."""

from __future__ import annotations

import json
import os
import pwd
import stat
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from node_bootstrap import job_container
from node_bootstrap.attempt import CONTAINER_RSH_AGENT, RSH_AGENT

PASSWORD = "r3gistry-" + "pa55word"
# An Open MPI daemon's command line has words with quotes and spaces: they must arrive as they were.
COMMAND = ["printf", "'%s\\n'", "one", '"two words"', "'it'\"'\"'s'", "'$NOT_EXPANDED'"]
RECORDER = """#!/usr/bin/env python3
import json, os, subprocess, sys
with open(os.environ["RECORD"], "a") as out:
    out.write(json.dumps({"tool": os.path.basename(sys.argv[0]), "argv": sys.argv[1:]}) + "\\n")
"""


def stand_in(bin_dir: Path, name: str, body: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    tool = bin_dir / name
    tool.write_text(RECORDER + body)
    tool.chmod(0o755)


@pytest.fixture
def tools(tmp_path: Path) -> Path:
    """`ssh HOST REMOTE` runs REMOTE with sh (as sshd would); `docker exec NAME CMD...` runs CMD."""
    bin_dir = tmp_path / "bin"
    stand_in(bin_dir, "ssh", "sys.exit(subprocess.run(['/bin/sh', '-c', sys.argv[-1]]).returncode)\n")
    stand_in(bin_dir, "docker", "sys.exit(subprocess.run(sys.argv[3:]).returncode)\n")
    return bin_dir


def rsh(tools: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], list[dict]]:
    record = tools.parent / "record.jsonl"
    env = {"PATH": f"{tools}:/usr/bin:/bin", "RECORD": str(record)}
    done = subprocess.run(["/bin/sh", str(CONTAINER_RSH_AGENT), *args], env=env, capture_output=True, text=True)
    calls = [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []
    return done, calls


CONTAINERS = ["--containers", "10.0.0.4=batchai-aaa,10.0.0.5=batchai-bbb"]


def test_on_vms_the_daemon_starts_in_the_other_nodes_container_over_ssh_with_the_clusters_key(tools: Path) -> None:
    done, calls = rsh(tools, *CONTAINERS, "--ssh-user", "batchai", "--ssh-key", "/home/batchai/.ssh/id_ed25519",
                      "-x", "10.0.0.5", *COMMAND)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["one", "two words", "it's", "$NOT_EXPANDED"]
    ssh, docker = calls
    assert ssh["argv"][:-1] == ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                                "-o", "UserKnownHostsFile=/dev/null", "-i", "/home/batchai/.ssh/id_ed25519",
                                "-l", "batchai", "10.0.0.5"]
    assert docker["argv"] == ["exec", "batchai-bbb", "/bin/sh", "-c", " ".join(COMMAND)]


def test_in_the_local_pool_the_daemon_starts_in_the_other_nodes_container_through_the_local_agent(tools: Path) -> None:
    done, calls = rsh(tools, *CONTAINERS, "--local", str(RSH_AGENT), "10.0.0.4", "echo", "in", "$0")
    assert done.returncode == 0, done.stderr
    assert calls == [{"tool": "docker", "argv": ["exec", "batchai-aaa", str(RSH_AGENT), "10.0.0.4", "echo", "in",
                                                 "$0"]}]
    assert done.stdout.strip() == "in /bin/sh"


def test_a_host_outside_the_job_or_an_image_without_ssh_is_named(tools: Path, tmp_path: Path) -> None:
    done, calls = rsh(tools, *CONTAINERS, "--ssh-user", "u", "10.0.0.9", "orted")
    assert done.returncode == 255 and "no node of this job" in done.stderr and calls == []
    empty = tmp_path / "empty"
    empty.mkdir()
    done = subprocess.run(["/bin/sh", str(CONTAINER_RSH_AGENT), *CONTAINERS, "--ssh-user", "u", "10.0.0.5", "orted"],
                          env={"PATH": str(empty)}, capture_output=True, text=True)
    assert done.returncode == 255 and "image has no ssh client" in done.stderr and "openssh-client" in done.stderr


def test_the_registry_password_goes_to_docker_login_on_stdin_in_a_private_config_removed_after(tmp_path: Path) -> None:
    stand_in(tmp_path / "bin", "docker", "open(os.environ['RECORD'] + '.stdin', 'w').write(sys.stdin.read())\n"
                                         "print('config', os.environ['DOCKER_CONFIG'])\n")
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    argv = [str(tmp_path / "bin" / "docker"), "login", "--username", "me", "--password-stdin", "registry.example"]
    with job_container.private_docker_config(tmp_path) as config:
        assert config.parent == tmp_path and stat.S_IMODE(config.stat().st_mode) == 0o700
        env = {"PATH": os.environ["PATH"], "RECORD": str(tmp_path / "record"), "DOCKER_CONFIG": str(config)}
        assert job_container.registry_login(argv, PASSWORD, env, out, err) == 0
    assert not config.exists()
    assert (tmp_path / "record.stdin").read_text() == PASSWORD
    assert PASSWORD not in (tmp_path / "record").read_text() + out.read_text() + err.read_text()
    assert out.read_text() == f"config {config}\n"
    with pytest.raises(RuntimeError), job_container.private_docker_config(tmp_path) as config:
        raise RuntimeError("the pull failed")
    assert not config.exists()


@pytest.mark.parametrize(("listing", "gpus"), [
    ("print('GPU 0: Tesla V100-PCIE-16GB (UUID: GPU-0e1f)')", True),
    ("print(\"NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\"); sys.exit(9)", False),
    (None, False)])
def test_a_node_has_gpus_when_nvidia_smi_lists_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   listing: str | None, gpus: bool) -> None:
    if listing:
        stand_in(tmp_path / "bin", "nvidia-smi", listing + "\n")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    monkeypatch.setenv("RECORD", str(tmp_path / "record"))
    job_container.node_has_gpus.cache_clear()
    try:
        assert job_container.node_has_gpus() is gpus
    finally:
        job_container.node_has_gpus.cache_clear()


def test_the_ssh_identity_is_the_job_users_name_and_first_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    me = pwd.getpwuid(os.geteuid())
    monkeypatch.setattr(job_container.pwd, "getpwuid", lambda uid: SimpleNamespace(pw_name=me.pw_name,
                                                                                   pw_dir=str(tmp_path)))
    assert job_container.ssh_identity() == (me.pw_name, None)
    (tmp_path / ".ssh").mkdir()
    for name in ("id_rsa", "id_ed25519"):
        (tmp_path / ".ssh" / name).write_text("key")
    assert job_container.ssh_identity() == (me.pw_name, str(tmp_path / ".ssh" / "id_ed25519"))
