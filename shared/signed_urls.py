"""Signed download URLs for files under the local host's data folder.

The local host plays the part Azure Storage's SAS plays on Azure: anyone holding a URL may GET one
file until it expires, and nobody can alter the path or the expiry without the key. A URL is

    <base>/files/<relative path, percent-encoded>?se=<expiry, unix seconds>&sig=<signature>

where the signature is HMAC-SHA256 over "v1", the relative path (decoded, '/'-separated) and `se`,
in URL-safe base64 without padding. Paths are relative to one root (the data folder) and may not
leave it: '..', '.', empty segments, backslashes and NULs are refused when signing and when
serving, and `local_path` refuses a path whose symlinks lead outside the root.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from urllib.parse import quote, urlencode

KEY_BYTES = 32
ROUTE = "files"  # the HTTP route that serves these URLs (functions/files.py)
_VERSION = b"v1"


class PathRefused(ValueError):
    """A relative path that is malformed or would leave the signer's root."""


def split_relative(path: str) -> list[str]:
    """The segments of a '/'-separated relative path, refusing anything that could leave a root."""
    segments = path.split("/")
    for segment in segments:
        if segment in ("", ".", "..") or "\\" in segment or "\x00" in segment:
            raise PathRefused(f"not a plain relative path: {path!r}")
    return segments


def load_or_create_key(path: Path) -> bytes:
    """The signing key kept in `path`, created (32 random bytes, mode 0600) if missing.

    Creation writes a private temporary file and hard-links it into place, so two processes that
    start together end up with the same key and nobody ever reads a half-written one."""
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".key-")  # mode 0600
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(secrets.token_bytes(KEY_BYTES))
                out.flush()
                os.fsync(out.fileno())
            try:
                os.link(temp, path)
            except FileExistsError:
                pass  # another process made it first: use theirs
        finally:
            os.unlink(temp)
        key = path.read_bytes()
    if len(key) != KEY_BYTES:
        raise ValueError(f"{path} does not hold a URL signing key ({KEY_BYTES} bytes expected)")
    return key


class UrlSigner:
    """Signs and checks download URLs for files below `root`.

    `key` may be a callable, resolved on first use, so that building the signer (at every start,
    also on Azure where it may never be used) reads and writes nothing. `base_url_provider` is asked
    at each signing, since the local host's address can change between runs."""

    def __init__(self, key: bytes | Callable[[], bytes], base_url_provider: Callable[[], str],
                 root: Path) -> None:
        self._key = key
        self._base_url = base_url_provider
        self.root = Path(os.path.abspath(root))

    def __repr__(self) -> str:
        return f"UrlSigner(root={str(self.root)!r})"  # never the key

    def url(self, kind: str, *parts: str, expires: datetime) -> str:
        """The URL of root/kind/parts...; a part may hold '/' (a blob name)."""
        return self._signed("/".join(split_relative("/".join((kind, *parts)))), expires)

    def url_for(self, path: Path, expires: datetime) -> str:
        """The URL of an absolute (or cwd-relative) path inside the root; it need not exist yet."""
        absolute, root = Path(os.path.abspath(path)), self.root
        if not absolute.is_relative_to(root):  # perhaps reached through a symlinked folder
            absolute, root = absolute.resolve(), root.resolve()
        if not absolute.is_relative_to(root) or absolute == root:
            raise PathRefused(f"{path} is not a file below {self.root}")
        return self._signed("/".join(split_relative(absolute.relative_to(root).as_posix())), expires)

    def sign(self, relative_path: str, se: int) -> str:
        """The signature of a relative path and expiry; checks nothing (url/url_for do)."""
        message = b"\n".join((_VERSION, relative_path.encode(), str(se).encode()))
        digest = hmac.new(self._secret(), message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def problem(self, relative_path: str, se: str | None, sig: str | None, now: datetime) -> str | None:
        """Which query parameter makes the URL invalid ('se' or 'sig'), or None if it is valid."""
        if not se or not se.isascii() or not se.isdigit() or len(se) > 18:  # int() refuses 4300+ digits
            return "se"
        if not sig or not hmac.compare_digest(self.sign(relative_path, int(se)).encode(), sig.encode()):
            return "sig"
        if now.timestamp() >= int(se):
            return "se"
        return None

    def verify(self, relative_path: str, se: str | None, sig: str | None, now: datetime) -> bool:
        """True if the signature matches (compared in constant time) and the URL has not expired."""
        return self.problem(relative_path, se, sig, now) is None

    def local_path(self, relative_path: str) -> Path:
        """The file a relative path names, symlinks resolved; PathRefused if it leads outside root."""
        candidate = self.root.joinpath(*split_relative(relative_path)).resolve()
        if not candidate.is_relative_to(self.root.resolve()):
            raise PathRefused(f"{relative_path!r} leads outside {self.root}")
        return candidate

    def _signed(self, relative_path: str, expires: datetime) -> str:
        if expires.tzinfo is None:
            raise ValueError("expires must be timezone-aware")
        se = int(expires.timestamp())
        query = urlencode({"se": se, "sig": self.sign(relative_path, se)})
        return f"{self._base_url().rstrip('/')}/{ROUTE}/{quote(relative_path, safe='/')}?{query}"

    def _secret(self) -> bytes:
        if callable(self._key):
            self._key = self._key()
        return self._key

