"""Signed download URLs for files under the local host's data folder.

The local host plays the part Azure Storage's SAS plays on Azure: anyone holding a URL may GET one
file until it expires, and nobody can alter the path or the expiry without the key. A URL is

    <base>/files/<relative path, percent-encoded>?se=<expiry, unix seconds>&sig=<signature>

where the signature is HMAC-SHA256 over "v1", the relative path (decoded, '/'-separated) and `se`,
in URL-safe base64 without padding. Paths are relative to one root (the data folder) and may not
leave it: '..', '.', empty segments, backslashes and NULs are refused when signing and when
serving. Only the served areas of the root are ever signed or served (the local host's: job
folders of its nodes, storage and blob folders — never its token, key or databases), and a file is
served only if no link lies on its way from the root (a job may plant one that leads anywhere).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import stat
import tempfile
from collections.abc import Callable, Sequence
from fnmatch import fnmatchcase
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
    """Signs and checks download URLs for files below `root`, in its `areas`.

    `key` may be a callable, resolved on first use, so that building the signer (at every start,
    also on Azure where it may never be used) reads and writes nothing. `base_url_provider` is asked
    at each signing, since the local host's address can change between runs. `areas` are the
    folders whose files may be served, '/'-separated below the root, `*` standing for any one name
    ("pools/*/*/jobs"); the default, "", is the whole root."""

    def __init__(self, key: bytes | Callable[[], bytes], base_url_provider: Callable[[], str],
                 root: Path, areas: Sequence[str] = ("",)) -> None:
        self._key = key
        self._base_url = base_url_provider
        self.root = Path(os.path.abspath(root))
        self._areas = [tuple(area.split("/")) if area else () for area in areas]

    def __repr__(self) -> str:
        return f"UrlSigner(root={str(self.root)!r})"  # never the key

    def url(self, kind: str, *parts: str, expires: datetime) -> str:
        """The URL of root/kind/parts...; a part may hold '/' (a blob name)."""
        return self._signed("/".join(self._in_area("/".join((kind, *parts)))), expires)

    def url_for(self, path: Path, expires: datetime) -> str:
        """The URL of an absolute (or cwd-relative) path in a served area; it need not exist yet."""
        return self._signed(self.relative(path), expires)

    def relative(self, path: Path) -> str:
        """The name below the root of a path in a served area, as URLs carry it; PathRefused for a
        path with a '..' or outside the areas. Links are not followed (`read` refuses them)."""
        if ".." in Path(path).parts:
            raise PathRefused(f"{path} climbs with '..'")
        absolute = Path(os.path.abspath(path))
        for root in (self.root, self.root.resolve()):  # the root itself may be reached through a link
            if absolute.is_relative_to(root) and absolute != root:
                relative = absolute.relative_to(root).as_posix()
                self._in_area(relative)
                return relative
        raise PathRefused(f"{path} is not a file below {self.root}")

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

    def real_path(self, relative_path: str) -> Path:
        """The path a relative name stands for, if it is in a served area and no link lies on its
        way from the root (it need not exist); PathRefused otherwise."""
        root = self.root.resolve()
        candidate = root.joinpath(*self._in_area(relative_path))
        if candidate.resolve() != candidate:
            raise PathRefused(f"{relative_path!r} is reached through a link")
        return candidate

    def read(self, relative_path: str) -> bytes:
        """The bytes of the file a relative name stands for (see real_path). The file is opened
        without following a link, and the opened file's own path is checked, so that a link swapped
        in after the check cannot lead elsewhere. FileNotFoundError/IsADirectoryError if no file."""
        path = self.real_path(relative_path)
        try:  # O_NONBLOCK: a FIFO a job made must not hold the server
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except (FileNotFoundError, NotADirectoryError):
            raise FileNotFoundError(relative_path) from None
        except OSError:  # ELOOP: the file itself became a link since the check
            raise PathRefused(f"{relative_path!r} cannot be opened as a plain file") from None
        with os.fdopen(fd, "rb") as opened:
            if os.readlink(f"/proc/self/fd/{fd}") != str(path):
                raise PathRefused(f"{relative_path!r} was reached through a link")
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise IsADirectoryError(relative_path)
            return opened.read()

    def _in_area(self, relative_path: str) -> list[str]:
        """The segments of a relative name inside one of the served areas (PathRefused if not)."""
        segments = split_relative(relative_path)
        for area in self._areas:
            if len(segments) > len(area) and all(fnmatchcase(s, a) for s, a in zip(segments, area)):
                return segments
        raise PathRefused(f"{relative_path!r} is not in a folder that is served")

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

