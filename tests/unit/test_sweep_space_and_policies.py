"""Sweeps' core without I/O: the utilities' parameter values, grid order, template substitution,
metric reading, seeded sampling, the early-termination policies, and the budget's clock."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from shared.ports.clock import ManualClock
from shared.sweeps import driver, metrics, space
from shared.sweeps.models import Calculation, Goal, SweepProperties, Trial
from shared.sweeps.search import Space, next_choice, stop_reason
from shared.sweeps.template import placeholders, trial_job


def props(**changes: Any) -> SweepProperties:
    body = {"jobTemplate": {}, "parameters": [
        {"paramType": "NumParam", "parameterName": "LR", "dataType": "REAL", "start": 1e-4, "end": 1e-1,
         "scale": "LOG", "numValues": 4},
        {"paramType": "DiscreteParam", "parameterName": "HIDDEN", "values": [8, 32, 64]}],
        "sampling": {"algorithm": "random", "seed": 1},
        "objective": {"metricName": "acc", "goal": "maximize", "regex": "acc ([0-9.]+)"},
        "budget": {"maxTrials": 20, "maxConcurrentTrials": 4}} | changes
    return SweepProperties.model_validate_json(json.dumps(body), by_alias=True, by_name=False)


def numeric(**fields: Any) -> space.NumericParameter:
    body = {"paramType": "NumParam", "parameterName": "X"} | fields
    return space.NumericParameter.model_validate_json(json.dumps(body), by_alias=True, by_name=False)


# -- the utilities' values -------------------------------------------------------------------------
def test_numeric_grids_are_the_utilities_documented_values() -> None:
    assert numeric(dataType="INTEGER", start=10, end=50, scale="LINEAR", step=10).grid() == [10, 20, 30, 40, 50]
    assert numeric(dataType="REAL", start=1e-4, end=1e-1, scale="LOG", numValues=4).grid() == [1e-4, 1e-3, 1e-2, 1e-1]
    assert numeric(dataType="REAL", start=0, end=1, scale="LINEAR", numValues=5).grid() == [0, 0.25, 0.5, 0.75, 1]
    assert numeric(dataType="INTEGER", start=1, end=1000, scale="LOG", numValues=4).grid() == [1, 10, 100, 1000]
    assert numeric(dataType="REAL", start=0, end=1, scale="RANDOM_UNIFORM").grid() is None


@pytest.mark.parametrize("fields", [
    {"dataType": "REAL", "start": 5, "end": 1, "scale": "LINEAR", "step": 1},
    {"dataType": "REAL", "start": 0, "end": 1, "scale": "LOG", "numValues": 3},
    {"dataType": "REAL", "start": 0, "end": 1e9, "scale": "LINEAR", "step": 1},
])
def test_numeric_parameters_refuse_what_cannot_be_generated(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        numeric(**fields)


def test_parameter_names_are_the_utilities_pattern() -> None:
    with pytest.raises(ValueError):
        numeric(parameterName="lr", dataType="REAL", start=0, end=1, scale="LINEAR", step=0.5)


def test_the_grid_is_itertools_product_order_first_parameter_slowest() -> None:
    values: list[list[Any]] = [[10, 20, 30], ["a", "b"], [1, 2, 3, 4]]
    expected = list(itertools.product(*(range(len(v)) for v in values)))
    assert [space.grid_point(values, i) for i in range(24)] == expected
    assert space.grid_size(values) == 24


def test_a_grid_sweep_asks_for_each_point_in_order() -> None:
    sp = Space(props(sampling={"algorithm": "grid"}), {})
    assert sp.planned() == 12
    got = [sp.assignment(sp.grid_choice(i)) for i in range(12)]
    assert got == [{"LR": lr, "HIDDEN": h} for lr in (1e-4, 1e-3, 1e-2, 1e-1) for h in (8, 32, 64)]


def test_a_dictionary_parameter_gives_name__key() -> None:
    p = props(parameters=[{"paramType": "DictParam", "parameterName": "NET",
                           "values": [{"DEPTH": 2, "ACT": "relu"}, {"DEPTH": 4, "ACT": "tanh"}]}],
              sampling={"algorithm": "grid"})
    sp = Space(p, {})
    assert [sp.assignment(sp.grid_choice(i)) for i in range(2)] == [
        {"NET__DEPTH": 2, "NET__ACT": "relu"}, {"NET__DEPTH": 4, "NET__ACT": "tanh"}]
    assert space.placeholder_names(list(p.parameters)) == {"NET__DEPTH", "NET__ACT"}


def test_file_parameters_list_their_files_as_values() -> None:
    p = props(parameters=[{"paramType": "FileParam", "parameterName": "DATA", "storageAccountName": "acct",
                           "storageType": "FILE", "fileshare": "s", "mountMethod": "CLUSTER", "mountPath": "afs",
                           "filterStr": r".*\.csv"}], sampling={"algorithm": "grid"})
    sp = Space(p, {"DATA": ["$AZ_BATCHAI_MOUNT_ROOT/afs/a.csv", "$AZ_BATCHAI_MOUNT_ROOT/afs/b.csv"]})
    assert sp.planned() == 2
    assert sp.assignment(sp.grid_choice(1)) == {"DATA": "$AZ_BATCHAI_MOUNT_ROOT/afs/b.csv"}


def test_a_file_filter_that_does_not_compile_is_refused() -> None:
    with pytest.raises(ValueError, match="filterStr does not compile"):
        props(parameters=[{"paramType": "FileParam", "parameterName": "DATA", "storageAccountName": "acct",
                           "storageType": "FILE", "fileshare": "s", "mountMethod": "JOB", "mountPath": "afs",
                           "filterStr": "(["}])


# -- the template -----------------------------------------------------------------------------------
def test_placeholders_are_substituted_in_strings_and_as_whole_values() -> None:
    template = {"nodeCount": "{{NODES}}", "customToolkitSettings": {"commandLine": "train --lr {{LR}} -n {{NODES}}"},
                "environmentVariables": [{"name": "A", "value": "{{LR}}"}, {"name": "PARAM_LR", "value": "old"}]}
    job = trial_job(template, {"NODES": 2, "LR": 0.001})
    assert job["nodeCount"] == 2
    assert job["customToolkitSettings"] == {"commandLine": "train --lr 0.001 -n 2"}
    assert job["environmentVariables"] == [{"name": "A", "value": "0.001"}, {"name": "PARAM_NODES", "value": "2"},
                                           {"name": "PARAM_LR", "value": "0.001"}]
    assert sorted(placeholders(template, "t")) == [("LR", "t.customToolkitSettings.commandLine"),
                                                   ("LR", "t.environmentVariables[0].value"),
                                                   ("NODES", "t.customToolkitSettings.commandLine"),
                                                   ("NODES", "t.nodeCount")]


# -- metrics ------------------------------------------------------------------------------------------
def test_metrics_from_a_log_by_regex_with_steps() -> None:
    log = "epoch 1 acc 0.5\nnoise acc x\nepoch 2 acc 0.7\nepoch 3 acc 0.6\n"
    by_order = metrics.from_log(log, r"acc ([0-9.]+)")
    assert [(p.step, p.value) for p in by_order] == [(1, 0.5), (2, 0.7), (3, 0.6)]
    named = metrics.from_log(log, r"epoch (?P<step>\d+) acc (?P<value>[0-9.]+)")
    assert [(p.step, p.value) for p in named] == [(1, 0.5), (2, 0.7), (3, 0.6)]
    assert metrics.final(named, Calculation.LAST, Goal.MAXIMIZE) == 0.6
    assert metrics.final(named, Calculation.MAX, Goal.MAXIMIZE) == 0.7
    assert metrics.final(named, Calculation.BEST, Goal.MINIMIZE) == 0.5
    assert metrics.final(named, Calculation.MEAN, Goal.MINIMIZE) == pytest.approx(0.6)
    assert metrics.final([], Calculation.LAST, Goal.MINIMIZE) is None


def test_metrics_from_the_json_lines_file_skip_other_names_and_broken_lines() -> None:
    text = ('{"name": "loss", "value": 3, "step": 1}\n{"name": "acc", "value": 0.5, "step": 10}\n'
            'not json\n{"name": "acc", "value": "NaN"}\n{"name": "acc", "value": 0.8}\n{"name": "acc", "val')
    assert [(p.step, p.value) for p in metrics.from_metrics_file(text, "acc")] == [(10, 0.5), (3, 0.8)]


# -- sampling ------------------------------------------------------------------------------------------
def run_trials(sp: Space, count: int) -> list[Trial]:
    trials: list[Trial] = []
    for n in range(count):
        choice = next_choice(sp, trials)
        trials.append(Trial(number=n, job_name=f"t-{n}", choice=choice, parameters=sp.assignment(choice),
                            creation_time="2026-01-01T00:00:00Z"))
    return trials


@pytest.mark.parametrize("algorithm", ["random", "bayesian"])
def test_sampling_is_seeded_and_stays_in_the_space(algorithm: str) -> None:
    sp = Space(props(sampling={"algorithm": algorithm, "seed": 3}), {})
    first, again = run_trials(sp, 8), run_trials(sp, 8)
    assert [t.parameters for t in first] == [t.parameters for t in again]  # a rebuilt study asks the same
    other = run_trials(Space(props(sampling={"algorithm": algorithm, "seed": 4}), {}), 8)
    assert [t.parameters for t in first] != [t.parameters for t in other]
    for t in first:
        assert 1e-4 <= t.parameters["LR"] <= 1e-1 and t.parameters["HIDDEN"] in (8, 32, 64)
    assert len({t.parameters["LR"] for t in first}) == 8


# -- early termination ---------------------------------------------------------------------------------
def finished(sp: Space, values: list[list[float]]) -> list[Trial]:
    trials = run_trials(sp, len(values))
    for t, curve in zip(trials, values, strict=True):
        t.state = "succeeded"  # type: ignore[assignment]
        t.intermediate = [metrics.MetricPoint(step=i + 1, value=v) for i, v in enumerate(curve)]
        t.final_metric = curve[-1]
    return trials


def running(sp: Space, trials: list[Trial], curve: list[float]) -> list[Trial]:
    t = run_trials(sp, len(trials) + 1)[-1]
    t.state = "running"  # type: ignore[assignment]
    t.intermediate = [metrics.MetricPoint(step=i + 1, value=v) for i, v in enumerate(curve)]
    return [*trials, t]


GOOD = [[0.5, 0.7, 0.8, 0.9], [0.55, 0.75, 0.85, 0.9], [0.6, 0.7, 0.8, 0.95]]


def test_median_stopping_stops_a_trial_below_the_median_after_the_delay() -> None:
    sp = Space(props(earlyTermination={"policy": "median", "minCompletedTrials": 3, "delayEvaluation": 2}), {})
    done = finished(sp, GOOD)
    reason, _ = stop_reason(sp, running(sp, done, [0.1, 0.2, 0.3]), 3)
    assert reason is not None and reason.startswith("Stopped by the median early-termination policy at step 3")
    assert stop_reason(sp, running(sp, done, [0.1, 0.2]), 3)[0] is None  # still within the delay
    assert stop_reason(sp, running(sp, done, [0.6, 0.8, 0.9]), 3)[0] is None  # above the median
    assert stop_reason(sp, running(sp, done[:2], [0.1, 0.2, 0.3]), 2)[0] is None  # too few completed


def test_truncation_stops_the_worst_percentage() -> None:
    sp = Space(props(earlyTermination={"policy": "truncation", "truncationPercentage": 50,
                                        "minCompletedTrials": 3}), {})
    done = finished(sp, GOOD)
    assert stop_reason(sp, running(sp, done, [0.5, 0.6]), 3)[0] is not None
    assert stop_reason(sp, running(sp, done, [0.7, 0.8]), 3)[0] is None


def test_asha_stops_at_a_rung_and_keeps_its_marks() -> None:
    sp = Space(props(earlyTermination={"policy": "asha", "minResource": 1, "reductionFactor": 2}), {})
    trials = finished(sp, GOOD)
    for t in trials:  # their rung records, as earlier rounds kept them
        _, t.pruner_marks = stop_reason(sp, [*trials[:t.number], t.model_copy(update={"state": "running"})], t.number)
    reason, marks = stop_reason(sp, running(sp, trials, [0.1]), 3)
    assert reason is not None and "asha" in reason
    assert "completed_rung_0" in marks


# -- the budget's clock ---------------------------------------------------------------------------------
def test_max_duration_and_cancel_end_a_sweep_by_the_clock() -> None:
    clock = ManualClock()
    p = props(budget={"maxTrials": 4, "maxDuration": "PT1H"})
    created = clock.now().isoformat().replace("+00:00", "Z")
    clock.advance(minutes=59)
    assert driver._over(created, False, p, clock.now()) is None
    clock.advance(minutes=1)
    assert driver._over(created, False, p, clock.now()) == "The sweep reached its maxDuration (3600 s)."
    assert driver._over(created, True, props(), clock.now()) == "The sweep was canceled."


def test_the_best_trial_follows_the_goal() -> None:
    sp = Space(props(), {})
    trials = finished(sp, [[0.3], [0.9], [0.5]])
    assert driver.best_trial(sp.props, trials).number == 1  # type: ignore[union-attr]
    low = props(objective={"metricName": "loss", "goal": "minimize", "regex": "l ([0-9.]+)"})
    assert driver.best_trial(low, trials).number == 0  # type: ignore[union-attr]


def test_hyperband_decides_by_its_brackets_from_the_stored_trials() -> None:
    sp = Space(props(earlyTermination={"policy": "hyperband", "minResource": 1, "maxResource": 9,
                                        "reductionFactor": 3}), {})
    trials = finished(sp, [[0.9] * 9, [0.8] * 9, [0.85] * 9, [0.7] * 9, [0.95] * 9, [0.75] * 9])
    reason, _ = stop_reason(sp, running(sp, trials, [0.01] * 9), 6)
    again, _ = stop_reason(sp, running(sp, trials, [0.01] * 9), 6)
    assert reason == again  # the same stored trials, the same decision (a rebuilt study each round)
    assert stop_reason(sp, running(sp, trials, [0.99] * 9), 6)[0] is None  # the best is never stopped


def test_a_trial_stores_at_most_50_points_spread_and_the_last() -> None:
    points = [metrics.MetricPoint(step=i, value=float(i)) for i in range(1, 1001)]
    kept = metrics.thin(points)
    assert len(kept) == 50 and kept[0].step == 1 and kept[-1].step == 1000
    assert metrics.thin(points[:30]) == points[:30]
