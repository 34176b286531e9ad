"""VM pool whose VMs are network namespaces of this Linux machine, booted from the very user data a
scale set's VMs get (shared/node_boot.py): the VM boot path, tried on one machine. Needs root.

Each node has its own namespace ``<bridge>n<i>`` with one interface (``eth0``, a veth whose other end
``<bridge>v<i>`` joins the bridge given in the settings) and its own address in the bridge's /24 (.1
is the bridge: the local host listens there, and nodes reach it over that network, not loopback).
``netns_vm.py`` boots the node inside it. Node ids are numbered per pool like a scale set's
instance ids ("0", "1", ...).

The pool keeps its nodes in memory: a local host that restarts starts with none (its nodes were
ended with it, ``stop_all``). Packages are never installed on this machine (see netns_vm.py).
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from shared.adapters.local.local_pool import _check_pool_id
from shared.adapters.local.netns_vm import OWN_PATHS
from shared.node_boot import node_boot_of, user_data
from shared.ports.vm_pool import NodeState, PoolNode, PoolNotFound, PoolSpec, VmPool

_KILL_WAIT = 5.0


@dataclass
class _Node:
    node_id: str
    index: int
    address: str
    folder: Path
    process: subprocess.Popen[bytes] | None = None


class NetnsVmPool(VmPool):
    def __init__(self, root: Path, bridge: str, subnet: str, *, python: str = sys.executable) -> None:
        if not bridge:
            raise ValueError("the netns pool needs a bridge (setting netns_bridge)")
        self._root = Path(root).resolve()
        self._bridge = bridge
        self._network = ipaddress.IPv4Network(subnet)
        self._python = python
        self._pools: dict[str, tuple[PoolSpec, dict[str, _Node]]] = {}
        self._next_id: dict[str, int] = {}
        self._next_index = 0
        self._lock = threading.RLock()
        self._made: list[Path] = []  # mount points this pool made on this machine (removed when empty)
        self._stopping = False  # set by stop_all (under the lock): no node starts afterwards

    # ---------------------------------------------------------------- the port

    def create_pool(self, spec: PoolSpec) -> None:
        _check_pool_id(spec.pool_id)
        with self._lock:
            self._pools.setdefault(spec.pool_id, (spec, {}))
            self._next_id.setdefault(spec.pool_id, 0)

    def delete_pool(self, pool_id: str) -> None:
        _check_pool_id(pool_id)
        self._end_pool(pool_id)
        shutil.rmtree(self._root / pool_id, ignore_errors=True)  # the user data holds secrets

    def resize(self, pool_id: str, capacity: int) -> None:
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, not {capacity}")
        with self._lock:
            spec, nodes = self._pool(pool_id)
            while len(nodes) < capacity and not self._stopping:
                node = self._new_node(spec)
                nodes[node.node_id] = node
            extra = sorted(nodes.values(), key=lambda n: -n.index)[:max(0, len(nodes) - capacity)]
            for node in extra:
                del nodes[node.node_id]
        for node in extra:
            self._end(node)

    def remove_nodes(self, pool_id: str, node_ids: Sequence[str]) -> None:
        _check_pool_id(pool_id)
        with self._lock:
            if pool_id not in self._pools:
                return
            _, nodes = self._pools[pool_id]
            gone = [nodes.pop(n) for n in node_ids if n in nodes]
        for node in gone:
            self._end(node)

    def list_nodes(self, pool_id: str) -> list[PoolNode]:
        with self._lock:
            _, nodes = self._pool(pool_id)
            return [PoolNode(n.node_id, n.address, self._state(n), self._details(n))
                    for n in sorted(nodes.values(), key=lambda n: n.index)]

    def stop_all(self) -> None:
        """End every node (the local host's clean stop); their folders (boot logs) stay. No node
        starts afterwards, whoever still calls resize (a timer's invocation still running, say)."""
        with self._lock:
            self._stopping = True
            pool_ids = list(self._pools)
        for pool_id in pool_ids:
            self._end_pool(pool_id)
        while self._made:
            try:
                self._made.pop().rmdir()
            except OSError:
                pass

    def close(self) -> None:
        self.stop_all()

    # ---------------------------------------------------------------- internals

    def _end_pool(self, pool_id: str) -> None:
        with self._lock:
            _, nodes = self._pools.pop(pool_id, (None, {}))
        for node in nodes.values():
            self._end(node)

    def _pool(self, pool_id: str) -> tuple[PoolSpec, dict[str, _Node]]:
        _check_pool_id(pool_id)
        try:
            return self._pools[pool_id]
        except KeyError:
            raise PoolNotFound(pool_id) from None

    def names(self, index: int) -> tuple[str, str]:
        """(namespace, host end of the veth) of the node with this index."""
        return f"{self._bridge}n{index}", f"{self._bridge}v{index}"

    def _new_node(self, spec: PoolSpec) -> _Node:
        node_id = str(self._next_id[spec.pool_id])
        self._next_id[spec.pool_id] += 1
        index = self._next_index
        self._next_index += 1
        hosts = list(self._network.hosts())
        if index + 1 >= len(hosts):
            raise ValueError(f"no address left in {self._network}")
        address = str(hosts[index + 1])  # hosts[0] is the bridge's
        folder = self._root / spec.pool_id / node_id
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "user-data").write_text(user_data(node_boot_of(spec)))
        os.chmod(folder / "user-data", 0o600)  # it holds the bootstrap token and the cluster's key
        node = _Node(node_id, index, address, folder)
        self._plumb(node)
        for path in map(Path, OWN_PATHS):  # mount points for the node's own folders (netns_vm.py)
            if not path.exists():
                path.mkdir(parents=True)
                self._made.append(path)
        log = open(folder / "boot.log", "ab")  # noqa: SIM115 (the child keeps it)
        netns, _ = self.names(index)
        node.process = subprocess.Popen(
            ["ip", "netns", "exec", netns, "unshare", "--mount", "--propagation", "private", "--",
             self._python, "-m", "shared.adapters.local.netns_vm", "--folder", str(folder), "--address", address,
             "--pool", spec.pool_id, "--instance", node_id],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        return node

    def _plumb(self, node: _Node) -> None:
        netns, veth = self.names(node.index)
        peer = f"{veth}p"
        prefix = self._network.prefixlen
        gateway = next(self._network.hosts())
        for argv in (["ip", "netns", "add", netns],
                     ["ip", "link", "add", veth, "type", "veth", "peer", "name", peer],
                     ["ip", "link", "set", peer, "netns", netns],
                     ["ip", "-n", netns, "link", "set", peer, "name", "eth0"],
                     ["ip", "-n", netns, "addr", "add", f"{node.address}/{prefix}", "dev", "eth0"],
                     ["ip", "-n", netns, "link", "set", "eth0", "up"],
                     ["ip", "-n", netns, "route", "add", "default", "via", str(gateway)],
                     ["ip", "link", "set", veth, "master", self._bridge],
                     ["ip", "link", "set", veth, "up"]):
            subprocess.run(argv, check=True, capture_output=True)

    def _end(self, node: _Node) -> None:
        """Kill every process of the node's namespace, then remove the namespace and its link."""
        netns, veth = self.names(node.index)
        deadline = time.monotonic() + _KILL_WAIT
        while True:
            pids = live_pids(netns)
            if node.process is not None and node.process.poll() is None:
                pids.append(str(node.process.pid))
            if not pids or time.monotonic() > deadline:
                break
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            time.sleep(0.05)
        if node.process is not None:
            node.process.wait(timeout=_KILL_WAIT)
        subprocess.run(["ip", "link", "del", veth], capture_output=True)
        subprocess.run(["ip", "netns", "del", netns], capture_output=True)

    @staticmethod
    def _state(node: _Node) -> NodeState:
        if node.process is None:
            return "creating"
        return "running" if node.process.poll() is None else "failed"

    @staticmethod
    def _details(node: _Node) -> str:
        if node.process is None or node.process.poll() is None:
            return ""
        try:
            tail = (node.folder / "boot.log").read_text(errors="replace")[-2000:]
        except OSError:
            tail = ""
        return f"the node's boot ended with {node.process.returncode}: {tail}"


def live_pids(netns: str) -> list[str]:
    """The processes in the namespace, but for zombies: they hold nothing, and a parent that died
    with the node leaves its children to a PID 1 that may never reap them."""
    pids = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True).stdout.split()
    alive = []
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if stat[stat.rfind(")") + 2] != "Z":
            alive.append(pid)
    return alive
