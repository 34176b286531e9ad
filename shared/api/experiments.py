"""Experiments: named groups of jobs inside a workspace; they have no properties of their own."""

from __future__ import annotations

from shared import errors
from shared.api.generic import put_resource, route_ref, timestamp
from shared.api.request import ApiRequest, ApiResponse
from shared.composition import Services
from shared.documents.resources import ExperimentDocument
from shared.ids import EXPERIMENT
from shared.resources import envelope, new_document


def create(svc: Services, req: ApiRequest) -> ApiResponse:
    ref = route_ref(EXPERIMENT, req)
    if req.body.strip() not in (b"", b"{}", b"null"):
        raise errors.InvalidRequestContent("Creating an experiment takes no request body.", target="body")

    def build() -> ExperimentDocument:
        now = timestamp(svc.clock.now())
        return new_document(ref, ExperimentDocument, envelope(ref, {
            "creationTime": now, "provisioningState": "succeeded", "provisioningStateTransitionTime": now}))

    return put_resource(svc, ref, ExperimentDocument, build, lambda doc: False)
