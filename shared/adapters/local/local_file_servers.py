"""File servers on one machine: nothing to provision. A folder of the data folder stands for each
(shared/volumes.local_folder), reached by the local pool's nodes on this machine's loopback address."""

from __future__ import annotations

from shared.ports.file_servers import FileServers, FileServerSpec, FileServerState

LOOPBACK = "127.0.0.1"


class LocalFileServers(FileServers):
    def provision(self, spec: FileServerSpec) -> FileServerState:
        return FileServerState(stage="succeeded", internal_ip=LOOPBACK, public_ip=LOOPBACK, mount_point=spec.mount_point)

    def delete(self, server_id: str) -> bool:
        return True
