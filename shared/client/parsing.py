"""Answers read leniently: a client takes whatever its service can return.

The API models are the request models too: they forbid unknown fields and check rules meant for
what a user sends (an auto-scale cluster's `initialNodeCount` may not be below its minimum, ...).
An answer is not a request: the service fills in defaults (it answered `initialNodeCount: 0` for a
cluster made with only `--min 1 --max 1`, which that rule once refused, so the CLI refused its own
cluster), a newer service adds fields and values, an older one keeps documents a newer rule refuses.
So an answer is validated as usual first, and when that fails it is read part by part:
every part that validates is kept as validated, a model whose rules fail is built from its
parts without its rules, unknown fields are dropped, and a value that fits no type is kept as
it came. What is shown is then what the service said.
"""

from __future__ import annotations

import functools
import types
import typing
from typing import Any, TypeVar, Union

from pydantic import BaseModel, TypeAdapter, ValidationError

from shared.models import REDACTED

M = TypeVar("M", bound=BaseModel)


def parse_answer(model: type[M], data: Any) -> M:
    """`data` (wire JSON, secrets removed) as `model`, leniently if it must be."""
    try:
        # Wire JSON (ISO dates, enum values) with its secrets removed, so rules such as "accountKey or
        # its reference" are checked as for any redacted document.
        return model.model_validate(data, strict=False, context=REDACTED)
    except ValidationError:
        if not isinstance(data, dict):
            raise
        return _lenient_model(model, data)


def _lenient_model(model: type[M], data: dict[str, Any]) -> M:
    values: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        for key in (field.alias, name):
            if key and key in data:
                values[name] = _lenient_value(field.annotation, data[key])
                break
    return model.model_construct(_fields_set=set(values), **values)


def _lenient_value(annotation: Any, value: Any) -> Any:
    try:
        return _adapter(annotation).validate_python(value, strict=False, context=REDACTED)
    except (ValidationError, TypeError):
        pass
    if value is None:
        return None
    for option in _options(annotation):
        origin = typing.get_origin(option)
        if isinstance(option, type) and issubclass(option, BaseModel) and isinstance(value, dict):
            return _lenient_model(option, value)
        if origin is list and isinstance(value, list):
            (item,) = typing.get_args(option) or (Any,)
            return [_lenient_value(item, v) for v in value]
        if origin is dict and isinstance(value, dict):
            _, item = typing.get_args(option) or (Any, Any)
            return {k: _lenient_value(item, v) for k, v in value.items()}
    return value  # fits no type the model knows: shown as the service gave it


def _options(annotation: Any) -> tuple[Any, ...]:
    """The types of `X | Y | None` (Annotated constraints removed)."""
    if typing.get_origin(annotation) is typing.Annotated:
        return _options(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) in (Union, types.UnionType):
        return tuple(o for arg in typing.get_args(annotation) for o in _options(arg))
    return (annotation,)


def _adapter(annotation: Any) -> TypeAdapter[Any]:
    try:
        return _cached_adapter(annotation)
    except TypeError:  # an annotation that cannot be a cache key
        return TypeAdapter(annotation)


@functools.cache
def _cached_adapter(annotation: Any) -> TypeAdapter[Any]:
    return TypeAdapter(annotation)
