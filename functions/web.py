"""The web page (shared/web/): its static files at GET /ui/ and /ui/{file}.

These routes need no token: the files hold no data, only the page's markup, style and code. Every
data call the page makes goes to the public API with the user's `Authorization: Bearer <token>`,
like any other client's. Only files of shared/web/ with a known type are served; anything else,
a path leaving the folder included, is a 404."""

from __future__ import annotations

import hashlib
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import azure.functions as func

import shared
from functions.http_api import to_http_response
from functions import blueprint, tracing
from shared.api.request import ApiResponse
from shared.errors import cloud_error

bp = blueprint()

WEB_ROOT = Path(shared.__file__).parent / "web"  # resolved when a file is asked for: no I/O at import
CONTENT_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml",
                 ".json": "application/json"}  # all UTF-8 text
# The page talks only to its own origin, and to download URLs (signed blob URLs on Azure).
HEADERS = {
    "Cache-Control": "no-cache",  # always revalidated (ETag): a new version shows at the next load
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": ("default-src 'self'; connect-src 'self' https:; img-src 'self' data:; "
                                "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
}


@bp.function_name("Web_Index")
@bp.route(route="ui", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@tracing.traced_function("Web_Index")
def index(req: func.HttpRequest) -> func.HttpResponse:
    if not urlsplit(req.url).path.endswith("/"):  # /ui -> /ui/, so that the page's relative URLs resolve
        return func.HttpResponse(status_code=301, headers={"Location": "ui/", "Cache-Control": "no-cache"})
    return serve(req, "index.html")


@bp.function_name("Web_File")
@bp.route(route="ui/{*path}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@tracing.traced_function("Web_File")
def file(req: func.HttpRequest) -> func.HttpResponse:
    return serve(req, req.route_params.get("path") or "index.html")


def serve(req: func.HttpRequest, name: str) -> func.HttpResponse:
    path = resolve(name)
    if path is None:
        return to_http_response(ApiResponse(404, cloud_error("NotFound", "The web page has no such file.")))
    content = path.read_bytes()
    etag = '"' + hashlib.sha256(content).hexdigest()[:32] + '"'
    headers = {**HEADERS, "ETag": etag}
    if req.headers.get("If-None-Match") == etag:
        return func.HttpResponse(status_code=304, headers=headers)
    return func.HttpResponse(body=content, status_code=200, headers=headers, mimetype=CONTENT_TYPES[path.suffix],
                             charset="utf-8")


def resolve(name: str) -> Path | None:
    """The file of shared/web/ that `name` names, or None: no '..', no hidden files, no folders."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if not parts or any(p in ("..", "/") or p.startswith(".") or "\0" in p for p in parts):
        return None
    root = WEB_ROOT.resolve()
    path = root.joinpath(*parts).resolve()
    if not path.is_relative_to(root) or not path.is_file() or path.suffix not in CONTENT_TYPES:
        return None
    return path
