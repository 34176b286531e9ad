"""Experiments: named groups of jobs inside a workspace; they have no properties of their own."""

from __future__ import annotations

from typing import Any

from shared import errors
from shared.api.generic import put_resource, route_ref, timestamp
from shared.api.request import ApiRequest, ApiResponse
from shared.composition import Services
from shared.ids import EXPERIMENT
from shared.resources import envelope


def create(svc: Services, req: ApiRequest) -> ApiResponse:
    ref = route_ref(EXPERIMENT, req)
    if req.body.strip() not in (b"", b"{}", b"null"):
        raise errors.InvalidRequestContent("Creating an experiment takes no request body.", target="body")

    def build() -> tuple[dict[str, Any], None]:
        now = timestamp(svc.clock.now())
        return envelope(ref, {"creationTime": now, "provisioningState": "succeeded",
                              "provisioningStateTransitionTime": now}), None

    return put_resource(svc, ref, build, lambda doc: None)
