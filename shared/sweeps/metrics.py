"""Reading a trial's primary metric: from its log by a regex (as the utilities' MetricExtractor
did), or from the JSON-lines metrics file the job appends to ($AZ_BATCHAI_STDOUTERR_DIR/
metrics.jsonl, one {"name": ..., "value": ..., "step": ...} per line; no library needed in the job).
Pure functions over the text, and one reader of the job's file."""

from __future__ import annotations

import json
import math
import re
import statistics
from typing import TYPE_CHECKING, Any

from shared.sweeps.models import METRICS_FILE, Calculation, Goal, MetricPoint, Objective

if TYPE_CHECKING:
    from shared.composition import Services
    from shared.documents.resources import JobDocument

MAX_READ = 4 * 1024 * 1024  # the tail of a log a round reads: bounded, however much a job prints
MAX_POINTS = 10_000
MAX_LINE = 2000
STORED_POINTS = 50  # per trial, in the sweep's document (at most 500 trials: well under 2 MB)


def from_log(text: str, regex: str) -> list[MetricPoint]:
    """Every match in a line is a value: group 'value' (else the first group), at group 'step' (else
    the match's ordinal, from 1). Matches that are not numbers are skipped."""
    pattern = re.compile(regex)
    points: list[MetricPoint] = []
    # Line by line, each line cut at MAX_LINE: a costly regex meets short texts only.
    found = (m for line in text.splitlines() for m in pattern.finditer(line[:MAX_LINE]))
    for ordinal, match in enumerate(found, start=1):
        named = match.groupdict()
        raw = named.get("value") if named.get("value") is not None else match.group(1)
        value = _number(raw)
        if value is None:
            continue
        step = _step(named.get("step"), ordinal)
        points.append(MetricPoint(step=step, value=value))
    return points[-MAX_POINTS:]


def from_metrics_file(text: str, name: str) -> list[MetricPoint]:
    """The lines of the metrics file about `name`; a line without a step is at its ordinal."""
    points: list[MetricPoint] = []
    ordinal = 0
    for line in text.splitlines():
        try:
            record: Any = json.loads(line)
        except ValueError:
            continue  # a line being written, or not ours
        if not isinstance(record, dict) or record.get("name") != name:
            continue
        ordinal += 1
        value = _number(record.get("value"))
        if value is not None:
            points.append(MetricPoint(step=_step(record.get("step"), ordinal), value=value))
    return points[-MAX_POINTS:]


def _number(raw: object) -> float | None:
    if isinstance(raw, bool):
        return None
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _step(raw: object, ordinal: int) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.isdigit():
        return int(raw)
    return ordinal


def final(points: list[MetricPoint], method: Calculation, goal: Goal) -> float | None:
    """The trial's value of the metric by the objective's calculateMethod."""
    if not points:
        return None
    values = [p.value for p in points]
    if method == Calculation.LAST:
        return values[-1]
    if method == Calculation.MEAN:
        return statistics.fmean(values)
    if method == Calculation.MIN:
        return min(values)
    if method == Calculation.MAX:
        return max(values)
    return best(values, goal)


def best(values: list[float], goal: Goal) -> float | None:
    if not values:
        return None
    return max(values) if goal == Goal.MAXIMIZE else min(values)


def thin(points: list[MetricPoint], keep: int = STORED_POINTS) -> list[MetricPoint]:
    """At most `keep` points, evenly spread, the last one always kept: what a trial stores (the
    sweep's document holds every trial, and a document has a size limit)."""
    if len(points) <= keep:
        return points
    last = len(points) - 1
    return [points[round(i * last / (keep - 1))] for i in range(keep)]


def by_step(points: list[MetricPoint]) -> dict[int, float]:
    """One value per step (the last reported), as Optuna's intermediate values."""
    return {p.step: p.value for p in points}


def read(svc: Services, job: JobDocument, objective: Objective) -> list[MetricPoint]:
    """The metric's points so far, read from the trial's job."""
    from shared import job_files

    if objective.source == "metricsFile":
        data = job_files.read_file(svc, job, job_files.STDOUTERR, METRICS_FILE, MAX_READ)
        return from_metrics_file(data.decode("utf-8", "replace"), objective.metric_name) if data else []
    data = job_files.read_file(svc, job, job_files.STDOUTERR, objective.log_file, MAX_READ)
    assert objective.regex is not None
    return from_log(data.decode("utf-8", "replace"), objective.regex) if data else []
