"""HTTP trigger that serves the local host's signed download URLs (shared/api/files.py): files
under the data folder, such as blobs of the local folder store."""

from __future__ import annotations

import azure.functions as func

from functions.http_api import guarded, to_api_request, to_http_response
from functions import blueprint, tracing
from shared.api import files
from shared.composition import services

bp = blueprint()


@bp.function_name("Files_Download")
@bp.route(route="files/{*path}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@tracing.traced_function("Files_Download")
def download(req: func.HttpRequest) -> func.HttpResponse:
    return to_http_response(guarded("Files_Download", lambda: files.download(services(), to_api_request(req))))
