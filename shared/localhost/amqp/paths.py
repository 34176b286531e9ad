"""Entity paths in link addresses and token audiences (no proton here: the SAS check uses them too)."""

from __future__ import annotations


def entity_path(address: str | None) -> str:
    """The entity part of an address: clients may send 'amqp://host:port/queue', 'sb://host/queue' or 'queue'."""
    if not address:
        return ""
    if "://" in address:
        address = address.split("://", 1)[1]
        address = address.split("/", 1)[1] if "/" in address else ""
    return address.strip("/")


def covers(granted: str, path: str) -> bool:
    """Whether a grant for one entity path ("" for the whole namespace) covers a path: itself or under it."""
    granted, path = granted.strip("/").lower(), path.strip("/").lower()
    return not granted or path == granted or path.startswith(granted + "/")
