"""The search itself, by Optuna ask-and-tell, with the sweep's state in OUR store: each round an
in-memory study is rebuilt from the stored trials (their choices, values, intermediate values and
the pruner's marks), asked for the next trial or whether a running one should stop, and thrown
away. Nothing here does I/O; a sweep is reproducible from its seed and its trials' results.

Grid sweeps need no library: trial n is the n-th point of the cartesian product of the
parameters' values, in the utilities' order (itertools.product: first parameter slowest)."""

from __future__ import annotations

from typing import Literal

import optuna
from optuna.distributions import BaseDistribution
from optuna.pruners import (BasePruner, HyperbandPruner, MedianPruner, NopPruner, PercentilePruner,
                            SuccessiveHalvingPruner)
from optuna.samplers import BaseSampler, RandomSampler, TPESampler
from optuna.trial import FrozenTrial, TrialState, create_trial

from shared.sweeps import metrics, space
from shared.sweeps.models import Algorithm, EarlyTermination, Goal, Policy, SweepProperties, Trial, TrialState as TS
from shared.sweeps.space import Scalar

Values = list[list[Scalar | dict[str, Scalar]]]


class Space:
    """The parameters with their finite values (files listed at create time)."""

    def __init__(self, props: SweepProperties, files: dict[str, list[str]]) -> None:
        self.props = props
        self.values: list[list[Scalar | dict[str, Scalar]] | None] = [
            space.choices(p, files.get(p.parameter_name)) for p in props.parameters]
        grid = props.sampling.algorithm == Algorithm.GRID
        self.distributions: dict[str, BaseDistribution] = {
            p.parameter_name: space.distribution(p, None if v is None else len(v))
            for p, v in zip(props.parameters, self.values, strict=True)
            if not grid}

    def grid_size(self) -> int:
        return space.grid_size([v or [] for v in self.values])

    def planned(self) -> int:
        """How many trials the sweep runs: the budget, or the whole grid when that is smaller."""
        budget = self.props.budget.max_trials
        return min(budget, self.grid_size()) if self.props.sampling.algorithm == Algorithm.GRID else budget

    def assignment(self, choice: dict[str, int | float]) -> dict[str, Scalar]:
        """The trial's variables from its choice (index of a finite value, or the number itself)."""
        out: dict[str, Scalar] = {}
        for p, options in zip(self.props.parameters, self.values, strict=True):
            picked = choice[p.parameter_name]
            grid = self.props.sampling.algorithm == Algorithm.GRID
            if options is not None and (grid or not isinstance(p, space.NumericParameter)):
                value = options[int(picked)]
            elif isinstance(p, space.NumericParameter) and p.data_type == space.DataType.INTEGER:
                value = int(round(picked))
            else:
                value = float(f"{picked:.12g}")
            out.update(space.variables(p.parameter_name, value))
        return out

    def grid_choice(self, number: int) -> dict[str, int | float]:
        point = space.grid_point([v or [] for v in self.values], number)
        return {p.parameter_name: i for p, i in zip(self.props.parameters, point, strict=True)}


def sampler(props: SweepProperties, number: int, started: int) -> BaseSampler:
    """Seeded per trial number, so a rebuilt study asks the same as the one before a restart."""
    seed = (props.sampling.seed * 100_003 + number) % (2**31)
    if props.sampling.algorithm == Algorithm.BAYESIAN:
        startup = max(2, min(10, props.budget.max_trials // 4))
        return TPESampler(seed=seed, n_startup_trials=startup, constant_liar=True)
    return RandomSampler(seed=seed)


def pruner(policy: EarlyTermination | None) -> BasePruner:
    if policy is None:
        return NopPruner()
    if policy.policy == Policy.MEDIAN:
        return MedianPruner(n_startup_trials=policy.min_completed_trials, n_warmup_steps=policy.delay_evaluation + 1)
    if policy.policy == Policy.TRUNCATION:  # keep the best (100 - truncation)% at each step
        return PercentilePruner(100.0 - policy.truncation_percentage, n_startup_trials=policy.min_completed_trials,
                                n_warmup_steps=policy.delay_evaluation + 1)
    if policy.policy == Policy.HYPERBAND:
        return HyperbandPruner(min_resource=policy.min_resource, max_resource=policy.max_resource,
                               reduction_factor=policy.reduction_factor)
    return SuccessiveHalvingPruner(min_resource=policy.min_resource, reduction_factor=policy.reduction_factor,
                                   min_early_stopping_rate=0)


_STATES = {TS.SUCCEEDED: TrialState.COMPLETE, TS.STOPPED: TrialState.PRUNED, TS.FAILED: TrialState.FAIL,
           TS.CANCELED: TrialState.FAIL, TS.QUEUED: TrialState.RUNNING, TS.RUNNING: TrialState.RUNNING}


def study(sp: Space, trials: list[Trial], number: int) -> optuna.Study:
    """An in-memory study holding the stored trials, in their order."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    props = sp.props
    direction: Literal["maximize", "minimize"] = "maximize" if props.objective.goal == Goal.MAXIMIZE else "minimize"
    built = optuna.create_study(storage=optuna.storages.InMemoryStorage(), study_name="sweep",
                                sampler=sampler(props, number, len(trials)), pruner=pruner(props.early_termination),
                                direction=direction)
    for t in trials:
        state = _STATES[TS(t.state)]
        value = t.final_metric if state == TrialState.COMPLETE else None
        if state == TrialState.COMPLETE and value is None:
            state = TrialState.FAIL
        built.add_trial(create_trial(params=dict(t.choice), distributions=sp.distributions, value=value, state=state,
                                     intermediate_values=metrics.by_step(t.intermediate),
                                     system_attrs=dict(t.pruner_marks)))
    return built


def next_choice(sp: Space, trials: list[Trial]) -> dict[str, int | float]:
    """What trial number len(trials) tries."""
    number = len(trials)
    if sp.props.sampling.algorithm == Algorithm.GRID:
        return sp.grid_choice(number)
    asked = study(sp, trials, number).ask(fixed_distributions=sp.distributions)
    return dict(asked.params)


def stop_reason(sp: Space, trials: list[Trial], index: int) -> tuple[str | None, dict[str, float]]:
    """Whether the policy stops running trial `index` now (the reason), and the pruner's marks to keep."""
    policy = sp.props.early_termination
    if policy is None or not trials[index].intermediate:
        return None, dict(trials[index].pruner_marks)
    built = study(sp, trials, len(trials))
    frozen: FrozenTrial = built.trials[index]
    stop = built.pruner.prune(built, frozen)
    marks = {k: float(v) for k, v in built._storage.get_trial(frozen._trial_id).system_attrs.items()
             if isinstance(v, (int, float))}
    if not stop:
        return None, marks
    step = frozen.last_step
    value = frozen.intermediate_values[step] if step is not None else None
    return (f"Stopped by the {Policy(policy.policy).value} early-termination policy at step {step}: "
            f"{sp.props.objective.metric_name} {value:.6g} is not among the trials kept at that step."), marks
