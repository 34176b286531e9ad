"""GET /openapi.json: the API's OpenAPI 3.1 document, generated from the models (shared/api/openapi.py),
so that clients and test tools read what the service really accepts and answers."""

from __future__ import annotations

import azure.functions as func

from functions.http_api import guarded, to_api_request, to_http_response
from functions import blueprint, tracing
from shared.api import access, openapi
from shared.api.request import ApiResponse, ok
from shared.composition import services

bp = blueprint()


@bp.function_name("OpenApi_Document")
@bp.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@tracing.traced_function("OpenApi_Document")
def document(req: func.HttpRequest) -> func.HttpResponse:
    def run() -> ApiResponse:
        access.check(services(), to_api_request(req), "OpenApi_Document")  # any authenticated caller
        return ok(openapi.document())

    return to_http_response(guarded("OpenApi_Document", run))
