"""What the service knows about VM sizes: cores, GPUs, and the quota family they count against."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class VmSize:
    cores: int
    gpus: int
    family: str


def _family(prefix: str, version: str = "") -> str:
    return f"Standard {prefix}{version} Family"


# Sizes Batch AI offered, by lower-cased name. Others are read from the name (see lookup).
KNOWN: dict[str, VmSize] = {
    **{f"standard_d{n}": VmSize(c, 0, _family("D")) for n, c in ((1, 1), (2, 2), (3, 4), (4, 8))},
    **{f"standard_d{n}_v2": VmSize(c, 0, _family("D", "v2")) for n, c in ((1, 1), (2, 2), (3, 4), (4, 8), (5, 16))},
    **{f"standard_nc{c}": VmSize(c, c // 6, _family("NC")) for c in (6, 12, 24)},
    "standard_nc24r": VmSize(24, 4, _family("NC")),
    **{f"standard_nc{c}s_v2": VmSize(c, c // 6, _family("NC", "v2")) for c in (6, 12, 24)},
    **{f"standard_nc{c}s_v3": VmSize(c, c // 6, _family("NC", "v3")) for c in (6, 12, 24)},
    **{f"standard_nd{c}s": VmSize(c, c // 6, _family("ND")) for c in (6, 12, 24)},
    **{f"standard_nv{c}": VmSize(c, c // 6, _family("NV")) for c in (6, 12, 24)},
}
_SHAPE = re.compile(r"^standard_([a-z]+?)(\d+)[a-z]*(?:_(v\d+))?$")


def lookup(name: str) -> VmSize:
    """The size by name; an unknown size is read from its name (Standard_<family><cores>..._v<n>)."""
    key = name.lower()
    if key in KNOWN:
        return KNOWN[key]
    match = _SHAPE.fullmatch(key)
    if not match:
        return VmSize(1, 0, "Other Family")
    family, cores, version = match.groups()
    return VmSize(int(cores), 0, _family(family.upper(), version or ""))
