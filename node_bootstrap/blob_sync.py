"""Keep a blob container as a plain local folder on a node: pull it whole before the job, push
what the job wrote while it runs and when it ends.

Jobs see ordinary files (as with a blobfuse mount on Azure) even where no mount is possible, such as
the local pool running against Azurite. `push` compares each file's size and mtime with what the
last pull or push saw, so calling it every couple of seconds costs one directory walk. Deletions
are not propagated either way.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from shared.local_files import walk_files
from shared.ports.blob_store import Account, BlobNotFound, BlobStore
from shared.signed_urls import PathRefused, split_relative

log = logging.getLogger(__name__)


class BlobSync:
    def __init__(self, store: BlobStore, account: Account, container: str, folder: Path) -> None:
        self.store = store
        self.account = account
        self.container = container
        self.folder = folder
        self._synced: dict[str, tuple[int, int]] = {}  # blob name -> (size, mtime_ns) when last in sync
        self._lock = threading.Lock()  # a timer's push never interleaves with a pull or another push

    def __repr__(self) -> str:
        return f"BlobSync({self.account.name}/{self.container} <-> {str(self.folder)!r})"

    def pull(self) -> int:
        """Download every blob into the folder; the number downloaded."""
        with self._lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            count = 0
            for entry in self.store.list(self.account, self.container, delimiter=None):
                try:
                    target = self.folder.joinpath(*split_relative(entry.name))
                except PathRefused:
                    log.warning("blob %r of %s/%s has no file name; not pulled", entry.name,
                                self.account.name, self.container)
                    continue
                try:
                    self.store.download(self.account, self.container, entry.name, target)
                except BlobNotFound:
                    continue  # deleted since the listing
                self._synced[entry.name] = _signature(target.stat())
                count += 1
            return count

    def push(self) -> int:
        """Upload files that are new or changed since the last pull or push; the number uploaded."""
        with self._lock:
            count = 0
            for name, stat in walk_files(self.folder):
                seen = _signature(stat)
                if self._synced.get(name) == seen:
                    continue
                # The signature taken before reading: a file still being written uploads again next time.
                try:
                    self.store.upload(self.account, self.container, name, self.folder / name)
                except FileNotFoundError:
                    continue  # removed since the walk
                self._synced[name] = seen
                count += 1
            return count


def _signature(stat: os.stat_result) -> tuple[int, int]:
    return stat.st_size, stat.st_mtime_ns

