"""GET files/{*path}: the local host's answer to a signed download URL (shared/signed_urls.py).

Paths are relative to the data folder, which the signer guards: the URL must carry a valid
signature and an expiry still ahead, the path may not leave the folder (also through symlinks),
and what it names must be a file. Errors are CloudErrors naming the query parameter or the path.
"""

from __future__ import annotations

from datetime import UTC, datetime

from shared import errors
from shared.api.request import ApiRequest, ApiResponse
from shared.composition import Services
from shared.signed_urls import PathRefused, UrlSigner


class AuthenticationFailed(errors.ApiError):
    status, code = 403, "AuthenticationFailed"


def download(svc: Services, req: ApiRequest) -> ApiResponse:
    return serve_file(svc.signer, req.route.get("path", ""), req.query.get("se"), req.query.get("sig"),
                      svc.clock.now())


def serve_file(signer: UrlSigner, path: str, se: str | None, sig: str | None, now: datetime) -> ApiResponse:
    """The file's bytes, or why not (403 for the URL, 404 for the file)."""
    problem = signer.problem(path, se, sig, now)
    if problem == "sig":
        raise AuthenticationFailed("The URL's signature (sig) does not match its path and expiry.", target="sig")
    if problem == "se":  # missing, malformed, or (the signature being valid) past
        when = _moment(se)
        raise AuthenticationFailed(f"The URL expired at {when}." if when else "The URL has no valid expiry (se).",
                                   target="se")
    try:
        local = signer.local_path(path)
    except PathRefused:
        raise AuthenticationFailed("The path leads outside the served folder.", target="path") from None
    try:
        data = local.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise errors.ResourceNotFound("No file is at this path.", target="path") from None
    return ApiResponse(200, data, {"content-type": "application/octet-stream"})


def _moment(se: str | None) -> str | None:
    try:
        return datetime.fromtimestamp(int(se or ""), UTC).isoformat()
    except (ValueError, OverflowError, OSError):
        return None
