"""Waiting in end-to-end tests: poll a condition, bounded, and name what never happened."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest


def wait_until(what: str, check: Callable[[], Any], timeout: float = 30, every: float = 0.05,
               describe: Callable[[], Any] = lambda: "") -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what} {describe()}")
        time.sleep(every)
