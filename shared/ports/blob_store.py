"""Blob storage port: containers of named blobs in storage accounts, listed by prefix, read and
written whole, and handed out as signed download URLs that expire.

Adapters: a local folder (`<root>/<account>/<container>/<blob name>`, URLs signed and served by the
local host) and Azure Blob Storage (Azurite in tests; SAS URLs). An account's key, when the adapter
needs one, comes with each call: it belongs to the volume that names the account, not to settings.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path


@dataclass(frozen=True)
class Account:
    """A storage account as a volume names it; `key` is a secret (never logged or returned)."""

    name: str
    key: str = ""

    def __repr__(self) -> str:
        return f"Account(name={self.name!r})"


@dataclass(frozen=True)
class BlobEntry:
    """One entry of a listing: a blob, or (with a delimiter) a virtual directory ending in '/'."""

    name: str  # full blob name (or prefix for a directory)
    is_directory: bool
    size: int = 0
    last_modified: datetime | None = None


class BlobNotFound(Exception):
    """The container or blob does not exist."""


class BlobStore(ABC):
    @abstractmethod
    def create_container(self, account: Account, container: str) -> None:
        """Create the container unless it exists."""

    @abstractmethod
    def upload(self, account: Account, container: str, name: str, source: Path) -> None:
        """Write a local file as the blob `name` (replacing it); BlobNotFound if the container is missing."""

    @abstractmethod
    def upload_bytes(self, account: Account, container: str, name: str, data: bytes) -> None:
        """Write bytes as the blob `name` (replacing it); BlobNotFound if the container is missing."""

    @abstractmethod
    def download(self, account: Account, container: str, name: str, target: Path) -> None:
        """Write the blob to a local file (parents created); BlobNotFound if missing."""

    @abstractmethod
    def read_bytes(self, account: Account, container: str, name: str) -> bytes:
        """The blob's content; BlobNotFound if missing."""

    @abstractmethod
    def list(self, account: Account, container: str, prefix: str = "", delimiter: str | None = "/"
             ) -> list[BlobEntry]:
        """Entries under `prefix`, sorted by name. With a delimiter, one level (sub-prefixes are
        directories); without, every blob below. A missing container lists nothing."""

    @abstractmethod
    def delete(self, account: Account, container: str, name: str) -> None:
        """Remove a blob; a missing one is not an error."""

    @abstractmethod
    def download_url(self, account: Account, container: str, name: str, expires: datetime) -> str:
        """A URL anyone can GET the blob from until `expires`; refused after it or if altered."""

    def close(self) -> None:
        """Release connections."""
