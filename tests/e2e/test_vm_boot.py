"""The VM boot path, for real: nodes booted from the user data a scale set's VMs get, each in its own
network namespace on a bridge this test makes, reaching the local host over that network.

Each node runs the rendered user data's commands (netns_vm.py: cloud-init's write_files and runcmd;
the package step only lists what this machine lacks), makes a fresh venv with the machine's
/usr/bin/python3, installs the agent bundle built from this checkout and fetched by its signed URL
from the local host (``pip --no-index``, no pip configuration: nothing from an index), and starts
the agent as the systemd unit says. The nodes have their own sshd on their own address; a 2-node
MPI job's mpirun reaches the other node over ssh with the cluster's key, and a 2-node PyTorch job
meets over gloo on that network.

Everything the test makes (namespaces, links, the bridge, processes) is removed even when it fails,
and a sweep first removes what an earlier run with the same prefix left behind. Needs root.
"""

from __future__ import annotations

import os
import secrets
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.composition import build_blobs
from shared.localhost.process import LocalHostProcess, start_local_host
from shared.node_package import build_bundle, publish
from shared.ports.blob_store import Account
from shared.settings import Settings
from tests.e2e.polling import wait_until
from tests.netns_bridge import PREFIX, ip, made_bridge, sweep

WS = "/subscriptions/e2e/resourceGroups/rg/providers/Microsoft.BatchAI/workspaces/boot"
CLUSTER = f"{WS}/clusters/vms"
Q = {"api-version": "2018-05-01"}
ACCOUNT, SHARE = "bootstorage", "jobs"
AFS = "$AZ_BATCHAI_MOUNT_ROOT/afs"
BOOT_TIMEOUT = 180.0

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces and bridges need root")

WHERE = """
import subprocess
def where():
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "eth0"], capture_output=True, text=True).stdout.split()
    return out[3].split("/")[0] if len(out) > 3 else "no eth0"
"""
MPI_SCRIPT = WHERE + """
from mpi4py import MPI
world = MPI.COMM_WORLD
total = world.allreduce(world.rank + 1)
print(f"mpi rank {world.rank} of {world.size} on {where()}: sum {total}", flush=True)
assert total == world.size * (world.size + 1) // 2
"""
GLOO_SCRIPT = WHERE + """
import os
import torch
import torch.distributed as dist
rank = int(os.environ["AZ_BATCHAI_TASK_INDEX"])
dist.init_process_group("gloo", init_method=os.environ["AZ_BATCHAI_PYTORCH_INIT_METHOD"], rank=rank, world_size=2)
value = torch.tensor([float(rank + 1)])
dist.all_reduce(value)
print(f"gloo rank {rank} on {where()}: sum {value.item():.0f}", flush=True)
assert value.item() == 3.0
dist.destroy_process_group()
"""


@pytest.fixture
def bridge() -> Iterator[tuple[str, str]]:
    with made_bridge() as made:
        yield made


def free_port(address: str) -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def vm_host(bridge: tuple[str, str], tmp_path: Path) -> Iterator[LocalHostProcess]:
    """The local host on the bridge's address with the netns pool, the agent bundle published."""
    name, address = bridge
    data_dir = tmp_path / "state"
    port = free_port(address)
    env = {"BATCHAI_POOL": "netns", "BATCHAI_NETNS_BRIDGE": name, "BATCHAI_NETNS_SUBNET": f"{address[:-2]}.0/24",
           "BATCHAI_HOST_ADDRESS": address, "BATCHAI_PUBLIC_ENDPOINT": f"http://{address}:{port}"}
    settings = Settings.from_env(env, data_dir=data_dir)
    data_dir.mkdir(mode=0o700, parents=True)  # private, as the host keeps it
    blobs = build_blobs(settings)
    publish(blobs, Account(settings.agent_storage_account), build_bundle(tmp_path / "bundle.tar.gz"))
    host = start_local_host(data_dir, port=port, env=env)
    try:
        yield host
        assert host.stop(timeout=30) == 0, "\n".join(host.output[-40:])
    finally:
        host.kill()
        sweep(name)
        for pool_log in sorted((data_dir / "pools").glob("*/*/boot.log")):
            print(f"--- {pool_log.relative_to(data_dir)}\n{pool_log.read_text(errors='replace')[-3000:]}")


def test_nodes_boot_from_the_user_data_and_run_mpi_over_ssh_and_gloo(vm_host: LocalHostProcess,
                                                                    bridge: tuple[str, str]) -> None:
    http = httpx.Client(base_url=vm_host.endpoint, params=Q, timeout=30, headers=vm_host.headers)
    share = vm_host.data_dir / "storage" / "fileshares" / ACCOUNT / SHARE
    (share / "scripts").mkdir(parents=True)
    (share / "scripts" / "mpi_ranks.py").write_text(MPI_SCRIPT)
    (share / "scripts" / "gloo_ranks.py").write_text(GLOO_SCRIPT)
    http.put(WS, json={"location": "local"}).raise_for_status()
    http.put(f"{WS}/experiments/e", json={}).raise_for_status()
    started = time.monotonic()
    http.put(CLUSTER, json={"properties": {
        "vmSize": "STANDARD_D1_V2", "scaleSettings": {"manual": {"targetNodeCount": 2}},
        "userAccountSettings": {"adminUserName": "u", "adminUserSshPublicKey": "ssh-ed25519 AAAAC3Nza admin"},
        "nodeSetup": {"mountVolumes": {"azureFileShares": [{
            "accountName": ACCOUNT, "azureFileUrl": f"https://{ACCOUNT}.file.core.windows.net/{SHARE}",
            "credentials": {"accountKey": "key"}, "relativeMountPath": "afs"}]}},
    }}).raise_for_status()
    wait_until("2 idle nodes booted from the user data",
               lambda: http.get(CLUSTER).json()["properties"]["nodeStateCounts"]["idleNodeCount"] == 2,
               timeout=BOOT_TIMEOUT, every=0.5)
    boot_seconds = time.monotonic() - started
    print(f"\n2 nodes booted from the user data and idle in {boot_seconds:.1f} s", flush=True)
    boot_logs = "\n".join(p.read_text() for p in (vm_host.data_dir / "pools").glob("*/*/boot.log"))
    assert "starting batchai-node.service" in boot_logs, boot_logs
    assert "missing:" in boot_logs  # the package step ran, and only listed what this machine lacks
    # The agent runs from the fresh venv of the machine's Python, in the clean environment of its unit.
    agents = agent_processes(bridge[0])
    assert len(agents) == 2, agents
    for argv, environ in agents:
        assert argv[:3] == ["/opt/batchai/venv/bin/python3", "-m", "node_bootstrap"], argv
        assert "PYTHONPATH" not in environ and environ["BATCHAI_MPI_RSH_AGENT"].startswith("ssh -i "), environ
    nodes = http.post(f"{CLUSTER}/listRemoteLoginInformation").json()["value"]
    addresses = sorted(n["ipAddress"] for n in nodes)
    assert len(addresses) == 2 and all(a.startswith("10.213.") for a in addresses), nodes

    python = sys.executable  # the job's interpreter (mpi4py, torch), not the agent's
    mpi = run_job(http, "mpi", {"customMpiSettings": {
        "commandLine": f"{python} {AFS}/scripts/mpi_ranks.py", "processCount": 2}})
    mpi_logs = job_logs(http, "mpi")
    assert mpi["executionState"] == "succeeded", mpi_logs
    for address in addresses:  # one rank on each node
        assert any(f"mpi rank {rank} of 2 on {address}: sum 3" in mpi_logs for rank in (0, 1)), mpi_logs

    gloo = run_job(http, "gloo", {"pyTorchSettings": {
        "pythonScriptFilePath": f"{AFS}/scripts/gloo_ranks.py", "pythonInterpreterPath": python},
        "environmentVariables": [{"name": "GLOO_SOCKET_IFNAME", "value": "eth0"}]})
    gloo_logs = job_logs(http, "gloo")
    assert gloo["executionState"] == "succeeded", gloo_logs
    assert "gloo rank 0 on" in gloo_logs and "sum 3" in gloo_logs, gloo_logs


def agent_processes(bridge: str) -> list[tuple[list[str], dict[str, str]]]:
    """(argv, environment) of each node's agent, found in the namespaces of the bridge (named after it)."""
    found = []
    for line in ip("netns", "list").stdout.splitlines():
        name = line.split()[0]
        if not name.startswith(bridge):
            continue
        for pid in ip("netns", "pids", name).stdout.split():
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]
                raw = Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0")
            except OSError:
                continue
            if "node_bootstrap" in argv:
                found.append((argv, dict(v.split("=", 1) for v in raw if "=" in v)))
    return found


def run_job(http: httpx.Client, name: str, properties: dict[str, Any], timeout: float = 180) -> dict[str, Any]:
    body = {"cluster": {"id": CLUSTER}, "nodeCount": 2, "stdOutErrPathPrefix": AFS} | properties
    http.put(f"{WS}/experiments/e/jobs/{name}", json={"properties": body}).raise_for_status()

    def ended() -> dict[str, Any] | None:
        props = http.get(f"{WS}/experiments/e/jobs/{name}").json()["properties"]
        return props if props["executionState"] in ("succeeded", "failed") else None

    return wait_until(f"job {name} to end", ended, timeout, every=0.5)


def job_logs(http: httpx.Client, name: str) -> str:
    """Every text file of the job's stdouterr, through listOutputFiles and the download URLs."""
    answer = http.post(f"{WS}/experiments/e/jobs/{name}/listOutputFiles", params={"outputdirectoryid": "stdouterr"})
    answer.raise_for_status()
    texts = []
    for item in answer.json()["value"]:
        if item.get("downloadUrl"):
            texts.append(f"== {item['name']}\n" + httpx.get(item["downloadUrl"], timeout=30).text)
    return "\n".join(texts)


def test_sweep_removes_leftovers_of_earlier_runs() -> None:
    """A namespace and a link with the prefix, as a killed run would leave them, are gone after the sweep."""
    name = f"{PREFIX}{secrets.token_hex(3)}"
    try:
        assert ip("netns", "add", f"{name}n0").returncode == 0
        assert ip("link", "add", f"{name}v0", "type", "veth", "peer", "name", f"{name}v0p").returncode == 0
        sweep(name)
        assert f"{name}n0" not in ip("netns", "list").stdout
        assert name not in ip("-o", "link", "show").stdout
    finally:
        sweep(name)
