"""GET files/{*path}: the local host's answer to a signed download URL (shared/signed_urls.py).

Paths are relative to the data folder, which the signer guards: the URL must carry a valid
signature and an expiry still ahead, the path must be in a served area of the folder and reached
through no link, and what it names must be a plain file. Errors are CloudErrors naming the query parameter or the path.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from shared import errors
from shared.api.request import ApiRequest, ApiResponse
from shared.composition import Services
from shared.signed_urls import PathRefused, UrlSigner


class AuthenticationFailed(errors.ApiError):
    status, code = 403, "AuthenticationFailed"


def download(svc: Services, req: ApiRequest) -> ApiResponse:
    headers = {k.lower(): v for k, v in req.headers.items()}
    return serve_file(svc.signer, req.route.get("path", ""), req.query.get("se"), req.query.get("sig"),
                      svc.clock.now(), headers.get("range"))


def serve_file(signer: UrlSigner, path: str, se: str | None, sig: str | None, now: datetime,
               byte_range: str | None = None) -> ApiResponse:
    """The file's bytes (or the asked range of them, as blob storage does, so that a growing log is
    followed by reading only what is new), or why not (403 for the URL, 404 for the file)."""
    problem = signer.problem(path, se, sig, now)
    if problem == "sig":
        raise AuthenticationFailed("The URL's signature (sig) does not match its path and expiry.", target="sig")
    if problem == "se":  # missing, malformed, or (the signature being valid) past
        when = _moment(se)
        raise AuthenticationFailed(f"The URL expired at {when}." if when else "The URL has no valid expiry (se).",
                                   target="se")
    try:
        data = signer.read(path)
    except PathRefused:
        raise AuthenticationFailed("The path leads outside the served folders (or through a link).",
                                   target="path") from None
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise errors.ResourceNotFound("No file is at this path.", target="path") from None
    plain = {"content-type": "application/octet-stream", "accept-ranges": "bytes"}
    wanted = _byte_range(byte_range, len(data))
    if wanted is None:
        return ApiResponse(200, data, plain)
    start, end = wanted
    if start >= len(data):
        return ApiResponse(416, b"", {**plain, "content-range": f"bytes */{len(data)}"})
    return ApiResponse(206, data[start:end + 1], {**plain, "content-range": f"bytes {start}-{end}/{len(data)}"})


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) of a single `bytes=first-[last]` range; None (the whole file) for anything else."""
    match = re.fullmatch(r"bytes=(\d+)-(\d*)", (header or "").strip())
    if not match:
        return None
    first = int(match.group(1))
    last = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
    return (first, last) if not match.group(2) or first <= int(match.group(2)) else None


def _moment(se: str | None) -> str | None:
    try:
        return datetime.fromtimestamp(int(se or ""), UTC).isoformat()
    except (ValueError, OverflowError, OSError):
        return None
