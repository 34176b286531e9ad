"""`batchai sweep`: create (a sweep file {"properties": {...}}), show, list, trials, cancel, wait,
delete. A sweep's trials are jobs of its experiment: `batchai job ...` works on each of them."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from shared.cli.common import (
    Column,
    ExperimentOpt,
    GroupOpt,
    NameOpt,
    Output,
    OutputOpt,
    WorkspaceOpt,
    YesOpt,
    confirm,
    console,
    dig,
    read_json_file,
    resource_id,
    show,
)
from shared.cli.jobs import _where
from shared.sweeps.models import Sweep, Trial

app = typer.Typer(help="Parameter sweeps: many trials of a job template, searched and stopped early by the service.",
                  no_args_is_help=True)


def _metric(value: float | None) -> str | None:
    return None if value is None else f"{value:.6g}"


def _counts(s: Sweep) -> str:
    counts = s.properties.trial_counts
    return " ".join(f"{k}:{v}" for k, v in counts.items() if v)


COLUMNS: list[Column] = [
    ("Name", lambda s: s.name), ("State", lambda s: dig(s, "properties", "execution_state")),
    ("Sampling", lambda s: dig(s, "properties", "sampling", "algorithm")),
    ("Planned", lambda s: dig(s, "properties", "planned_trials")), ("Trials", _counts),
    ("Best", lambda s: _metric(dig(s, "properties", "best_trial", "final_metric"))),
    ("Best Trial", lambda s: dig(s, "properties", "best_trial", "job_name"))]
TRIAL_COLUMNS: list[Column] = [
    ("#", lambda t: t.number), ("Job", lambda t: t.job_name), ("State", lambda t: t.state),
    ("Parameters", lambda t: " ".join(f"{k}={v}" for k, v in t.parameters.items())),
    ("Final", lambda t: _metric(t.final_metric)), ("Best", lambda t: _metric(t.best_metric)),
    ("Steps", lambda t: len(t.intermediate)), ("Reason", lambda t: t.reason)]


@app.command("create")
def create(
    name: NameOpt, experiment: ExperimentOpt,
    config_file: Annotated[str, typer.Option("--config-file", "-f", show_default=False,
                                             help="Sweep file: {\"properties\": {\"jobTemplate\": ..., "
                                                  "\"parameters\": ..., ...}}.")],
    group: GroupOpt = None, workspace: WorkspaceOpt = None,
    cluster: Annotated[str | None, typer.Option("--cluster", "-c", show_default=False,
                                                help="The trials' cluster (name or id); overrides the file."
                                                )] = None,
    output: OutputOpt = Output.table,
) -> None:
    """Create a sweep: the service asks for trials, runs them as jobs, reads their metric and stops
    the losers early; it keeps going when this command (or the laptop) is gone."""
    client, group, workspace = _where(group, workspace)
    body: dict[str, Any] = read_json_file(config_file, "sweep file")
    if cluster:
        template = body.setdefault("properties", {}).setdefault("jobTemplate", {})
        template["cluster"] = {"id": resource_id(cluster, "clusters", group, workspace, client.config.subscription)}
    show(client.sweeps.create(group, workspace, experiment, name, body), output, COLUMNS)


@app.command("show")
def show_sweep(name: NameOpt, experiment: ExperimentOpt, group: GroupOpt = None, workspace: WorkspaceOpt = None,
               output: OutputOpt = Output.table) -> None:
    """Show a sweep: its state, trial counts and best trial."""
    client, group, workspace = _where(group, workspace)
    show(client.sweeps.get(group, workspace, experiment, name), output, COLUMNS)


@app.command("list")
def list_sweeps(experiment: ExperimentOpt, group: GroupOpt = None, workspace: WorkspaceOpt = None,
                output: OutputOpt = Output.table) -> None:
    """List an experiment's sweeps."""
    client, group, workspace = _where(group, workspace)
    show(client.sweeps.list(group, workspace, experiment), output, COLUMNS, title="sweeps")


@app.command("trials")
def trials(name: NameOpt, experiment: ExperimentOpt, group: GroupOpt = None, workspace: WorkspaceOpt = None,
           output: OutputOpt = Output.table) -> None:
    """A sweep's trials: parameters, state, final and best metric, and why a trial stopped."""
    client, group, workspace = _where(group, workspace)
    found: list[Trial] = list(client.sweeps.trials(group, workspace, experiment, name))
    show(found, output, TRIAL_COLUMNS, title="trials")


@app.command("cancel")
def cancel(name: NameOpt, experiment: ExperimentOpt, group: GroupOpt = None, workspace: WorkspaceOpt = None,
           yes: YesOpt = False) -> None:
    """Stop a sweep: no new trial; its unfinished trials are canceled and their jobs terminated."""
    client, group, workspace = _where(group, workspace)
    confirm(f"Cancel the sweep {name}?", yes)
    sweep = client.sweeps.cancel(group, workspace, experiment, name)
    console.print(f"The sweep {name} is {sweep.properties.execution_state}.", markup=False)


@app.command("delete")
def delete(name: NameOpt, experiment: ExperimentOpt, group: GroupOpt = None, workspace: WorkspaceOpt = None,
           yes: YesOpt = False) -> None:
    """Delete a sweep and its trials' jobs."""
    client, group, workspace = _where(group, workspace)
    confirm(f"Delete the sweep {name} and its trials' jobs?", yes)
    client.sweeps.delete(group, workspace, experiment, name)
    console.print(f"Deleted the sweep {name}.", markup=False)


@app.command("wait")
def wait(name: NameOpt, experiment: ExperimentOpt, group: GroupOpt = None, workspace: WorkspaceOpt = None,
         timeout: Annotated[float | None, typer.Option("--timeout", min=0, show_default=False,
                                                       help="Give up after this many seconds.")] = None,
         interval: Annotated[float, typer.Option("--interval", min=0.1, help="Seconds between polls.")] = 2.0,
         ) -> None:
    """Wait for the sweep to end, showing its progress. Exit code 0 when it succeeded, 1 otherwise."""
    client, group, workspace = _where(group, workspace)
    started = time.monotonic()
    seen: list[str] = []

    def progress(s: Sweep) -> None:
        line = f"{s.properties.execution_state}  {_counts(s)}"
        if not seen or seen[-1] != line:
            seen.append(line)
            console.print(f"{time.monotonic() - started:5.0f} s  {line}", markup=False)

    try:
        sweep = client.sweeps.wait(group, workspace, experiment, name, timeout=timeout, interval=interval,
                                   on_poll=progress)
    except TimeoutError as exc:
        console.print(str(exc), markup=False)
        raise typer.Exit(2) from None
    best = sweep.properties.best_trial
    if best is not None:
        console.print(f"Best trial: {best.job_name} ({' '.join(f'{k}={v}' for k, v in best.parameters.items())}) "
                      f"{sweep.properties.objective.metric_name} {best.final_metric:.6g}", markup=False)
    raise typer.Exit(0 if sweep.properties.execution_state == "succeeded" else 1)
