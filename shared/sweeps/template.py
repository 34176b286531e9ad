"""A sweep's job template: `{{NAME}}` placeholders substituted in every string, a whole-value
placeholder ("nodeCount": "{{NODES}}") replaced by the value itself, and PARAM_<NAME> variables
added for each parameter (the utilities' Substitution.ENV_VAR_PREFIX)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from pydantic import JsonValue

from shared.sweeps.space import Scalar

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
ENV_PREFIX = "PARAM_"


def placeholders(value: JsonValue, path: str) -> Iterator[tuple[str, str]]:
    """(name, path of the field) of every placeholder in the template."""
    if isinstance(value, str):
        for match in PLACEHOLDER.finditer(value):
            yield match.group(1), path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from placeholders(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from placeholders(item, f"{path}[{index}]")


def substitute(value: JsonValue, values: dict[str, Scalar]) -> JsonValue:
    """The template with every placeholder replaced by its value."""
    if isinstance(value, str):
        whole = PLACEHOLDER.fullmatch(value)
        if whole and whole.group(1) in values:
            return values[whole.group(1)]
        return PLACEHOLDER.sub(lambda m: text(values[m.group(1)]) if m.group(1) in values else m.group(0), value)
    if isinstance(value, dict):
        return {key: substitute(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [substitute(item, values) for item in value]
    return value


def text(value: Scalar) -> str:
    """A value as it appears in a command line or a variable: 0.001, not 0.0010000000000000002."""
    if isinstance(value, float):
        return f"{value:.10g}"
    return str(value)


def trial_job(template: dict[str, JsonValue], values: dict[str, Scalar]) -> dict[str, JsonValue]:
    """A trial's job properties: the template substituted, with PARAM_<NAME> variables."""
    job = substitute(template, values)
    assert isinstance(job, dict)
    names = {ENV_PREFIX + name for name in values}
    given = job.get("environmentVariables")
    kept: list[JsonValue] = [v for v in given if not (isinstance(v, dict) and v.get("name") in names)] \
        if isinstance(given, list) else []
    for variable in kept:  # a variable's value is text, even when it was a whole placeholder
        if isinstance(variable, dict) and isinstance(value := variable.get("value"), int | float):
            variable["value"] = text(value)
    added: list[JsonValue] = [{"name": ENV_PREFIX + n, "value": text(v)} for n, v in values.items()]
    job["environmentVariables"] = [*kept, *added]
    return job
