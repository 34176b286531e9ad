"""Request bodies checked against the Azure SDK's own models, as ARM checks them against its schema.

The generated models of azure-mgmt-compute and azure-mgmt-network (typespec "hybrid" models) say,
per type, each member's JSON name, its Python type (required when not Optional) and its visibility.
`check` walks a JSON body along them and raises ShapeError the way ARM answers: a member the type
does not have ("Could not find member 'x' on object of type 'Y'"), a value of the wrong JSON type,
an enum value the service does not know, or a required member missing. Read-only members are
accepted and ignored, as ARM does.
"""

from __future__ import annotations

import enum
import functools
import sys
import types
import typing
from typing import Any


class ShapeError(Exception):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path, self.message = path, message


@functools.cache
def _fields(model: type) -> dict[str, tuple[str, Any, bool]]:
    """JSON name -> (attribute, type, writable) of a model class."""
    model()  # the generated base class fills _attr_to_rest_field on first use
    module = sys.modules[model.__module__]
    package = sys.modules[model.__module__.rsplit(".", 1)[0]]
    hints = typing.get_type_hints(model, globalns={**vars(module), "_models": package})
    fields = {}
    for attribute, rest in model._attr_to_rest_field.items():  # type: ignore[attr-defined]
        visibility = rest._visibility or ["read", "create", "update"]
        fields[rest._rest_name] = (attribute, hints.get(attribute, Any), "create" in visibility or "update" in visibility)
    return fields


def _is_model(kind: Any) -> bool:
    return isinstance(kind, type) and hasattr(kind, "_attr_to_rest_field") or (
        isinstance(kind, type) and kind.__name__ != "Model" and any(b.__name__ == "Model" for b in kind.__mro__[1:]))


def _optional(kind: Any) -> tuple[Any, bool]:
    """(the type without None, whether None was allowed)."""
    args = typing.get_args(kind)
    if typing.get_origin(kind) in (typing.Union, types.UnionType) and type(None) in args:
        rest = tuple(a for a in args if a is not type(None))
        return (rest[0] if len(rest) == 1 else typing.Union[rest]), True  # noqa: UP007
    return kind, False


def check(model: type, body: Any, path: str = "") -> None:
    """Raise ShapeError at the first thing ARM would refuse in `body` as a `model`."""
    if not isinstance(body, dict):
        raise ShapeError(path or "body", f"Expected an object of type '{model.__name__}' at '{path or 'body'}'.")
    fields = _fields(model)
    for name, value in body.items():
        here = f"{path}.{name}" if path else name
        if name not in fields:
            raise ShapeError(here, f"Could not find member '{name}' on object of type '{model.__name__}'. "
                                   f"Path '{here}'.")
        _attribute, kind, writable = fields[name]
        if writable and value is not None:
            _value(_optional(kind)[0], value, here)
    for name, (_attribute, kind, writable) in fields.items():
        if writable and not _optional(kind)[1] and body.get(name) is None:
            here = f"{path}.{name}" if path else name
            raise ShapeError(here, f"Required parameter '{name}' is missing (null). Path '{here}'.")


def _value(kind: Any, value: Any, path: str) -> None:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if kind is Any:
        return
    if origin in (typing.Union, types.UnionType):
        enums = [a for a in args if isinstance(a, type) and issubclass(a, enum.Enum)]
        if enums and str in args:  # an extensible enum: a string, one of the known values (any case)
            _expect(isinstance(value, str), path, "a string")
            known = {m.value.lower() for e in enums for m in e}
            if value.lower() not in known:
                raise ShapeError(path, f"The value '{value}' is not valid for '{path}'; known values: "
                                       f"{', '.join(sorted(m.value for e in enums for m in e))}.")
            return
        for arg in args:  # any other union: one of them must fit
            try:
                _value(arg, value, path)
                return
            except ShapeError:
                continue
        raise ShapeError(path, f"The value at '{path}' has none of the expected types.")
    if origin is list:
        _expect(isinstance(value, list), path, "an array")
        for index, item in enumerate(value):
            _value(args[0] if args else Any, item, f"{path}[{index}]")
        return
    if origin is dict:
        _expect(isinstance(value, dict), path, "an object")
        for key, item in value.items():
            _value(args[1] if len(args) > 1 else Any, item, f"{path}.{key}")
        return
    if kind is bool:
        _expect(isinstance(value, bool), path, "a boolean")
    elif kind is int:
        _expect(isinstance(value, int) and not isinstance(value, bool), path, "an integer")
    elif kind is float:
        _expect(isinstance(value, (int, float)) and not isinstance(value, bool), path, "a number")
    elif kind in (str, bytes) or (isinstance(kind, type) and kind.__module__ == "datetime"):
        _expect(isinstance(value, str), path, "a string")
    elif isinstance(kind, type) and issubclass(kind, enum.Enum):
        _value(typing.Union[str, kind], value, path)  # noqa: UP007
    elif isinstance(kind, type) and hasattr(kind, "_attr_to_rest_field") or _is_model(kind):
        check(kind, value, path)


def _expect(condition: bool, path: str, what: str) -> None:
    if not condition:
        raise ShapeError(path, f"Error converting value at '{path}': expected {what}.")
