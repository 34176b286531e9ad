"""Garbage-collector settings for the long-lived processes (the local host's instances, the node agent).

Their requests build many short-lived objects (typed documents, API models), and CPython's default
gen-0 threshold (700 allocations) runs a young collection every few documents and a full one every
few requests, each scanning everything imported at start. Measured on a list of 300 jobs: median
40 ms with the defaults, 24 ms with these. Reference cycles are still collected, only less often.
"""

from __future__ import annotations

import gc

# Young collections every 20,000 net allocations (not 700); the older generations after 20 of the
# one below (not 10), so a full collection stays rare.
THRESHOLDS = (20_000, 20, 20)


def settle_after_start() -> None:
    """Call once the process has imported and built what it keeps: that heap moves to the permanent
    generation (never scanned again), and later collections run at THRESHOLDS."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
