"""Liveness: answers without touching any dependency, so probes never pile up behind the store."""

from __future__ import annotations

import azure.functions as func

from functions import blueprint

bp = blueprint()


@bp.function_name("Health")
@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse('{"status":"ok"}', status_code=200, mimetype="application/json")
