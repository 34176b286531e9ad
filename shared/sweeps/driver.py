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
from typing import TYPE_CHECKING

from shared import errors, events, job_runs, resources
from shared.api.generic import timestamp
from shared.documents import base as documents
from shared.documents.resources import JobDocument, SweepDocument
from shared.ids import JOB, SWEEP, ResourceRef
from shared.ports.state_store import Query
from shared.sweeps import metrics, search
from shared.sweeps.models import ENDED, BestTrial, Objective, SweepProperties, SweepState, Trial, TrialState
from shared.sweeps.template import trial_job

if TYPE_CHECKING:
    from shared.composition import Services

log = logging.getLogger(__name__)
COMPLETED_EVENT = "Microsoft.BatchAI.SweepCompleted"
DELETING = "deleting"  # the sweep's state while its delete removes its jobs


def properties_of(doc: SweepDocument) -> SweepProperties:
    """The sweep's body as created (with secrets: the service's own copy)."""
    return doc.spec.properties


def trials_of(doc: SweepDocument) -> list[Trial]:
    return doc.trials


def space_of(doc: SweepDocument) -> search.Space:
    return search.Space(properties_of(doc), doc.spec.files)


def job_ref(sweep: ResourceRef, trial: Trial) -> ResourceRef:
    return sweep.parent.child(JOB, trial.job_name)  # type: ignore[union-attr]


def job_name(sweep_name: str, number: int) -> str:
    return f"{sweep_name}-{number:04d}"


def _sweeps(svc: Services, where: dict[str, object]) -> list[SweepDocument]:
    return documents.query(svc.store, SweepDocument, Query(where={"kind": SWEEP.name, **where}))


def run_round(svc: Services) -> None:
    """The timer: every running sweep advances; sent what a crash left in a sweep's outbox."""
    for doc in _sweeps(svc, {"state": SweepState.RUNNING.value}):
        try:
            advance(svc, doc)
        except Exception:  # one broken sweep holds back no other; the next round tries again
            log.exception("sweep %s: round failed", doc.id)
    for doc in _sweeps(svc, {"outboxPending": True}):
        events.flush(svc, doc)
    for doc in _sweeps(svc, {"settling": True}):
        settle(svc, doc)


def _ref(doc: SweepDocument) -> ResourceRef:
    ref = ResourceRef.parse(doc.resource.id, SWEEP)
    assert ref is not None
    return ref


def settle(svc: Services, doc: SweepDocument) -> None:
    """An ended sweep whose stopped or canceled trials' jobs may still run (a crash came between its
    last write and their terminate): terminate them, then stop looking."""
    ref = _ref(doc)
    if doc.state != DELETING:
        _act(svc, ref, doc)
    jobs = [resources.load(svc.store, job_ref(ref, t), JobDocument) for t in trials_of(doc)]
    if all(j is None or j.state in job_runs.FINAL for j in jobs) or doc.state == DELETING:
        resources.mutate_doc(svc.store, doc, _settled)


def _settled(current: SweepDocument) -> bool:
    if current.settling is None:
        return False
    current.settling = None
    return True


def advance(svc: Services, doc: SweepDocument) -> SweepDocument | None:
    """One round of one sweep (see the module's docstring). Returns the document as written."""
    ref = _ref(doc)
    written = resources.mutate_doc(svc.store, doc, lambda current: _step(svc, ref, current))
    current = written or resources.load(svc.store, ref, SweepDocument)
    if current is None or current.state == DELETING:  # its delete removes its jobs: start none
        return current
    _act(svc, ref, current)
    if current.outbox:
        events.flush(svc, current)
    return current


def _step(svc: Services, ref: ResourceRef, doc: SweepDocument) -> bool:
    if doc.state != SweepState.RUNNING.value:
        return False
    before = doc.to_json()
    now = svc.clock.now()
    sp = space_of(doc)
    props = sp.props
    trials = trials_of(doc)
    for index, trial in enumerate(trials):
        if TrialState(trial.state) not in ENDED:
            _follow(svc, ref, sp, trials, index, now)
    why_over = _over(doc.resource.properties.creation_time or "", bool(doc.cancel_requested), props, now)
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
    if all(TrialState(t.state) in ENDED for t in trials) and (why_over or len(trials) >= sp.planned()):
        _complete(doc, props, trials, now, cancelled=bool(doc.cancel_requested))
    _summarise(doc, props, trials)
    return doc.to_json() != before


def _over(created: str, cancel_requested: bool, props: SweepProperties, now: datetime) -> str | None:
    """Why the sweep of that creationTime is over before its trials are (None: it is not)."""
    if cancel_requested:
        return "The sweep was canceled."
    limit = props.budget.max_duration
    started = datetime.fromisoformat(created.replace("Z", "+00:00"))
    if limit is not None and now - started >= limit:
        return f"The sweep reached its maxDuration ({_duration(limit)})."
    return None


def _duration(value: timedelta) -> str:
    return f"{int(value.total_seconds())} s"


def _follow(svc: Services, ref: ResourceRef, sp: search.Space, trials: list[Trial], index: int,
            now: datetime) -> None:
    """The trial takes its job's state and metric; a running one may be stopped by the policy."""
    trial = trials[index]
    job = resources.load(svc.store, job_ref(ref, trial), JobDocument)
    if job is None:
        if TrialState(trial.state) == TrialState.RUNNING:
            _end(trial, TrialState.FAILED, "The trial's job was deleted.", now)
        return  # a queued trial's job is (re)created after the write
    state = job.state
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
    info = job.resource.properties.execution_info
    first = info.errors[0] if info is not None and info.errors else None
    code, message = (first.code, first.message) if first is not None else ("JobFailed", "")
    _end(trial, TrialState.FAILED, f"The trial's job failed: {code}: {message}".strip(), now)


def _where(objective: Objective) -> str:
    if objective.source == "metricsFile":
        return "no line of $AZ_BATCHAI_STDOUTERR_DIR/metrics.jsonl names it"
    return f"no match of the regex in {objective.log_file}"


def _end(trial: Trial, state: TrialState, reason: str | None, now: datetime) -> None:
    trial.state = state
    trial.reason = reason
    trial.end_time = timestamp(now)


def _complete(doc: SweepDocument, props: SweepProperties, trials: list[Trial], now: datetime,
              cancelled: bool) -> None:
    """The sweep has ended: its state, and its SweepCompleted event in the outbox."""
    succeeded = any(TrialState(t.state) == TrialState.SUCCEEDED for t in trials)
    state = SweepState.CANCELED if cancelled else SweepState.SUCCEEDED if succeeded else SweepState.FAILED
    doc.state = state.value
    doc.settling = True  # its stopped and canceled trials' jobs are terminated until none runs (`settle`)
    props_out = doc.resource.properties
    props_out.execution_state = state.value
    props_out.execution_state_transition_time = timestamp(now)
    _summarise(doc, props, trials)
    source = doc.resource.id
    best = props_out.best_trial
    event = {"specversion": "1.0", "id": uuid.uuid4().hex, "source": source, "type": COMPLETED_EVENT,
             "subject": source[source.index("/experiments/") + 1:], "time": timestamp(now),
             "datacontenttype": "application/json",
             "data": {"state": state.value, "trialCounts": props_out.trial_counts,
                      "bestTrial": best.to_wire() if best is not None else None}}
    doc.outbox = [*doc.outbox, event]
    doc.outbox_pending = True


def best_trial(props: SweepProperties, trials: list[Trial]) -> Trial | None:
    done = [t for t in trials if TrialState(t.state) == TrialState.SUCCEEDED and t.final_metric is not None]
    if not done:
        return None
    sign = 1 if props.objective.goal == "maximize" else -1
    return max(done, key=lambda t: (sign * (t.final_metric or 0.0), -t.number))


def _summarise(doc: SweepDocument, props: SweepProperties, trials: list[Trial]) -> None:
    counts = {s.value: 0 for s in TrialState}
    for t in trials:
        counts[TrialState(t.state).value] += 1
    out = doc.resource.properties
    out.trial_counts = counts
    best = best_trial(props, trials)
    out.best_trial = None if best is None or best.final_metric is None else BestTrial(
        number=best.number, job_name=best.job_name, parameters=best.parameters, final_metric=best.final_metric)


def _act(svc: Services, ref: ResourceRef, doc: SweepDocument) -> None:
    """The side effects of the recorded state (each safe to repeat)."""
    for trial in trials_of(doc):
        state = TrialState(trial.state)
        if state == TrialState.QUEUED:
            if svc.store.read(resources.R, ref.pk, job_ref(ref, trial).key) is None:
                _submit(svc, ref, doc, trial)
        elif state in (TrialState.STOPPED, TrialState.CANCELED):
            job = resources.load(svc.store, job_ref(ref, trial), JobDocument)
            if job is not None and job.state in (job_runs.QUEUED, job_runs.RUNNING):
                job_runs.terminate_job(svc, job)


def _submit(svc: Services, ref: ResourceRef, doc: SweepDocument, trial: Trial) -> None:
    """The trial's job, created like any job (jobs.create: the same checks, lane and events)."""
    from shared.api import jobs
    from shared.api.request import API_VERSION, ApiRequest

    target = job_ref(ref, trial)
    body = {"properties": trial_job(doc.spec.properties.job_template, trial.parameters)}
    route = {"subscriptionId": target.subscription, "resourceGroupName": target.resource_group,
             "workspaceName": target.names[0], "experimentName": target.names[1], "jobName": target.names[2]}
    request = ApiRequest(method="PUT", url=target.arm_id, route=route, query={"api-version": API_VERSION},
                         body=json.dumps(body).encode())
    try:
        jobs.create(svc, request)
    except errors.ApiError as exc:  # e.g. its cluster was deleted since: the trial fails, saying why
        message = f"The trial's job could not be created: {exc.message}"
        fail_trial(svc, ref, trial.number, message)


def fail_trial(svc: Services, ref: ResourceRef, number: int, reason: str) -> None:
    def edit(doc: SweepDocument) -> bool:
        stored = doc.trials
        if number >= len(stored) or TrialState(stored[number].state) != TrialState.QUEUED:
            return False
        _end(stored[number], TrialState.FAILED, reason, svc.clock.now())
        return True

    documents.edit(svc.store, SweepDocument, ref.pk, ref.key, edit)


def cancel(svc: Services, ref: ResourceRef) -> SweepDocument:
    """Ask the sweep to stop: no new trial; its unfinished trials are canceled and their jobs terminated."""
    def edit(doc: SweepDocument) -> bool:
        if doc.state != SweepState.RUNNING.value or doc.cancel_requested:
            return False
        doc.cancel_requested = True
        return True

    doc = resources.require(svc.store, ref, SweepDocument)
    resources.mutate_doc(svc.store, doc, edit)
    return advance(svc, resources.require(svc.store, ref, SweepDocument)) or resources.require(svc.store, ref,
                                                                                                   SweepDocument)
