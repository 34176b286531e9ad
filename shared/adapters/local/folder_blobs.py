"""Blob storage in a local folder: `<root>/<account>/<container>/<blob name>`, one file per blob.

Blob names are '/'-separated paths, so a name with an empty, '.' or '..' segment is refused
(ValueError), and as on any file system a blob cannot be both a file and a folder ("a" and "a/b").
Writes land in `<root>/.tmp` first and are renamed into place, so readers (and the local host
serving a download URL) never see half a blob. Account keys are ignored: the folder is this
machine's. Download URLs are signed by the `UrlSigner` and served by the local host's files route,
so `root` must lie inside the signer's root.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from shared.ports.blob_store import Account, BlobEntry, BlobNotFound, BlobStore
from shared.local_files import walk_files
from shared.signed_urls import PathRefused, UrlSigner, split_relative

_TEMP = ".tmp"  # beside the accounts; no account name can start with a dot


class FolderBlobStore(BlobStore):
    def __init__(self, root: Path, signer: UrlSigner) -> None:
        self.root = Path(os.path.abspath(root))
        if not self.root.is_relative_to(signer.root):
            raise ValueError(f"the blob folder {self.root} must lie inside {signer.root}, which URLs are served from")
        self.signer = signer

    def __repr__(self) -> str:
        return f"FolderBlobStore(root={str(self.root)!r})"

    def create_container(self, account: Account, container: str) -> None:
        self._container(account, container).mkdir(parents=True, exist_ok=True)

    def upload(self, account: Account, container: str, name: str, source: Path) -> None:
        with open(source, "rb") as data:
            self._write(account, container, name, lambda out: shutil.copyfileobj(data, out, 1 << 20))

    def upload_bytes(self, account: Account, container: str, name: str, data: bytes) -> None:
        self._write(account, container, name, lambda out: out.write(data))

    def download(self, account: Account, container: str, name: str, target: Path) -> None:
        path = self._existing(account, container, name)
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = _temp_file(target.parent)
        try:
            shutil.copyfile(path, temp)
            os.replace(temp, target)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise

    def read_bytes(self, account: Account, container: str, name: str) -> bytes:
        return self._existing(account, container, name).read_bytes()

    def list(self, account: Account, container: str, prefix: str = "", delimiter: str | None = "/"
             ) -> list[BlobEntry]:
        """Every blob below the prefix's folder, filtered and grouped as Azure does."""
        start = self._container(account, container)
        folder = prefix.rpartition("/")[0]
        try:
            if folder:
                start = start.joinpath(*split_relative(folder))
        except PathRefused:
            return []  # no blob here can have such a name
        entries: dict[str, BlobEntry] = {}
        for name, stat in walk_files(start, f"{folder}/" if folder else ""):
            if not name.startswith(prefix):
                continue
            cut = name.find(delimiter, len(prefix)) if delimiter else -1
            if cut >= 0:
                directory = name[:cut + len(delimiter or "")]
                entries.setdefault(directory, BlobEntry(directory, is_directory=True))
            else:
                entries[name] = BlobEntry(name, False, stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC))
        return [entries[name] for name in sorted(entries)]

    def delete(self, account: Account, container: str, name: str) -> None:
        base = self._container(account, container)
        path = self._blob(account, container, name)
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return
        for parent in path.parents:  # folders exist only while blobs are in them, as on Azure
            if parent == base:
                break
            try:
                parent.rmdir()
            except OSError:
                break

    def download_url(self, account: Account, container: str, name: str, expires: datetime) -> str:
        return self.signer.url_for(self._blob(account, container, name), expires)

    def _container(self, account: Account, container: str) -> Path:
        if (len(split_relative(account.name)) != 1 or len(split_relative(container)) != 1
                or account.name.startswith(".")):  # dotted names are the store's own (.tmp)
            raise ValueError(f"not an account and container name: {account.name!r}, {container!r}")
        return self.root / account.name / container

    def _blob(self, account: Account, container: str, name: str) -> Path:
        try:
            return self._container(account, container).joinpath(*split_relative(name))
        except PathRefused:
            raise ValueError(f"a folder cannot hold a blob named {name!r}") from None

    def _existing(self, account: Account, container: str, name: str) -> Path:
        path = self._blob(account, container, name)
        if not path.is_file():
            raise BlobNotFound(f"{account.name}/{container}/{name}")
        return path

    def _write(self, account: Account, container: str, name: str, fill: Callable[[BinaryIO], object]) -> None:
        path = self._blob(account, container, name)
        if not self._container(account, container).is_dir():
            raise BlobNotFound(f"the container {account.name}/{container} does not exist")
        temp_dir = self.root / _TEMP
        temp_dir.mkdir(parents=True, exist_ok=True)
        temp = _temp_file(temp_dir)
        try:
            with open(temp, "wb") as out:
                fill(out)  # mkstemp made it 0600: blobs are private to the service's user
            for attempt in range(3):  # a delete may remove the emptied folder between mkdir and rename
                path.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.replace(temp, path)
                    break
                except FileNotFoundError:
                    if attempt == 2 or not temp.exists():
                        raise
        except BaseException:
            temp.unlink(missing_ok=True)
            raise


def _temp_file(folder: Path) -> Path:
    fd, name = tempfile.mkstemp(dir=folder, prefix=".part-")
    os.close(fd)
    return Path(name)
