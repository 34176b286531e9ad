"""Blob storage on Azure Storage (or Azurite), through azure-storage-blob.

Each call names its account with the account's key (it belongs to the volume, not to settings),
so one BlobServiceClient is kept per account, signed with the shared key; download URLs are blob
SAS URLs with read permission only. Nothing here does I/O until a method is called.
"""

from __future__ import annotations

import os
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobClient, BlobPrefix, BlobSasPermissions, BlobServiceClient, generate_blob_sas

from shared.ports.blob_store import Account, BlobEntry, BlobNotFound, BlobStore

DEFAULT_ENDPOINT = "https://{account}.blob.core.windows.net"


class AzureBlobStore(BlobStore):
    def __init__(self, endpoint_template: str = DEFAULT_ENDPOINT, api_version: str | None = None) -> None:
        """`endpoint_template` holds `{account}`: Azurite's is http://127.0.0.1:<port>/{account}.
        `api_version` pins the REST version for servers older than the SDK."""
        if "{account}" not in endpoint_template:
            raise ValueError("the blob endpoint template must contain {account}")
        self.endpoint_template = endpoint_template
        self.api_version = api_version
        self._clients: dict[str, tuple[str, BlobServiceClient]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"AzureBlobStore(endpoint_template={self.endpoint_template!r})"

    def create_container(self, account: Account, container: str) -> None:
        try:
            self._service(account).create_container(container)
        except ResourceExistsError:
            pass

    def upload(self, account: Account, container: str, name: str, source: Path) -> None:
        with open(source, "rb") as data:
            self._put(account, container, name, data)

    def upload_bytes(self, account: Account, container: str, name: str, data: bytes) -> None:
        self._put(account, container, name, data)

    def download(self, account: Account, container: str, name: str, target: Path) -> None:
        """Into a temporary file beside the target, renamed when complete."""
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as out:
                try:
                    self._blob(account, container, name).download_blob().readinto(out)
                except ResourceNotFoundError:
                    raise BlobNotFound(f"{account.name}/{container}/{name}") from None
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise

    def read_bytes(self, account: Account, container: str, name: str) -> bytes:
        try:
            return self._blob(account, container, name).download_blob().readall()
        except ResourceNotFoundError:
            raise BlobNotFound(f"{account.name}/{container}/{name}") from None

    def list(self, account: Account, container: str, prefix: str = "", delimiter: str | None = "/"
             ) -> list[BlobEntry]:
        client = self._service(account).get_container_client(container)
        try:
            if delimiter:
                items = list(client.walk_blobs(name_starts_with=prefix or None, delimiter=delimiter))
            else:
                items = list(client.list_blobs(name_starts_with=prefix or None))
        except ResourceNotFoundError:
            return []
        entries = [BlobEntry(item.name, is_directory=True) if isinstance(item, BlobPrefix)
                   else BlobEntry(item.name, False, item.size, _utc(item.last_modified)) for item in items]
        return sorted(entries, key=lambda e: e.name)

    def delete(self, account: Account, container: str, name: str) -> None:
        try:
            self._blob(account, container, name).delete_blob()
        except ResourceNotFoundError:
            pass

    def download_url(self, account: Account, container: str, name: str, expires: datetime) -> str:
        blob = self._blob(account, container, name)
        sas = generate_blob_sas(account.name, container, name, account_key=account.key,
                                permission=BlobSasPermissions(read=True), expiry=expires)
        return f"{blob.url}?{sas}"

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, {}
        for _, client in clients.values():
            client.close()

    def _put(self, account: Account, container: str, name: str, data: bytes | IO[bytes]) -> None:
        try:
            self._blob(account, container, name).upload_blob(data, overwrite=True)
        except ResourceNotFoundError:  # the container is missing
            raise BlobNotFound(f"the container {account.name}/{container} does not exist") from None

    def _blob(self, account: Account, container: str, name: str) -> BlobClient:
        return self._service(account).get_blob_client(container, name)

    def _service(self, account: Account) -> BlobServiceClient:
        """The account's client, rebuilt if its key changed (a rotated key)."""
        with self._lock:
            known = self._clients.get(account.name)
            if known is not None and known[0] == account.key:
                return known[1]
            options: dict[str, Any] = {"api_version": self.api_version} if self.api_version else {}
            client = BlobServiceClient(self.endpoint_template.format(account=account.name),
                                       credential={"account_name": account.name, "account_key": account.key},
                                       **options)
            self._clients[account.name] = (account.key, client)
        if known is not None:
            known[1].close()
        return client


def _utc(moment: datetime | None) -> datetime | None:
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment
