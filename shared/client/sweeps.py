"""The client's sweeps (beside Batch AI's API, under an experiment): `client.sweeps`."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from shared.client.parsing import parse_answer
from shared.sweeps.models import Sweep, SweepState, Trial

ENDED = (SweepState.SUCCEEDED.value, SweepState.FAILED.value, SweepState.CANCELED.value)


class Sweeps:
    """create (a body {"properties": {...}} as in a sweep file), get, list, trials, cancel, delete, wait."""

    def __init__(self, http: Any, workspace_path: Callable[[str, str], str]) -> None:
        self._http, self._ws = http, workspace_path

    def _path(self, group: str, workspace: str, experiment: str, name: str = "") -> str:
        return f"{self._ws(group, workspace)}/experiments/{experiment}/sweeps" + (f"/{name}" if name else "")

    def create(self, group: str, workspace: str, experiment: str, name: str, body: dict[str, Any]) -> Sweep:
        return parse_answer(Sweep, self._http.call("PUT", self._path(group, workspace, experiment, name), body))

    def get(self, group: str, workspace: str, experiment: str, name: str) -> Sweep:
        return parse_answer(Sweep, self._http.call("GET", self._path(group, workspace, experiment, name)))

    def list(self, group: str, workspace: str, experiment: str) -> Iterator[Sweep]:
        return (parse_answer(Sweep, s) for s in self._http.pages("GET", self._path(group, workspace, experiment)))

    def trials(self, group: str, workspace: str, experiment: str, name: str) -> Iterator[Trial]:
        path = self._path(group, workspace, experiment, name) + "/trials"
        return (parse_answer(Trial, t) for t in self._http.pages("GET", path))

    def cancel(self, group: str, workspace: str, experiment: str, name: str) -> Sweep:
        path = self._path(group, workspace, experiment, name) + "/cancel"
        return parse_answer(Sweep, self._http.call("POST", path))

    def delete(self, group: str, workspace: str, experiment: str, name: str) -> None:
        self._http.call("DELETE", self._path(group, workspace, experiment, name))

    def wait(self, group: str, workspace: str, experiment: str, name: str, *, timeout: float | None = None,
             interval: float = 2.0, on_poll: Callable[[Sweep], None] | None = None) -> Sweep:
        """Poll until the sweep has ended (TimeoutError after `timeout` seconds)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            sweep = self.get(group, workspace, experiment, name)
            if on_poll:
                on_poll(sweep)
            if sweep.properties.execution_state in ENDED:
                return sweep
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"The sweep {name} is still {sweep.properties.execution_state} after "
                                   f"{timeout:g} s.")
            time.sleep(interval)
