"""The VmPool contract: one body per case, run against every adapter (local agents and VM scale sets).

The local adapter runs the real agent command line (``python -m node_bootstrap``); the scale set
adapter talks to an in-process stand-in of ARM's Compute API (tests/fakes/arm_compute.py) that
checks request shapes. Then come tests of what only one adapter has: the requests a scale set gets,
and the local pool's processes, addresses and re-adoption.

Every local test stops every agent it started, by pid, even when it fails (see ``local_root``).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import stat
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.ports.vm_pool import AgentBootstrap, PoolNode, PoolNotFound, PoolSpec, VmPool, node_token

try:  # `python -m pytest` from the repository root
    from tests.fakes.arm_compute import COMPUTE_API_VERSION, FakeArmCompute
    from tests.netns_bridge import made_bridge
except ModuleNotFoundError:  # plain `pytest`: tests/ itself is on sys.path
    from fakes.arm_compute import COMPUTE_API_VERSION, FakeArmCompute  # type: ignore[no-redef]
    from netns_bridge import made_bridge  # type: ignore[no-redef]

RESOURCE_GROUP = "batchai-rg"
SUBNET_ID = ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/net/providers"
             "/Microsoft.Network/virtualNetworks/vnet/subnets/default")
CLUSTER_ID = ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/demo/providers"
              "/Microsoft.BatchAI/workspaces/ws/clusters/c1")
TOKEN = "bootstrap-secret-token"
SSH_KEY = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDtest test@example"
# Where agents look for the control plane: nothing listens on port 1, so the real agent keeps
# retrying and stays up, whatever else runs on this machine (a local host on 7071, say).
ENDPOINT = "http://127.0.0.1:1"
WAIT = 20.0  # seconds: the bound of every wait here


def make_spec(pool_id: str, **overrides: Any) -> PoolSpec:
    """A spec valid for every adapter."""
    values: dict[str, Any] = dict(
        pool_id=pool_id, vm_size="STANDARD_D1_V2", vm_priority="dedicated",
        image_reference={"publisher": "Canonical", "offer": "UbuntuServer", "sku": "16.04-LTS", "version": "latest"},
        admin_user_name="azureuser", admin_ssh_public_key=SSH_KEY, subnet_id=SUBNET_ID, location="westeurope",
        bootstrap=AgentBootstrap(ENDPOINT, CLUSTER_ID, TOKEN), tags={"batchai-cluster": "c1"},
    )
    values.update(overrides)
    return PoolSpec(**values)


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    """Poll until predicate() is truthy (returning it); fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def live(nodes: list[PoolNode]) -> list[PoolNode]:
    """Nodes not on their way out: a removal is accepted at once, and may take a while to finish."""
    return [n for n in nodes if n.state != "deleting"]


def running_nodes(pool: VmPool, pool_id: str, count: int) -> list[PoolNode]:
    """Wait until the pool lists exactly ``count`` live nodes, all running."""
    def check() -> list[PoolNode] | None:
        nodes = live(pool.list_nodes(pool_id))
        return nodes if len(nodes) == count and all(n.state == "running" for n in nodes) else None
    return wait_for(check, f"{count} running nodes in {pool_id}") if count else []


# ------------------------------------------------------------------ local processes

def _cmdline(pid: int) -> list[str]:
    try:
        return [p.decode() for p in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if p]
    except (FileNotFoundError, ProcessLookupError):
        return []


def _is_agent_of(pid: int, node_dir: Path) -> bool:
    """pid is a live (non-zombie) process whose command line names node_dir."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z" and str(node_dir) in _cmdline(pid)


def _processes_under(root: Path) -> list[int]:
    """Pids of live processes with an argument inside root (root is unique to one test)."""
    prefix = str(root) + os.sep
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and any(arg.startswith(prefix) for arg in _cmdline(int(entry.name))):
            found.append(int(entry.name))
    return [pid for pid in found if pid != os.getpid()]


def _kill_pids(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                os.waitpid(pid, os.WNOHANG)  # ours: reap it; not ours: ChildProcessError
            except ChildProcessError:
                pass
            if not Path(f"/proc/{pid}").exists() or "Z" == Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]:
                break
            time.sleep(0.02)


def _agent_pid(root: Path, pool_id: str, node_id: str) -> int:
    return int((root / pool_id / node_id / "agent.pid").read_text())


@pytest.fixture
def local_root(tmp_path: Path) -> Iterator[Path]:
    """A root for local pools; afterwards every agent started under it is killed by pid."""
    root = tmp_path / "pools"
    try:
        yield root
    finally:
        from shared.adapters.local.local_pool import LocalVmPool

        try:
            LocalVmPool(root, kill_grace=0.5).stop_all()
        finally:
            _kill_pids(_processes_under(root))  # whatever stop_all missed (a bug, a lost pid file)


def _local_pool(root: Path) -> VmPool:
    from shared.adapters.local.local_pool import LocalVmPool

    return LocalVmPool(root, kill_grace=2.0)


class _StaticToken:
    """What a credential's get_token returns, without importing azure-core in tests."""

    def __init__(self) -> None:
        self.token = "fake-arm-token"
        self.expires_on = int(time.time()) + 3600


class StaticCredential:
    """A TokenCredential for the fake ARM endpoint, which only checks that a bearer token is sent."""

    def get_token(self, *scopes: str, **kwargs: Any) -> _StaticToken:
        return _StaticToken()


@pytest.fixture
def fake_arm() -> Iterator[FakeArmCompute]:
    with FakeArmCompute() as fake:
        yield fake


def _vmss_pool(fake: FakeArmCompute, **kwargs: Any) -> VmPool:
    from shared.adapters.azure.vmss_pool import VmssPool

    return VmssPool(fake.subscription_id, RESOURCE_GROUP, StaticCredential(), base_url=fake.base_url,
                    polling_interval=0.01, **kwargs)


@pytest.fixture
def netns_pool(tmp_path: Path) -> Iterator[VmPool]:
    """VMs as network namespaces on a bridge of the test's own, removed with everything on it."""
    from shared.adapters.local.netns_pool import NetnsVmPool

    with made_bridge() as (bridge, address):
        p = NetnsVmPool(tmp_path / "pools", bridge, f"{address[:-2]}.0/24")
        try:
            yield p
        finally:
            p.close()


NETNS = pytest.param("netns", marks=pytest.mark.skipif(os.geteuid() != 0,
                                                       reason="the netns pool needs root (namespaces, a bridge)"))


@pytest.fixture(params=["local", "vmss", NETNS])
def pool(request: pytest.FixtureRequest) -> Iterator[VmPool]:
    """An adapter of each kind, with no pools yet."""
    if request.param == "netns":
        yield request.getfixturevalue("netns_pool")
        return
    if request.param == "local":
        p = _local_pool(request.getfixturevalue("local_root"))
    else:
        p = _vmss_pool(request.getfixturevalue("fake_arm"))
    try:
        yield p
    finally:
        p.close()


def _is_local(pool: VmPool) -> bool:
    from shared.adapters.local.local_pool import LocalVmPool

    return isinstance(pool, LocalVmPool)


def _check_local_nodes(pool: VmPool, pool_id: str, nodes: list[PoolNode]) -> None:
    """Local nodes: distinct loopback addresses, and live agents whose cmdline names their folder."""
    if not _is_local(pool):
        return
    root: Path = pool._root  # type: ignore[attr-defined]
    addresses = [n.address for n in nodes]
    assert len(set(addresses)) == len(addresses)
    assert all(a.startswith("127.0.") for a in addresses)
    for node in nodes:
        node_dir = root / pool_id / node.node_id
        assert _is_agent_of(_agent_pid(root, pool_id, node.node_id), node_dir)


# ================================================================== the contract

def test_create_pool_is_idempotent(pool: VmPool) -> None:
    pool.create_pool(make_spec("pool-a"))
    assert pool.list_nodes("pool-a") == []
    pool.resize("pool-a", 1)
    running_nodes(pool, "pool-a", 1)
    pool.create_pool(make_spec("pool-a", vm_size="STANDARD_NC6"))  # exists: left as it is
    assert len(running_nodes(pool, "pool-a", 1)) == 1


def test_resize_up_lists_distinct_nodes(pool: VmPool) -> None:
    pool.create_pool(make_spec("pool-a"))
    pool.resize("pool-a", 3)
    nodes = running_nodes(pool, "pool-a", 3)
    assert len({n.node_id for n in nodes}) == 3
    assert [n.node_id for n in nodes] == sorted((n.node_id for n in nodes), key=lambda i: (len(i), i))
    assert all(n.address for n in nodes)
    _check_local_nodes(pool, "pool-a", nodes)
    pool.resize("pool-a", 3)  # already there: nothing changes
    assert running_nodes(pool, "pool-a", 3) == nodes


def test_resize_down(pool: VmPool) -> None:
    pool.create_pool(make_spec("pool-a"))
    pool.resize("pool-a", 3)
    before = running_nodes(pool, "pool-a", 3)
    pool.resize("pool-a", 1)
    after = running_nodes(pool, "pool-a", 1)
    assert after[0].node_id in {n.node_id for n in before}
    pool.resize("pool-a", 0)
    assert live(pool.list_nodes("pool-a")) == []


def test_remove_chosen_nodes(pool: VmPool) -> None:
    pool.create_pool(make_spec("pool-a"))
    pool.resize("pool-a", 3)
    ids = [n.node_id for n in running_nodes(pool, "pool-a", 3)]
    pool.remove_nodes("pool-a", [ids[1]])
    assert [n.node_id for n in running_nodes(pool, "pool-a", 2)] == [ids[0], ids[2]]
    pool.resize("pool-a", 3)  # the capacity dropped with the removal: one new node
    new = [n.node_id for n in running_nodes(pool, "pool-a", 3)]
    assert new[:2] == [ids[0], ids[2]] and new[2] not in ids  # ids are never reused


def test_unknown_node_ids_are_ignored(pool: VmPool) -> None:
    pool.create_pool(make_spec("pool-a"))
    pool.resize("pool-a", 2)
    ids = [n.node_id for n in running_nodes(pool, "pool-a", 2)]
    pool.remove_nodes("pool-a", ["no-such-node", "999"])
    assert [n.node_id for n in running_nodes(pool, "pool-a", 2)] == ids
    pool.remove_nodes("pool-a", ["no-such-node", ids[0]])
    assert [n.node_id for n in running_nodes(pool, "pool-a", 1)] == [ids[1]]
    pool.remove_nodes("pool-a", [])


def test_missing_pool(pool: VmPool) -> None:
    with pytest.raises(PoolNotFound):
        pool.list_nodes("no-such-pool")
    with pytest.raises(PoolNotFound):
        pool.resize("no-such-pool", 1)
    pool.remove_nodes("no-such-pool", ["1"])  # nothing to remove: no error
    with pytest.raises(PoolNotFound):
        pool.list_nodes("no-such-pool")  # and nothing was created on the way


def test_delete_pool_removes_every_node(pool: VmPool) -> None:
    pool.create_pool(make_spec("pool-a"))
    pool.create_pool(make_spec("pool-b"))
    pool.resize("pool-a", 2)
    pool.resize("pool-b", 1)
    nodes = running_nodes(pool, "pool-a", 2)
    agents: list[tuple[int, Path]] = []
    if _is_local(pool):
        root: Path = pool._root  # type: ignore[attr-defined]
        agents = [(_agent_pid(root, "pool-a", n.node_id), root / "pool-a" / n.node_id) for n in nodes]
    pool.delete_pool("pool-a")
    with pytest.raises(PoolNotFound):
        pool.list_nodes("pool-a")
    for pid, node_dir in agents:
        assert not _is_agent_of(pid, node_dir), f"agent {pid} still runs"
    if _is_local(pool):
        assert not (pool._root / "pool-a").exists()  # type: ignore[attr-defined]
    assert len(running_nodes(pool, "pool-b", 1)) == 1  # other pools are untouched
    pool.create_pool(make_spec("pool-a"))  # the id can be used again
    assert pool.list_nodes("pool-a") == []


def test_made_names_only_the_pools_own_live_nodes(pool: VmPool) -> None:
    """Only these may register with the control plane (issue 16.8)."""
    pool.create_pool(make_spec("pool-a"))
    pool.create_pool(make_spec("pool-b"))
    pool.resize("pool-a", 2)
    ids = [n.node_id for n in running_nodes(pool, "pool-a", 2)]
    assert all(pool.made("pool-a", node_id) for node_id in ids)
    assert not pool.made("pool-b", ids[0])  # another pool's
    assert not any(pool.made("pool-a", rogue) for rogue in ("node-rogue", "999", "", ids[0] + "0"))
    pool.remove_nodes("pool-a", [ids[0]])
    assert not pool.made("pool-a", ids[0]) and pool.made("pool-a", ids[1])  # removed: never again
    with pytest.raises(PoolNotFound):
        pool.made("no-such-pool", ids[1])


def test_delete_missing_pool_is_a_no_op(pool: VmPool) -> None:
    pool.delete_pool("no-such-pool")
    pool.create_pool(make_spec("pool-a"))
    pool.delete_pool("pool-a")
    pool.delete_pool("pool-a")


@pytest.mark.parametrize("bad", ["../escape", "UPPER", "", "a" * 61, "with/slash"])
def test_invalid_pool_ids_are_refused(pool: VmPool, bad: str) -> None:
    with pytest.raises(ValueError):
        pool.create_pool(make_spec(bad))
    with pytest.raises(ValueError):
        pool.list_nodes(bad)


@pytest.mark.parametrize("pool", ["local", NETNS], indirect=True)  # a scale set's VMs outlive the control plane
def test_no_node_starts_once_stop_all_has_begun(pool: VmPool) -> None:
    """The local host's stop (the pools on this machine): a resize still running in another thread
    when stop_all begins (a timer's reconcile round, say), or one that comes after it, leaves no
    node process running."""
    stop_all = pool.stop_all  # type: ignore[attr-defined]  # the local pools' own: not the port's
    root: Path = pool._root  # type: ignore[attr-defined]
    pool_ids = [f"pool-{i}" for i in range(4)]
    for pool_id in pool_ids:
        pool.create_pool(make_spec(pool_id))
    errors: list[BaseException] = []

    def grow() -> None:  # the pools in the opposite order to stop_all's: it passes some before they grow
        for pool_id in reversed(pool_ids):
            try:
                pool.resize(pool_id, 2)
            except PoolNotFound:  # stopped and forgotten already (the netns pool keeps pools in memory)
                pass
            except BaseException as exc:  # reported below
                errors.append(exc)

    thread = threading.Thread(target=grow)
    thread.start()
    wait_for(lambda: pool.list_nodes(pool_ids[-1]), "the resize to start a node")
    stop_all()
    thread.join(timeout=WAIT)
    pool.create_pool(make_spec(pool_ids[0]))  # after stop_all, as a reconcile still running would
    pool.resize(pool_ids[0], 3)
    assert not errors and not thread.is_alive()
    assert not _processes_under(root), "a node outlived stop_all"


# ================================================================== scale sets only

def _put_body(fake: FakeArmCompute, name: str) -> dict[str, Any]:
    puts = fake.calls("PUT", f"/virtualMachineScaleSets/{name}")
    assert len(puts) == 1
    assert puts[0].query["api-version"] == COMPUTE_API_VERSION
    return puts[0].body


def _custom_data(body: dict[str, Any]) -> str:
    return base64.b64decode(body["properties"]["virtualMachineProfile"]["osProfile"]["customData"]).decode()


def test_vmss_low_priority_becomes_spot_with_delete_eviction(fake_arm: FakeArmCompute) -> None:
    pool = _vmss_pool(fake_arm)
    pool.create_pool(make_spec("spot", vm_priority="lowpriority", vm_size="STANDARD_NC6"))
    body = _put_body(fake_arm, "spot")
    profile = body["properties"]["virtualMachineProfile"]
    assert body["location"] == "westeurope"
    assert body["sku"] == {"name": "Standard_NC6", "tier": "Standard", "capacity": 0}
    assert body["tags"] == {"batchai-cluster": "c1"}
    assert body["properties"]["upgradePolicy"] == {"mode": "Manual"}
    assert profile["priority"] == "Spot"
    assert profile["evictionPolicy"] == "Delete"
    assert profile["billingProfile"] == {"maxPrice": -1}
    assert profile["storageProfile"]["imageReference"] == {
        "publisher": "Canonical", "offer": "UbuntuServer", "sku": "16.04-LTS", "version": "latest"}
    ip_config = profile["networkProfile"]["networkInterfaceConfigurations"][0]["properties"]["ipConfigurations"][0]
    assert ip_config["properties"]["subnet"] == {"id": SUBNET_ID}
    os_profile = profile["osProfile"]
    assert os_profile["adminUsername"] == "azureuser" and "adminPassword" not in os_profile
    assert os_profile["linuxConfiguration"]["disablePasswordAuthentication"] is True
    assert os_profile["linuxConfiguration"]["ssh"]["publicKeys"] == [
        {"path": "/home/azureuser/.ssh/authorized_keys", "keyData": SSH_KEY}]
    assert fake_arm.calls("GET", "/operations") == []  # started, never waited for
    pool.list_nodes("spot")  # a later round: the create has finished meanwhile
    assert fake_arm.scale_set(RESOURCE_GROUP, "spot").state == "Succeeded"


def test_vmss_dedicated_with_password_and_custom_image(fake_arm: FakeArmCompute) -> None:
    pool = _vmss_pool(fake_arm)
    image_id = "/subscriptions/s/resourceGroups/img/providers/Microsoft.Compute/images/my-image"
    pool.create_pool(make_spec("dedicated", admin_ssh_public_key=None, admin_password="Pa55w0rd!Pa55",
                               image_reference={"virtualMachineImageId": image_id}))
    profile = _put_body(fake_arm, "dedicated")["properties"]["virtualMachineProfile"]
    assert profile["priority"] == "Regular"
    assert "evictionPolicy" not in profile and "billingProfile" not in profile
    assert profile["storageProfile"]["imageReference"] == {"id": image_id}
    assert profile["osProfile"]["adminPassword"] == "Pa55w0rd!Pa55"
    assert "linuxConfiguration" not in profile["osProfile"]


AGENT_URL = "https://ctl.blob.core.windows.net/batchai-agent/batchai-node.tar.gz?se=2099&sig=abc"


def _boot_spec(pool_id: str, **overrides: Any) -> PoolSpec:
    """A spec whose bootstrap carries what a VM needs: the cluster's key pair and the agent bundle's URL."""
    from shared.cluster_keys import new_cluster_key

    key = new_cluster_key()
    bootstrap = AgentBootstrap(ENDPOINT, CLUSTER_ID, TOKEN, ssh_private_key=key.private, ssh_public_key=key.public,
                               agent_url=AGENT_URL)
    return make_spec(pool_id, bootstrap=bootstrap, **overrides)


def test_vmss_custom_data_is_a_cloud_init_that_starts_the_agent(fake_arm: FakeArmCompute) -> None:
    pool = _vmss_pool(fake_arm)
    spec = _boot_spec("agents")
    pool.create_pool(spec)
    custom_data = _put_body(fake_arm, "agents")["properties"]["virtualMachineProfile"]["osProfile"]["customData"]
    assert len(custom_data) < 64 * 1024  # Azure's limit on custom data
    script = _custom_data(_put_body(fake_arm, "agents"))
    assert script.startswith("#cloud-config\n")
    config = yaml.safe_load(script)  # what cloud-init does with it
    files = {f["path"]: f for f in config["write_files"]}
    bootstrap = files["/var/lib/batchai/node/bootstrap.json"]
    assert bootstrap["permissions"] == "0600"
    document = json.loads(bootstrap["content"])
    assert document["endpoint"] == ENDPOINT
    assert document["cluster_id"] == CLUSTER_ID
    assert document["token"] == TOKEN
    assert document["pool_id"] == "agents"
    assert document["node_id"] is None and document["address"] is None  # from IMDS on the VM
    # The agent: from the bundle's signed URL (a 0600 file), into a venv of the image's Python, never from PyPI.
    assert files["/var/lib/batchai/agent-url"] == {"path": "/var/lib/batchai/agent-url", "content": AGENT_URL + "\n",
                                                   "permissions": "0600", "owner": "root:root"}
    boot = files["/var/lib/batchai/boot-agent.sh"]["content"]
    assert "/usr/bin/python3 -m venv" in boot and "pip install --quiet --no-index --find-links" in boot
    assert "systemctl enable --now batchai-node.service" in boot
    unit = files["/etc/systemd/system/batchai-node.service"]["content"]
    assert "-m node_bootstrap --node-dir /var/lib/batchai/node" in unit and "Restart=always" in unit
    # The cluster's key pair: the private key 0600 for mpirun's ssh, the public one trusted for root.
    assert files["/var/lib/batchai/ssh/cluster_key"]["content"].strip() == spec.bootstrap.ssh_private_key.strip()
    assert files["/var/lib/batchai/ssh/cluster_key"]["permissions"] == "0600"
    assert files["/var/lib/batchai/ssh/cluster_key.pub"]["content"].strip() == spec.bootstrap.ssh_public_key
    assert "BATCHAI_MPI_RSH_AGENT=ssh -i /var/lib/batchai/ssh/cluster_key" in unit
    # The admin user gets the API's adminUserSshPublicKey from cloud-init too.
    admin = next(u for u in config["users"] if isinstance(u, dict))
    assert admin["name"] == "azureuser" and admin["ssh_authorized_keys"] == [SSH_KEY]
    install = files["/var/lib/batchai/install-node-packages.sh"]["content"]
    for package in ("docker.io", "cifs-utils", "nfs-common", "openmpi-bin", "openssh-server", "python3-venv", "blobfuse2"):
        assert package in install
    assert "gpu=0" in install  # a D-series size: no GPU driver
    assert config["runcmd"] == [["/var/lib/batchai/install-node-packages.sh"], ["/var/lib/batchai/boot-agent.sh"]]
    compile(files["/var/lib/batchai/identify.py"]["content"], "identify.py", "exec")  # valid Python


def test_vmss_gpu_sizes_get_the_driver_and_container_toolkit(fake_arm: FakeArmCompute) -> None:
    pool = _vmss_pool(fake_arm)
    pool.create_pool(_boot_spec("gpus", vm_size="STANDARD_NC6s_v3"))
    config = yaml.safe_load(_custom_data(_put_body(fake_arm, "gpus")))
    install = next(f["content"] for f in config["write_files"] if f["path"].endswith("install-node-packages.sh"))
    assert "gpu=1" in install
    assert "ubuntu-drivers install --gpgpu" in install and "nvidia-container-toolkit" in install


def test_vmss_default_image_is_a_current_ubuntu(fake_arm: FakeArmCompute) -> None:
    from shared.node_boot import DEFAULT_IMAGE

    pool = _vmss_pool(fake_arm)
    pool.create_pool(_boot_spec("plain", image_reference={}))
    profile = _put_body(fake_arm, "plain")["properties"]["virtualMachineProfile"]
    assert profile["storageProfile"]["imageReference"] == DEFAULT_IMAGE == {
        "publisher": "Canonical", "offer": "ubuntu-24_04-lts", "sku": "server", "version": "latest"}


def test_vmss_user_data_passes_cloud_init_schema(fake_arm: FakeArmCompute, tmp_path: Path) -> None:
    """Debian's cloud-init validates what ARM received, byte for byte; the scripts parse as bash."""
    pool = _vmss_pool(fake_arm)
    for pool_id, size in (("cpu", "STANDARD_D1_V2"), ("gpu", "Standard_NC24rs_v3")):
        pool.create_pool(_boot_spec(pool_id, vm_size=size))
        user_data = tmp_path / f"{pool_id}.yaml"
        user_data.write_text(_custom_data(_put_body(fake_arm, pool_id)))
        checked = subprocess.run(["cloud-init", "schema", "--config-file", str(user_data)], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "Valid cloud-config" in checked.stdout
        for item in yaml.safe_load(user_data.read_text())["write_files"]:
            if item["path"].endswith(".sh"):
                script = tmp_path / "script.sh"
                script.write_text(item["content"])
                assert subprocess.run(["bash", "-n", str(script)]).returncode == 0, item["path"]


def test_vmss_capacity_changes_are_patches_of_the_sku(fake_arm: FakeArmCompute) -> None:
    pool = _vmss_pool(fake_arm)
    pool.create_pool(make_spec("scale", vm_size="standard_nc6s_v3"))
    for capacity in (2, 5, 5, 1):
        pool.resize("scale", capacity)
    patches = fake_arm.calls("PATCH", "/virtualMachineScaleSets/scale")
    assert [p.body["sku"]["capacity"] for p in patches] == [2, 5, 1]  # no request when nothing changes
    assert all(p.body["sku"]["name"] == "Standard_NC6s_v3" for p in patches)
    assert all(p.query["api-version"] == COMPUTE_API_VERSION for p in patches)
    assert len(running_nodes(pool, "scale", 1)) == 1


def test_vmss_remove_nodes_deletes_known_instances_only(fake_arm: FakeArmCompute) -> None:
    pool = _vmss_pool(fake_arm)
    pool.create_pool(make_spec("remove"))
    pool.resize("remove", 3)
    running_nodes(pool, "remove", 3)
    pool.remove_nodes("remove", ["x"])
    assert fake_arm.calls("POST", "/delete") == []  # ARM would refuse unknown instance ids
    pool.remove_nodes("remove", ["2", "x", "0"])
    posts = fake_arm.calls("POST", "/virtualMachineScaleSets/remove/delete")
    assert [p.body for p in posts] == [{"instanceIds": ["0", "2"]}]
    assert [n.node_id for n in running_nodes(pool, "remove", 1)] == ["1"]


def test_vmss_failed_instance_reports_why(fake_arm: FakeArmCompute) -> None:
    pool = _vmss_pool(fake_arm)
    pool.create_pool(make_spec("broken"))
    pool.resize("broken", 2)
    running_nodes(pool, "broken", 2)
    fake_arm.fail_instance(RESOURCE_GROUP, "broken", "1", "Allocation failed: no capacity for Standard_D1_v2")
    nodes = {n.node_id: n for n in pool.list_nodes("broken")}
    assert nodes["0"].state == "running"
    assert nodes["1"].state == "failed" and "Allocation failed" in nodes["1"].details


def test_vmss_refuses_a_spec_without_subnet_or_credentials(fake_arm: FakeArmCompute) -> None:
    pool = _vmss_pool(fake_arm)
    with pytest.raises(ValueError, match="subnet"):
        pool.create_pool(make_spec("nosubnet", subnet_id=None))
    with pytest.raises(ValueError, match="password or an SSH"):
        pool.create_pool(make_spec("nologin", admin_ssh_public_key=None))
    assert fake_arm.calls("PUT") == []
    defaulted = _vmss_pool(fake_arm, default_subnet_id=SUBNET_ID)
    defaulted.create_pool(make_spec("defaulted", subnet_id=None))
    nic = _put_body(fake_arm, "defaulted")["properties"]["virtualMachineProfile"]["networkProfile"]
    assert nic["networkInterfaceConfigurations"][0]["properties"]["ipConfigurations"][0]["properties"]["subnet"]["id"] == SUBNET_ID


def test_vmss_create_is_started_and_observed_on_later_rounds(fake_arm: FakeArmCompute) -> None:
    """No ARM wait inside a round: a scale set still being created is resized by a later round, and a
    create that failed is an error of every later round (it shows on the cluster)."""
    from shared.ports.vm_pool import PoolError

    pool = _vmss_pool(fake_arm)
    fake_arm.hold_operations = True  # creating a scale set takes minutes in Azure
    pool.create_pool(make_spec("slow"))
    pool.resize("slow", 2)
    assert fake_arm.calls("PATCH") == [] and fake_arm.calls("GET", "/operations") == []
    fake_arm.complete_operations()
    pool.resize("slow", 2)
    assert [p.body["sku"]["capacity"] for p in fake_arm.calls("PATCH")] == [2]
    fake_arm.scale_set(RESOURCE_GROUP, "slow").state = "Failed"
    with pytest.raises(PoolError, match="Failed"):
        pool.resize("slow", 3)


def test_vmss_listings_are_read_at_most_once_per_interval(fake_arm: FakeArmCompute) -> None:
    now = [1000.0]
    pool = _vmss_pool(fake_arm, read_interval=20.0, monotonic=lambda: now[0])
    pool.create_pool(make_spec("reads"))
    pool.resize("reads", 2)
    first = pool.list_nodes("reads")
    for _ in range(5):
        assert pool.list_nodes("reads") == first
    assert len(fake_arm.calls("GET", "/virtualMachines")) == 1
    assert len(fake_arm.calls("GET", "/networkInterfaces")) == 1
    pool.remove_nodes("reads", [first[0].node_id])  # shown as leaving at once, without a read
    assert [n.state for n in pool.list_nodes("reads")][0] == "deleting"
    now[0] += 20.0
    assert [n.node_id for n in pool.list_nodes("reads")] == [first[1].node_id]
    assert len(fake_arm.calls("GET", "/virtualMachines")) == 2
    nics = fake_arm.calls("GET", "/networkInterfaces")
    assert len(nics) == 2 and all(r.query["api-version"] == "2018-10-01" for r in nics)


def test_vm_size_casing() -> None:
    from shared.adapters.azure.vmss_pool import azure_vm_size

    assert azure_vm_size("STANDARD_NC6") == "Standard_NC6"
    assert azure_vm_size("standard_nc6s_v3") == "Standard_NC6s_v3"
    assert azure_vm_size("STANDARD_D1_V2") == "Standard_D1_v2"
    assert azure_vm_size("standard_nc24rs_v2") == "Standard_NC24rs_v2"


def _raw(fake: FakeArmCompute, method: str, path: str, body: Any = None,
         api_version: str | None = COMPUTE_API_VERSION) -> tuple[int, dict[str, Any]]:
    query = f"?api-version={api_version}" if api_version else ""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{fake.base_url}{path}{query}", data=data, method=method, headers={
        "Authorization": "Bearer x", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def test_fake_arm_refuses_malformed_requests(fake_arm: FakeArmCompute) -> None:
    """The fake is only worth its checks: show that it refuses what ARM refuses."""
    from shared.adapters.azure.vmss_pool import VmssPool

    path = f"/subscriptions/{fake_arm.subscription_id}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/x"
    # A valid body, as the adapter makes it; then break one thing at a time.
    pool = _vmss_pool(fake_arm)
    assert isinstance(pool, VmssPool)
    pool.create_pool(make_spec("valid", vm_priority="lowpriority"))
    valid = _put_body(fake_arm, "valid")

    def broken(mutate: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        body = json.loads(json.dumps(valid))
        mutate(body)
        return body

    profile = lambda b: b["properties"]["virtualMachineProfile"]  # noqa: E731
    cases: list[tuple[str, Callable[[dict[str, Any]], None]]] = [
        ("location", lambda b: b.pop("location")),
        ("sku.capacity", lambda b: b["sku"].pop("capacity")),
        ("computerNamePrefix", lambda b: profile(b)["osProfile"].pop("computerNamePrefix")),
        ("adminUsername", lambda b: profile(b)["osProfile"].pop("adminUsername")),
        ("customData", lambda b: profile(b)["osProfile"].update(customData="not base64!")),
        ("imageReference", lambda b: profile(b)["storageProfile"].pop("imageReference")),
        ("imageReference.offer", lambda b: profile(b)["storageProfile"]["imageReference"].pop("offer")),
        ("networkInterfaceConfigurations", lambda b: profile(b).pop("networkProfile")),
        ("evictionPolicy", lambda b: profile(b).pop("evictionPolicy")),
        ("evictionPolicy", lambda b: profile(b).update(priority="Regular")),
    ]
    for target, mutate in cases:
        status, answer = _raw(fake_arm, "PUT", path, broken(mutate))
        assert status == 400, target
        assert target in answer["error"]["target"], answer
    assert _raw(fake_arm, "PUT", path, valid, api_version=None)[0] == 400
    assert _raw(fake_arm, "PUT", path, valid, api_version="2017-03-30")[0] == 400
    status, answer = _raw(fake_arm, "GET", path)
    assert status == 404 and answer["error"]["code"] == "ResourceNotFound"
    assert _raw(fake_arm, "PUT", path, valid)[0] == 201


# ================================================================== local pool only

def test_local_layout_and_secrets(local_root: Path) -> None:
    pool = _local_pool(local_root)
    pool.create_pool(make_spec("pool-a", admin_password="Pa55w0rd!"))
    pool.resize("pool-a", 1)
    (node,) = running_nodes(pool, "pool-a", 1)
    assert node.node_id == "node-0001" and node.address == "127.0.0.2"
    pool_json = (local_root / "pool-a" / "pool.json").read_text()
    assert "Pa55w0rd!" not in pool_json and TOKEN not in pool_json
    assert json.loads(pool_json)["vm_size"] == "STANDARD_D1_V2"
    node_dir = local_root / "pool-a" / "node-0001"
    bootstrap_path = node_dir / "bootstrap.json"
    assert stat.S_IMODE(bootstrap_path.stat().st_mode) == 0o600
    assert json.loads(bootstrap_path.read_text()) == {
        "endpoint": ENDPOINT, "endpoint_file": None, "cluster_id": CLUSTER_ID, "token": node_token(TOKEN, "node-0001"),
        "node_id": "node-0001", "address": "127.0.0.2", "pool_id": "pool-a", "vm_size": "STANDARD_D1_V2",
        "telemetry": {}}
    assert TOKEN not in bootstrap_path.read_text()  # its own token: it can register as itself only
    pid = _agent_pid(local_root, "pool-a", "node-0001")
    assert _cmdline(pid)[1:] == ["-m", "node_bootstrap", "--node-dir", str(node_dir)]
    assert os.getpgid(pid) == pid and os.getsid(pid) == pid  # its own session: outlives its starter
    assert (node_dir / "agent.log").exists()


def test_local_node_removal_stops_every_process_of_the_node(local_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Like a deleted VM: the agent goes, and so do jobs it started in their own sessions."""
    from shared.adapters.local.local_pool import NODE_DIR_VARIABLE

    monkeypatch.setenv("BATCHAI_COSMOS_KEY", "control-plane-secret")
    pool = _local_pool(local_root)
    pool.create_pool(make_spec("pool-a"))
    pool.resize("pool-a", 2)
    running_nodes(pool, "pool-a", 2)
    node_dir = local_root / "pool-a" / "node-0001"
    agent_environ = Path(f"/proc/{_agent_pid(local_root, 'pool-a', 'node-0001')}/environ").read_bytes()
    assert b"control-plane-secret" not in agent_environ, "a node never sees the control plane's settings"
    assert f"{NODE_DIR_VARIABLE}={node_dir}".encode() in agent_environ.split(b"\0")
    env = {"PATH": os.environ["PATH"], NODE_DIR_VARIABLE: str(node_dir)}  # what a job inherits
    job = subprocess.Popen(["sleep", "60"], env=env, start_new_session=True)
    other = subprocess.Popen(["sleep", "60"], env={**env, NODE_DIR_VARIABLE: f"{node_dir}0"}, start_new_session=True)
    try:
        pool.remove_nodes("pool-a", ["node-0001"])
        assert job.wait(WAIT) == -signal.SIGTERM
        assert other.poll() is None, "only the removed node's processes are stopped"
    finally:
        for proc in (job, other):
            proc.kill()
            proc.wait()


def test_local_endpoint_file_is_passed_to_agents(local_root: Path, tmp_path: Path) -> None:
    from shared.adapters.local.local_pool import LocalVmPool

    pool = LocalVmPool(local_root, endpoint_file=tmp_path / "endpoint")
    pool.create_pool(make_spec("pool-a"))
    pool.resize("pool-a", 1)
    document = json.loads((local_root / "pool-a" / "node-0001" / "bootstrap.json").read_text())
    assert document["endpoint_file"] == str(tmp_path / "endpoint")


def test_local_resize_down_removes_the_newest(local_root: Path) -> None:
    pool = _local_pool(local_root)
    pool.create_pool(make_spec("pool-a"))
    pool.resize("pool-a", 3)
    running_nodes(pool, "pool-a", 3)
    pool.resize("pool-a", 1)
    assert [n.node_id for n in running_nodes(pool, "pool-a", 1)] == ["node-0001"]


def test_local_nodes_are_readopted_by_a_new_pool_object(local_root: Path) -> None:
    from shared.adapters.local.local_pool import LocalVmPool

    first = _local_pool(local_root)
    first.create_pool(make_spec("pool-a"))
    first.resize("pool-a", 2)
    nodes = running_nodes(first, "pool-a", 2)
    pids = {n.node_id: _agent_pid(local_root, "pool-a", n.node_id) for n in nodes}
    first.close()  # closing does not stop the agents
    assert all(_is_agent_of(pid, local_root / "pool-a" / nid) for nid, pid in pids.items())

    second = LocalVmPool(local_root)  # as after a restart of the local host
    assert running_nodes(second, "pool-a", 2) == nodes
    second.resize("pool-a", 3)
    assert [n.node_id for n in running_nodes(second, "pool-a", 3)] == ["node-0001", "node-0002", "node-0003"]
    second.remove_nodes("pool-a", ["node-0001"])  # an agent the second object did not start
    wait_for(lambda: not _is_agent_of(pids["node-0001"], local_root / "pool-a" / "node-0001"), "the agent to stop")
    assert [n.node_id for n in running_nodes(second, "pool-a", 2)] == ["node-0002", "node-0003"]


def test_local_pid_reuse_is_not_mistaken_for_the_agent(local_root: Path) -> None:
    pool = _local_pool(local_root)
    pool.create_pool(make_spec("pool-a"))
    pool.resize("pool-a", 1)
    running_nodes(pool, "pool-a", 1)
    from shared.adapters.local.local_pool import LocalVmPool

    other = LocalVmPool(local_root)  # does not hold the process handle: must trust /proc
    node_dir = local_root / "pool-a" / "node-0001"
    real_pid = (node_dir / "agent.pid").read_text()
    try:
        (node_dir / "agent.pid").write_text(f"{os.getpid()}\n")  # a live pid, but not this node's agent
        (node,) = other.list_nodes("pool-a")
        assert node.state == "failed"
        other.remove_nodes("pool-a", ["node-0001"])  # must not signal the test process
    finally:
        if node_dir.exists():
            (node_dir / "agent.pid").write_text(real_pid)
    assert other.list_nodes("pool-a") == []
    _kill_pids([int(real_pid)])  # its real agent was out of the adapter's sight


def test_local_killed_agent_shows_failed(local_root: Path) -> None:
    from shared.adapters.local.local_pool import LocalVmPool

    pool = _local_pool(local_root)
    pool.create_pool(make_spec("pool-a"))
    pool.resize("pool-a", 2)
    running_nodes(pool, "pool-a", 2)
    pid = _agent_pid(local_root, "pool-a", "node-0001")
    os.kill(pid, signal.SIGKILL)

    def failed() -> PoolNode | None:
        node = pool.list_nodes("pool-a")[0]
        return node if node.state == "failed" else None

    node = wait_for(failed, "node-0001 to be failed")
    assert "signal 9" in node.details  # its exit status
    log = (local_root / "pool-a" / "node-0001" / "agent.log").read_text().strip()
    if log:  # and the tail of its log
        assert log.splitlines()[-1] in node.details
    assert LocalVmPool(local_root).list_nodes("pool-a")[0].state == "failed"  # seen alike after a restart
    assert pool.list_nodes("pool-a")[1].state == "running"
    pool.resize("pool-a", 2)  # a failed node still counts: the control plane decides to replace it
    assert len(pool.list_nodes("pool-a")) == 2
    pool.remove_nodes("pool-a", ["node-0001"])
    assert [n.node_id for n in running_nodes(pool, "pool-a", 1)] == ["node-0002"]


def test_local_addresses_are_unique_across_pools(local_root: Path) -> None:
    from shared.adapters.local.local_pool import LocalVmPool

    pool_a, pool_b = LocalVmPool(local_root), LocalVmPool(local_root)  # e.g. two threads of the host
    pool_a.create_pool(make_spec("pool-a"))
    pool_b.create_pool(make_spec("pool-b"))
    errors: list[BaseException] = []

    def grow(pool: VmPool, pool_id: str) -> None:
        try:
            pool.resize(pool_id, 4)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=grow, args=(pool_a, "pool-a")), threading.Thread(target=grow, args=(pool_b, "pool-b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=WAIT)
    assert not errors and not any(t.is_alive() for t in threads)
    nodes_a, nodes_b = running_nodes(pool_a, "pool-a", 4), running_nodes(pool_b, "pool-b", 4)
    addresses = [n.address for n in nodes_a + nodes_b]
    assert len(set(addresses)) == 8
    assert set(addresses) == {f"127.0.0.{i}" for i in range(2, 10)}
    freed = nodes_a[0].address
    pool_a.remove_nodes("pool-a", [nodes_a[0].node_id])
    pool_b.resize("pool-b", 5)  # a freed address is free for any pool
    assert running_nodes(pool_b, "pool-b", 5)[-1].address == freed


def test_local_address_sequence_skips_network_and_broadcast() -> None:
    from itertools import islice

    from shared.adapters.local.local_pool import _address_sequence

    assert list(islice(_address_sequence("127.0.0.253"), 4)) == ["127.0.0.253", "127.0.0.254", "127.0.1.1", "127.0.1.2"]


def test_local_interrupted_removal_is_finished(local_root: Path) -> None:
    pool = _local_pool(local_root)
    pool.create_pool(make_spec("pool-a"))
    pool.resize("pool-a", 2)
    running_nodes(pool, "pool-a", 2)
    pid = _agent_pid(local_root, "pool-a", "node-0002")
    (local_root / "pool-a" / "node-0002" / "deleting").write_text("")  # as if the remover had crashed
    assert [n.state for n in pool.list_nodes("pool-a")] == ["running", "deleting"]
    pool.resize("pool-a", 2)  # deleting nodes do not count: one new node, and the leftover is finished
    assert [n.node_id for n in running_nodes(pool, "pool-a", 2)] == ["node-0001", "node-0003"]
    assert not _is_agent_of(pid, local_root / "pool-a" / "node-0002")


def test_local_stop_all_stops_every_agent(local_root: Path) -> None:
    from shared.adapters.local.local_pool import LocalVmPool

    pool = LocalVmPool(local_root)
    for pool_id in ("pool-a", "pool-b"):
        pool.create_pool(make_spec(pool_id))
        pool.resize(pool_id, 2)
        running_nodes(pool, pool_id, 2)
    pids = [_agent_pid(local_root, p, n) for p in ("pool-a", "pool-b") for n in ("node-0001", "node-0002")]
    pool.stop_all()
    assert not _processes_under(local_root)
    assert all(not Path(f"/proc/{pid}/cmdline").exists() or str(local_root) not in " ".join(_cmdline(pid)) for pid in pids)
    nodes = LocalVmPool(local_root).list_nodes("pool-a")
    assert [n.state for n in nodes] == ["failed", "failed"] and "stopped by the local host" in nodes[0].details
