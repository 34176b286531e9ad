"""File share port: listing a folder of an Azure file share, with download URLs that expire.

Azure Files on Azure (azure-storage-file-share, SAS URLs); on one machine a share is a folder of the
data folder (shared/volumes.local_folder), listed as such. An account's key comes with each call,
as for blob storage: it belongs to the volume that names the share.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime

from shared.ports.blob_store import Account


@dataclass(frozen=True)
class ShareEntry:
    """One entry of a share's folder: a sub-folder, or a file with its download URL."""

    name: str
    is_directory: bool
    size: int = 0
    last_modified: datetime | None = None
    url: str | None = None


class ShareUnreachable(Exception):
    """The share could not be listed (refused credentials, no answer); the message says why."""


class FileShares(ABC):
    @abstractmethod
    def list(self, account: Account, share_url: str, directory: str, expires: datetime) -> list[ShareEntry]:
        """The entries of `directory` (relative to the share's root, "" for the root) of the share at
        `share_url` (https://<account>.file.core.windows.net/<share>), sorted by name, files with URLs
        valid until `expires`. A missing folder lists nothing; ShareUnreachable when the service
        cannot be asked or refuses."""

    def close(self) -> None:
        """Release connections."""
