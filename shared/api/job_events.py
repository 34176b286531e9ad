"""A job's events (beside Batch AI's API): GET .../experiments/{e}/jobs/{j}/events answers the
CloudEvents of the job's state changes, oldest first — the last events.HISTORY_LIMIT of them, kept
on the job's document by the same writes that change its state (shared/events.py). The web page
draws its timeline from them. They carry no job properties, so readers may see them all."""

from __future__ import annotations

from shared import resources
from shared.api.generic import route_ref
from shared.api.request import ApiRequest, ApiResponse, int_param, page_of
from shared.composition import Services
from shared.documents.resources import JobDocument
from shared.ids import JOB


def list_events(svc: Services, req: ApiRequest) -> ApiResponse:
    ref = route_ref(JOB, req)
    job = resources.require(svc.store, ref, JobDocument)
    max_results = int_param(req, "maxresults", 1000, 1, 1000)
    return page_of([e.model_dump(mode="json", by_alias=True) for e in job.event_history], req, max_results)
