"""The local host's owner token: made at its first start in `<data-dir>/token` (mode 0600), kept
across restarts, read by the CLI from the same folder."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def ensure(path: Path) -> str:
    """The token in `path`, created first if there is none."""
    try:
        return read(path) or _create(path)
    except FileNotFoundError:
        return _create(path)


def read(path: Path) -> str:
    return path.read_text().strip()


def _create(path: Path) -> str:
    token = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
        out.write(token + "\n")
    return token
