"""Sweeps (beside Batch AI's API, under an experiment): create, get, list, delete, cancel, and
list a sweep's trials. A create is checked whole before anything is stored: the space is not
empty, every placeholder names a parameter, the template with the first trial's values is a valid
job of an existing cluster, a grid fits the trial budget, every regex compiles (400s that name the
field). The search then runs in the sweep timer (shared/sweeps/driver.py)."""

from __future__ import annotations

import copy
import json
import logging
import re
from collections.abc import Callable
from functools import partial

from pydantic import JsonValue, ValidationError

from shared import errors, job_files, resources
from shared.api import jobs
from shared.api.generic import list_children, put_resource, refuse_changes, route_ref, stamp_deleting, timestamp
from shared.api.request import ApiRequest, ApiResponse, ok, page_of, parse_body, validation_error
from shared.composition import Services
from shared.documents.base import JsonObject
from shared.documents.resources import ResourceDocument, SweepDocument, SweepSpec
from shared.ids import JOB, SWEEP, ResourceRef
from shared.models import JobBaseProperties
from shared.ports.blob_store import Account
from shared.sweeps import driver, space
from shared.sweeps.models import Algorithm, SweepCreateParameters, SweepProperties, SweepState
from shared.sweeps.search import Space
from shared.sweeps.template import placeholders, trial_job
from shared.volumes import AZURE_FILE_SHARE, Volume, local_folder

_EXP = ("subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.BatchAI"
        "/workspaces/{workspaceName}/experiments/{experimentName}")
_SWEEP = _EXP + "/sweeps/{sweepName}"
# (operation id, method, route) of the sweeps' operations (functions/sweeps.py, the OpenAPI document).
ROUTES: tuple[tuple[str, str, str], ...] = (
    ("Sweeps_Create", "PUT", _SWEEP),
    ("Sweeps_Get", "GET", _SWEEP),
    ("Sweeps_Delete", "DELETE", _SWEEP),
    ("Sweeps_ListByExperiment", "GET", _EXP + "/sweeps"),
    ("Sweeps_Cancel", "POST", _SWEEP + "/cancel"),
    ("Sweeps_ListTrials", "GET", _SWEEP + "/trials"),
)
TEMPLATE = "properties.jobTemplate"
log = logging.getLogger(__name__)
MAX_NAME = 58  # trials are jobs named <sweep>-NNNN, and job names have at most 64 characters
MAX_FILES = 10_000


def create(svc: Services, req: ApiRequest) -> ApiResponse:
    ref = route_ref(SWEEP, req)
    if len(ref.name) > MAX_NAME:
        raise errors.InvalidParameter(f"The sweepName must have at most {MAX_NAME} characters (its trials are "
                                      "jobs named <sweep>-NNNN).", target="sweepName")
    props = parse_body(SweepCreateParameters, req).properties
    resources.require_parent(svc.store, ref)
    files = list_files(svc, props)
    sp = Space(props, files)
    check(svc, ref, sp)
    wanted = props.to_wire(reveal_secrets=True)  # the body as created, compared by a repeated PUT

    def build() -> SweepDocument:
        now = timestamp(svc.clock.now())
        properties = public(props) | {
            "plannedTrials": sp.planned(), "creationTime": now, "provisioningState": "succeeded",
            "provisioningStateTransitionTime": now, "executionState": SweepState.RUNNING.value,
            "executionStateTransitionTime": now}
        return resources.new_document(ref, SweepDocument, resources.envelope(ref, properties),
                                      SweepSpec(properties=props, files=files), state=SweepState.RUNNING.value)

    def reconcile(doc: SweepDocument) -> bool:
        refuse_changes(SWEEP, doc.spec.properties.to_wire(reveal_secrets=True), wanted)
        return False

    return put_resource(svc, ref, SweepDocument, build, reconcile, created=lambda doc: first_round(svc, doc))


def first_round(svc: Services, doc: SweepDocument) -> SweepDocument:
    """The first trials start with the create; if that fails, the sweep timer's next round starts them."""
    try:
        return driver.advance(svc, doc) or doc
    except Exception:
        log.exception("sweep %s: the first round failed; the timer tries again", doc.id)
        return doc


# The wire names of a job's secret fields (the models' _secret_fields), and a secret's value.
SECRET_NAMES = frozenset({"accountKey", "password", "adminUserPassword", "instrumentationKey"})


def public(props: SweepProperties) -> JsonObject:
    """The body as reads return it: no secret values (the template's secrets, storage keys and
    passwords, a file parameter's key) — invariant 7, as for a job."""
    out = props.to_wire()
    out["jobTemplate"] = _without_secrets(copy.deepcopy(out["jobTemplate"]), "")
    return out


def _without_secrets(value: JsonValue, key: str) -> JsonValue:
    if isinstance(value, dict):
        return {k: _without_secrets(v, k) for k, v in value.items()
                if k not in SECRET_NAMES and not (key == "secrets" and k == "value")}
    if isinstance(value, list):
        return [_without_secrets(item, key) for item in value]
    return value


def check(svc: Services, ref: ResourceRef, sp: Space) -> None:
    """Everything a sweep must be before it is stored."""
    props = sp.props
    for index, (parameter, values) in enumerate(zip(props.parameters, sp.values, strict=True)):
        if values is not None and not values:
            raise errors.InvalidParameter(
                f"The parameter '{parameter.parameter_name}' has no values (no file matched).",
                target=f"properties.parameters[{index}]")
        if values is None and props.sampling.algorithm == Algorithm.GRID:
            raise errors.InvalidParameter(
                f"A grid needs the values of '{parameter.parameter_name}': give step (LINEAR) or numValues.",
                target=f"properties.parameters[{index}]")
    if props.sampling.algorithm == Algorithm.GRID and sp.grid_size() > props.budget.max_trials:
        raise errors.InvalidParameter(
            f"The grid has {sp.grid_size()} points, more than budget.maxTrials ({props.budget.max_trials}).",
            target="properties.budget.maxTrials")
    if props.budget.max_concurrent_trials > props.budget.max_trials:
        raise errors.InvalidParameter("budget.maxConcurrentTrials must be at most budget.maxTrials.",
                                      target="properties.budget.maxConcurrentTrials")
    known = space.placeholder_names(list(props.parameters))
    for name, where in placeholders(props.job_template, TEMPLATE):
        if name not in known:
            raise errors.InvalidParameter(
                f"The placeholder '{{{{{name}}}}}' names no parameter; known: {', '.join(sorted(known))}.",
                target=where)
    first = trial_job(props.job_template, sp.assignment(sp.grid_choice(0) if props.sampling.algorithm ==
                                                         Algorithm.GRID else first_choice(sp)))
    try:
        job = JobBaseProperties.model_validate_json(json.dumps(first), by_alias=True, by_name=False)
    except ValidationError as exc:
        raise validation_error(exc, TEMPLATE) from None
    wire = job.to_wire(reveal_secrets=True)
    try:
        job_files.check_folder_paths(wire)
        jobs.cluster_of(svc, ref.parent.child(JOB, driver.job_name(ref.name, 0)), wire["cluster"]["id"])  # type: ignore[union-attr]
    except errors.ApiError as exc:
        exc.target = (exc.target or "").replace("properties.", TEMPLATE + ".", 1)
        raise


def first_choice(sp: Space) -> dict[str, int | float]:
    """A point of the space to check the template with: each parameter's first value or its start."""
    out: dict[str, int | float] = {}
    for p in sp.props.parameters:
        out[p.parameter_name] = p.start if isinstance(p, space.NumericParameter) else 0
    return out


def list_files(svc: Services, props: SweepProperties) -> dict[str, list[str]]:
    """The files of each file parameter, as paths on the node; listed once, at create."""
    found: dict[str, list[str]] = {}
    for index, p in enumerate(props.parameters):
        if isinstance(p, space.FileParameter):
            found[p.parameter_name] = _files(svc, p, f"properties.parameters[{index}]")
    return found


def _files(svc: Services, p: space.FileParameter, target: str) -> list[str]:
    root = "$AZ_BATCHAI_JOB_MOUNT_ROOT" if p.mount_method == "JOB" else "$AZ_BATCHAI_MOUNT_ROOT"
    directory = (p.directory or "").strip("/")
    pattern = re.compile(p.filter_str) if p.filter_str is not None else None
    names: list[str] = []
    if p.storage_type == space.StorageType.BLOB:
        account = Account(p.storage_account_name, p.storage_account_key or "")
        try:
            blobs = svc.blobs.list(account, p.container or "", directory + "/" if directory else "", delimiter=None)
            names = [b.name for b in blobs if not b.is_directory]
        except Exception:
            raise errors.InvalidParameter(f"The container '{p.container}' could not be listed.",
                                          target=target + ".container") from None
    elif svc.settings.pool == "local":
        volume = Volume(kind=AZURE_FILE_SHARE, relative_mount_path=p.mount_path, account=p.storage_account_name,
                        share=p.fileshare or "")
        base = local_folder(volume, svc.settings.storage_dir)
        folder = (base / directory if directory else base).resolve()
        if folder.is_dir() and folder.is_relative_to(base.resolve()):  # no link leads out of the share
            names = sorted(str(f.relative_to(base.resolve())) for f in folder.rglob("*")
                           if f.is_file() and not f.is_symlink())
    else:
        raise errors.InvalidParameter("File shares are listed on the local pool only; use a BLOB container.",
                                      target=target + ".storageType")
    names = [n for n in sorted(names) if pattern is None or pattern.match(n)][:MAX_FILES]
    return [f"{root}/{p.mount_path}/{n}" for n in names]


def get(svc: Services, req: ApiRequest) -> ApiResponse:
    return ok(resources.require(svc.store, route_ref(SWEEP, req)).wire())


def list_trials(svc: Services, req: ApiRequest) -> ApiResponse:
    """The sweep's trials, each with its job's id, parameters, state, reason and metrics."""
    ref = route_ref(SWEEP, req)
    doc = resources.require(svc.store, ref, SweepDocument)
    values = [t.to_wire() | {"jobId": driver.job_ref(ref, t).arm_id} for t in driver.trials_of(doc)]
    for value in values:
        value.pop("choice", None)
        value.pop("prunerMarks", None)
    return page_of(values, req, 1000)


def cancel(svc: Services, req: ApiRequest) -> ApiResponse:
    ref = route_ref(SWEEP, req)
    return ok(driver.cancel(svc, ref).wire())


def delete(svc: Services, req: ApiRequest) -> ApiResponse:
    """Delete the sweep and its trials' jobs (their processes stopped). The sweep is first marked
    deleting, so no round starts a trial meanwhile and a repeated delete finishes one cut short."""
    from shared.api.generic import stop_running_parts

    ref = route_ref(SWEEP, req)
    doc = resources.load(svc.store, ref, SweepDocument)
    if doc is None:
        resources.require(svc.store, ref.parent)  # type: ignore[arg-type]
        return ApiResponse(204)
    now = timestamp(svc.clock.now())

    def stamp(current: ResourceDocument) -> None:
        if isinstance(current, SweepDocument):
            current.state = driver.DELETING
        stamp_deleting(current, now)

    def mark(current: SweepDocument) -> bool:
        stamp(current)
        return True

    resources.mutate_doc(svc.store, doc, mark)
    for trial in driver.trials_of(doc):
        resources.delete_tree(svc.store, driver.job_ref(ref, trial), lambda job: stamp_deleting(job, now),
                              lambda job: stop_running_parts(svc, job))
    resources.delete_tree(svc.store, ref, stamp)
    return ApiResponse(200)


HANDLERS: dict[str, Callable[[Services, ApiRequest], ApiResponse]] = {
    "Sweeps_Create": create, "Sweeps_Get": get, "Sweeps_Delete": delete,
    "Sweeps_ListByExperiment": partial(list_children, SWEEP), "Sweeps_Cancel": cancel,
    "Sweeps_ListTrials": list_trials}
