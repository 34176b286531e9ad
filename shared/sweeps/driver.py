"""The sweep timer's round: follow each running sweep's trials, stop the losers, start the next.

One round of one sweep is one ETag-guarded edit of its document (re-done from a fresh read when
another writer won), then side effects that are safe to repeat:
1. each unfinished trial takes its job's state and the metric points read so far; the early-
   termination policy may stop a running one (state `stopped`, with the reason);
2. past maxDuration, or once cancel was asked, every unfinished trial is `canceled`;
3. new trials are asked of the search (shared/sweeps/search.py) up to maxConcurrentTrials at a
   time and the planned count, and RECORDED (number, choice, parameters) before their jobs exist;
4. when every planned trial has ended the sweep ends, with its SweepCompleted event in its outbox.
After the write: a queued trial whose job is missing gets it (an idempotent PUT of the same job,
so a host killed between the write and the PUT neither loses the trial nor runs it twice); a
stopped or canceled trial whose job still runs is terminated; the outbox is sent.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from shared import errors, events, job_runs, resources
from shared.api.generic import timestamp
from shared.ids import JOB, SWEEP, ResourceRef
from shared.ports.state_store import Query
from shared.sweeps import metrics, search
from shared.sweeps.models import ENDED, SweepProperties, SweepState, Trial, TrialState
from shared.sweeps.template import trial_job
from shared.documents.resources import JobDocument, SweepDocument

if TYPE_CHECKING:
    from shared.composition import Services

log = logging.getLogger(__name__)
COMPLETED_EVENT = "Microsoft.BatchAI.SweepCompleted"


def properties_of(doc: dict[str, Any]) -> SweepProperties:
    """The sweep's body as created (with secrets: the service's own copy)."""
    return SweepProperties.model_validate_json(json.dumps(doc["spec"]["properties"]), by_alias=True, by_name=False)


def trials_of(doc: dict[str, Any]) -> list[Trial]:
    return [Trial.model_validate_json(json.dumps(t), by_alias=True, by_name=False) for t in doc.get("trials") or []]


def space_of(doc: dict[str, Any]) -> search.Space:
    return search.Space(properties_of(doc), doc["spec"].get("files") or {})


def job_ref(sweep: ResourceRef, trial: Trial) -> ResourceRef:
    return sweep.parent.child(JOB, trial.job_name)  # type: ignore[union-attr]


def job_name(sweep_name: str, number: int) -> str:
    return f"{sweep_name}-{number:04d}"


def run_round(svc: Services) -> None:
    """The timer: every running sweep advances; sent what a crash left in a sweep's outbox."""
    for doc in svc.store.query(resources.R, Query(where={"kind": SWEEP.name, "state": SweepState.RUNNING.value})):
        try:
            advance(svc, doc)
        except Exception:  # one broken sweep holds back no other; the next round tries again
            log.exception("sweep %s: round failed", doc["id"])
    for doc in svc.store.query(resources.R, Query(where={"kind": SWEEP.name, "outboxPending": True})):
        events.flush(svc, SweepDocument.load(doc))  # bridge
    for doc in svc.store.query(resources.R, Query(where={"kind": SWEEP.name, "settling": True})):
        settle(svc, doc)


def settle(svc: Services, doc: dict[str, Any]) -> None:
    """An ended sweep whose stopped or canceled trials' jobs may still run (a crash came between its
    last write and their terminate): terminate them, then stop looking."""
    ref = ResourceRef.parse(doc["resource"]["id"], SWEEP)
    assert ref is not None
    if doc.get("state") != "deleting":
        _act(svc, ref, doc)
    jobs = [resources.load(svc.store, job_ref(ref, t)) for t in trials_of(doc)]
    if all(j is None or j["state"] in job_runs.FINAL for j in jobs) or doc.get("state") == "deleting":
        resources.mutate_doc(svc.store, doc, lambda current: current.pop("settling", None) is not None)


def advance(svc: Services, doc: dict[str, Any]) -> dict[str, Any] | None:
    """One round of one sweep (see the module's docstring). Returns the document as written."""
    ref = ResourceRef.parse(doc["resource"]["id"], SWEEP)
    assert ref is not None
    written = resources.mutate_doc(svc.store, doc, lambda current: _step(svc, ref, current))
    current = written or resources.load(svc.store, ref)
    if current is None or current.get("state") == "deleting":  # its delete removes its jobs: start none
        return current
    _act(svc, ref, current)
    if current.get("outbox"):
        events.flush(svc, SweepDocument.load(current))  # bridge
    return current


def _step(svc: Services, ref: ResourceRef, doc: dict[str, Any]) -> bool:
    if doc.get("state") != SweepState.RUNNING.value:
        return False
    before = json.dumps(doc, sort_keys=True, default=str)
    now = svc.clock.now()
    sp = space_of(doc)
    props = sp.props
    trials = trials_of(doc)
    for index, trial in enumerate(trials):
        if TrialState(trial.state) not in ENDED:
            _follow(svc, ref, sp, trials, index, now)
    why_over = _over(doc, props, now)
    if why_over:
        for trial in trials:
            if TrialState(trial.state) not in ENDED:
                _end(trial, TrialState.CANCELED, why_over, now)
    else:
        active = sum(1 for t in trials if TrialState(t.state) not in ENDED)
        while active < props.budget.max_concurrent_trials and len(trials) < sp.planned():
            choice = search.next_choice(sp, trials)
            trials.append(Trial(number=len(trials), job_name=job_name(ref.name, len(trials)), choice=choice,
                                parameters=sp.assignment(choice), creation_time=timestamp(now)))
            active += 1
    doc["trials"] = [t.to_wire() for t in trials]
    if all(TrialState(t.state) in ENDED for t in trials) and (why_over or len(trials) >= sp.planned()):
        _complete(doc, props, trials, now, cancelled=bool(doc.get("cancelRequested")))
    _summarise(doc, props, trials)
    return json.dumps(doc, sort_keys=True, default=str) != before


def _over(doc: dict[str, Any], props: SweepProperties, now: datetime) -> str | None:
    if doc.get("cancelRequested"):
        return "The sweep was canceled."
    limit = props.budget.max_duration
    started = datetime.fromisoformat(doc["resource"]["properties"]["creationTime"].replace("Z", "+00:00"))
    if limit is not None and now - started >= limit:
        return f"The sweep reached its maxDuration ({_duration(limit)})."
    return None


def _duration(value: timedelta) -> str:
    return f"{int(value.total_seconds())} s"


def _follow(svc: Services, ref: ResourceRef, sp: search.Space, trials: list[Trial], index: int,
            now: datetime) -> None:
    """The trial takes its job's state and metric; a running one may be stopped by the policy."""
    trial = trials[index]
    job = resources.load(svc.store, job_ref(ref, trial))
    if job is None:
        if TrialState(trial.state) == TrialState.RUNNING:
            _end(trial, TrialState.FAILED, "The trial's job was deleted.", now)
        return  # a queued trial's job is (re)created after the write
    state = job["state"]
    if state == job_runs.QUEUED:
        return
    objective = sp.props.objective
    points = metrics.read(svc, job, objective)
    if points:
        trial.intermediate = metrics.thin(points)
        trial.best_metric = metrics.best([p.value for p in points], objective.goal)
    if state in job_runs.ACTIVE:
        trial.state = TrialState.RUNNING
        reason, marks = search.stop_reason(sp, trials, index)
        trial.pruner_marks = marks
        if reason:
            trial.final_metric = metrics.final(points, objective.calculate_method, objective.goal)
            _end(trial, TrialState.STOPPED, reason, now)
        return
    if state == job_runs.SUCCEEDED:
        value = metrics.final(points, objective.calculate_method, objective.goal)
        if value is None:
            _end(trial, TrialState.FAILED, f"The job succeeded but reported no value of '{objective.metric_name}' "
                                           f"({_where(objective)}).", now)
        else:
            trial.final_metric = value
            _end(trial, TrialState.SUCCEEDED, None, now)
        return
    info = job["resource"]["properties"].get("executionInfo") or {}
    first = (info.get("errors") or [{}])[0]
    _end(trial, TrialState.FAILED, f"The trial's job failed: {first.get('code', 'JobFailed')}: "
                                   f"{first.get('message', '')}".strip(), now)


def _where(objective: Any) -> str:
    if objective.source == "metricsFile":
        return "no line of $AZ_BATCHAI_STDOUTERR_DIR/metrics.jsonl names it"
    return f"no match of the regex in {objective.log_file}"


def _end(trial: Trial, state: TrialState, reason: str | None, now: datetime) -> None:
    trial.state = state
    trial.reason = reason
    trial.end_time = timestamp(now)


def _complete(doc: dict[str, Any], props: SweepProperties, trials: list[Trial], now: datetime,
              cancelled: bool) -> None:
    """The sweep has ended: its state, and its SweepCompleted event in the outbox."""
    succeeded = any(TrialState(t.state) == TrialState.SUCCEEDED for t in trials)
    state = SweepState.CANCELED if cancelled else SweepState.SUCCEEDED if succeeded else SweepState.FAILED
    doc["state"] = state.value
    doc["settling"] = True  # its stopped and canceled trials' jobs are terminated until none runs (`settle`)
    props_out = doc["resource"]["properties"]
    props_out["executionState"] = state.value
    props_out["executionStateTransitionTime"] = timestamp(now)
    _summarise(doc, props, trials)
    source = doc["resource"]["id"]
    event = {"specversion": "1.0", "id": uuid.uuid4().hex, "source": source, "type": COMPLETED_EVENT,
             "subject": source[source.index("/experiments/") + 1:], "time": timestamp(now),
             "datacontenttype": "application/json",
             "data": {"state": state.value, "trialCounts": props_out["trialCounts"],
                      "bestTrial": props_out.get("bestTrial")}}
    doc["outbox"] = [*(doc.get("outbox") or []), event]
    doc["outboxPending"] = True


def best_trial(props: SweepProperties, trials: list[Trial]) -> Trial | None:
    done = [t for t in trials if TrialState(t.state) == TrialState.SUCCEEDED and t.final_metric is not None]
    if not done:
        return None
    sign = 1 if props.objective.goal == "maximize" else -1
    return max(done, key=lambda t: (sign * (t.final_metric or 0.0), -t.number))


def _summarise(doc: dict[str, Any], props: SweepProperties, trials: list[Trial]) -> None:
    counts = {s.value: 0 for s in TrialState}
    for t in trials:
        counts[TrialState(t.state).value] += 1
    out = doc["resource"]["properties"]
    out["trialCounts"] = counts
    best = best_trial(props, trials)
    if best is None:
        out.pop("bestTrial", None)
    else:
        out["bestTrial"] = {"number": best.number, "jobName": best.job_name, "parameters": best.parameters,
                            "finalMetric": best.final_metric}


def _act(svc: Services, ref: ResourceRef, doc: dict[str, Any]) -> None:
    """The side effects of the recorded state (each safe to repeat)."""
    for trial in trials_of(doc):
        state = TrialState(trial.state)
        if state == TrialState.QUEUED:
            if resources.load(svc.store, job_ref(ref, trial)) is None:
                _submit(svc, ref, doc, trial)
        elif state in (TrialState.STOPPED, TrialState.CANCELED):
            job = resources.load(svc.store, job_ref(ref, trial))
            if job is not None and job["state"] in (job_runs.QUEUED, job_runs.RUNNING):
                job_runs.terminate_job(svc, JobDocument.load(job))  # bridge


def _submit(svc: Services, ref: ResourceRef, doc: dict[str, Any], trial: Trial) -> None:
    """The trial's job, created like any job (jobs.create: the same checks, lane and events)."""
    from shared.api import jobs
    from shared.api.request import API_VERSION, ApiRequest

    target = job_ref(ref, trial)
    body = {"properties": trial_job(doc["spec"]["properties"]["jobTemplate"], trial.parameters)}
    route = {"subscriptionId": target.subscription, "resourceGroupName": target.resource_group,
             "workspaceName": target.names[0], "experimentName": target.names[1], "jobName": target.names[2]}
    request = ApiRequest(method="PUT", url=target.arm_id, route=route, query={"api-version": API_VERSION},
                         body=json.dumps(body).encode())
    try:
        jobs.create(svc, request)
    except errors.ApiError as exc:  # e.g. its cluster was deleted since: the trial fails, saying why
        message = f"The trial's job could not be created: {exc.body()['error']['message']}"
        fail_trial(svc, ref, trial.number, message)


def fail_trial(svc: Services, ref: ResourceRef, number: int, reason: str) -> None:
    def edit(doc: dict[str, Any]) -> bool:
        stored = doc.get("trials") or []
        if number >= len(stored) or stored[number]["state"] != TrialState.QUEUED.value:
            return False
        stored[number].update(state=TrialState.FAILED.value, reason=reason, endTime=timestamp(svc.clock.now()))
        return True

    doc = resources.load(svc.store, ref)
    if doc is not None:
        resources.mutate_doc(svc.store, doc, edit)


def cancel(svc: Services, ref: ResourceRef) -> dict[str, Any]:
    """Ask the sweep to stop: no new trial; its unfinished trials are canceled and their jobs terminated."""
    def edit(doc: dict[str, Any]) -> bool:
        if doc.get("state") != SweepState.RUNNING.value or doc.get("cancelRequested"):
            return False
        doc["cancelRequested"] = True
        return True

    doc = resources.require(svc.store, ref)
    resources.mutate_doc(svc.store, doc, edit)
    return advance(svc, resources.require(svc.store, ref)) or resources.require(svc.store, ref)
