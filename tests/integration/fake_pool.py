"""An in-memory VM pool for tests of the pool manager: nodes appear when asked for and vanish when
removed, with no processes. A fake that subclasses the port, as every adapter does."""

from __future__ import annotations

from collections.abc import Sequence

from shared.ports.vm_pool import PoolNode, PoolNotFound, PoolSpec, VmPool


class FakeVmPool(VmPool):
    def __init__(self) -> None:
        self.pools: dict[str, dict[str, PoolNode]] = {}
        self.specs: dict[str, PoolSpec] = {}
        self.next_id = 0

    def create_pool(self, spec: PoolSpec) -> None:
        self.pools.setdefault(spec.pool_id, {})
        self.specs[spec.pool_id] = spec

    def delete_pool(self, pool_id: str) -> None:
        self.pools.pop(pool_id, None)

    def resize(self, pool_id: str, capacity: int) -> None:
        nodes = self._pool(pool_id)
        while len(nodes) < capacity:
            self.next_id += 1
            node_id = f"node-{self.next_id:04d}"
            nodes[node_id] = PoolNode(node_id, f"127.0.0.{self.next_id + 1}", "running")
        for node_id in sorted(nodes, reverse=True)[: max(0, len(nodes) - capacity)]:
            del nodes[node_id]

    def remove_nodes(self, pool_id: str, node_ids: Sequence[str]) -> None:
        for node_id in node_ids:
            self._pool(pool_id).pop(node_id, None)

    def list_nodes(self, pool_id: str) -> list[PoolNode]:
        return sorted(self._pool(pool_id).values(), key=lambda n: n.node_id)

    def fail(self, pool_id: str, node_id: str) -> None:
        """The machine breaks (as a VM whose provisioning failed, or an agent process that died)."""
        node = self._pool(pool_id)[node_id]
        self._pool(pool_id)[node_id] = PoolNode(node.node_id, node.address, "failed", "it broke")

    def _pool(self, pool_id: str) -> dict[str, PoolNode]:
        if pool_id not in self.pools:
            raise PoolNotFound(pool_id)
        return self.pools[pool_id]
