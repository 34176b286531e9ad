"""Azure file shares through azure-storage-file-share: a folder's listing, files with SAS URLs
(read only, until the expiry asked for). The share's endpoint comes from the volume's
azureFileUrl (sovereign clouds, or a stand-in in tests); nothing here does I/O until called, and the
SDK is imported on first use (a second of start-up that the local host, whose shares are folders,
never needs)."""

from __future__ import annotations

import posixpath
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import AzureError, ResourceNotFoundError

from shared.ports.blob_store import Account
from shared.ports.file_shares import FileShares, ShareEntry, ShareUnreachable


class AzureFileShares(FileShares):
    def list(self, account: Account, share_url: str, directory: str, expires: datetime) -> list[ShareEntry]:
        from azure.storage.fileshare import (DirectoryProperties, FileSasPermissions, ShareDirectoryClient,
                                             generate_file_sas)

        url = urlsplit(share_url)
        share = url.path.strip("/").split("/")[0]
        if not url.scheme or not url.netloc or not share:
            raise ValueError(f"{share_url!r} is not the URL of a file share")
        account_url = f"{url.scheme}://{url.netloc}"
        directory = directory.strip("/")
        client = ShareDirectoryClient(account_url, share, directory,
                                      credential=AzureNamedKeyCredential(account.name, account.key))
        try:
            with client:
                items = list(client.list_directories_and_files(include=["timestamps"]))
        except ResourceNotFoundError:
            return []
        except AzureError as exc:
            raise ShareUnreachable(str(getattr(exc, "message", None) or exc).splitlines()[0][:500]) from exc
        entries = []
        for item in items:
            if isinstance(item, DirectoryProperties):
                entries.append(ShareEntry(item.name, True))
                continue
            path = posixpath.join(directory, item.name) if directory else item.name
            sas = generate_file_sas(account.name, share, path.split("/"), account_key=account.key,
                                    permission=FileSasPermissions(read=True), expiry=expires)
            entries.append(ShareEntry(item.name, False, item.size or 0, _utc(item.last_modified),
                                      f"{account_url}/{quote(share)}/{quote(path)}?{sas}"))
        return sorted(entries, key=lambda e: e.name)


def _utc(moment: datetime | None) -> datetime | None:
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment
