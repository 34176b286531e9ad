"""Operations: the catalogue of REST operations the provider offers (GET .../operations)."""

from __future__ import annotations

from typing import Any

from shared.models.base import WireModel


class OperationDisplay(WireModel):
    """Display texts of an operation (inline `display` object of the spec's Operation)."""

    provider: str | None = None
    operation: str | None = None
    resource: str | None = None
    description: str | None = None


class Operation(WireModel):
    """One REST operation, as ARM's operations API lists it."""

    name: str | None = None
    display: OperationDisplay | None = None
    origin: str | None = None
    properties: dict[str, Any] | None = None


class OperationListResult(WireModel):
    """One page of operations."""

    value: list[Operation] | None = None
    next_link: str | None = None


__all__ = ["Operation", "OperationDisplay", "OperationListResult"]
