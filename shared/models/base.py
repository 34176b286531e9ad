"""Conventions shared by every API model.

* Python attributes are snake_case; the wire name (the spec's property name) is the alias,
  derived by ``to_camel`` unless a field gives its own ``alias``. Models are built from wire
  JSON and dumped with ``by_alias=True`` (see ``to_wire``).
* Request models refuse unknown fields (``extra="forbid"``) and coerce nothing (``strict``),
  so a typo or a wrong type is a 400 that names the field.
* No string is longer than ``MAX_STRING_LENGTH`` unless its field says otherwise (shared/models/limits.py);
  models that only the service writes (errors, file listings) lift the bound.
* Fields holding secrets are listed in ``_secret_fields`` (attribute names); they are dropped
  from every dump unless the caller passes ``context={"reveal_secrets": True}`` (used only
  when the service writes its own documents) — invariant 7.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, SerializationInfo, SerializerFunctionWrapHandler, model_serializer
from pydantic.alias_generators import to_camel

from shared.models.limits import MAX_STRING_LENGTH

REVEAL = {"reveal_secrets": True}


class WireModel(BaseModel):
    """Base of all API models."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        strict=True,
        use_enum_values=True,
        str_max_length=MAX_STRING_LENGTH,
    )

    _secret_fields: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if cls._secret_fields and not issubclass(cls, SecretWireModel):  # invariant 7: a secret is never dumped
            raise TypeError(f"{cls.__name__} has secret fields: it must derive from SecretWireModel")

    def __repr_args__(self) -> Any:
        # Never show a secret in a repr: reprs end up in logs and tracebacks (invariant 7).
        for name, value in super().__repr_args__():
            yield name, ("***" if name in self._secret_fields and value is not None else value)

    def to_wire(self, *, reveal_secrets: bool = False) -> dict[str, Any]:
        """The JSON-ready wire form: aliases, no None values, secrets dropped unless revealed."""
        return self.model_dump(
            mode="json", by_alias=True, exclude_none=True, context=REVEAL if reveal_secrets else None
        )


class SecretWireModel(WireModel):
    """An API model with secret fields (`_secret_fields`): they are dropped from every dump unless
    revealed. Only these models pay for the check (a Python call per dump): the others, most of
    what the service writes, dump in pydantic's own code."""

    @model_serializer(mode="wrap")
    def _drop_secrets(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        data = handler(self)
        if not (info.context or {}).get("reveal_secrets"):
            for name in self._secret_fields:
                field = type(self).model_fields[name]
                data.pop(field.alias if info.by_alias and field.alias else name, None)
        return data
