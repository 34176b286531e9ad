"""Usages: a subscription's quota use per location (clusters, dedicated and low-priority cores)."""

from __future__ import annotations

import enum

from shared.models.base import WireModel
from shared.models.common import Int32, Int64


class UsageUnit(enum.StrEnum):
    """Unit of a usage; the spec knows only counts."""

    COUNT = "Count"


class UsageName(WireModel):
    """Name of a usage, plain and for display."""

    value: str | None = None
    localized_value: str | None = None


class Usage(WireModel):
    """How much of one quota is used, and its limit."""

    unit: UsageUnit | None = None
    current_value: Int32 | None = None
    limit: Int64 | None = None
    name: UsageName | None = None


class ListUsagesResult(WireModel):
    """One page of usages."""

    value: list[Usage] | None = None
    next_link: str | None = None


__all__ = ["ListUsagesResult", "Usage", "UsageName", "UsageUnit"]
