"""A bridge of the test's own for the netns VM pool (shared/adapters/local/netns_pool.py), and the sweep
that removes every namespace, link and process with the tests' prefix, even those a killed run left."""

from __future__ import annotations

import os
import random
import secrets
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from shared.adapters.local.netns_pool import live_pids
from shared.adapters.local.netns_vm import OWN_PATHS

PREFIX = "bbt"  # every namespace and link the tests make starts with it


def ip(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *argv], capture_output=True, text=True)


def sweep(prefix: str = PREFIX) -> None:
    """Remove namespaces (and every process in them) and links whose names start with prefix."""
    for line in ip("netns", "list").stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith(prefix):
            for _ in range(50):
                pids = live_pids(name)
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(int(pid), 9)
                    except (ProcessLookupError, ValueError):
                        pass
                time.sleep(0.05)
            ip("netns", "del", name)
    for line in ip("-o", "link", "show").stdout.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        if name.startswith(prefix):
            ip("link", "del", name)


@contextmanager
def made_bridge() -> Iterator[tuple[str, str]]:
    """(bridge name, its address) on a /24 of 10.213.0.0/16 that only the tests' namespaces use;
    removed afterwards with everything on it, and the pool's mount points if this run made them."""
    sweep()  # what an earlier run left
    name = f"{PREFIX}{secrets.token_hex(3)}"
    address = f"10.213.{random.randint(1, 254)}.1"
    absent = [Path(p) for p in OWN_PATHS if not Path(p).exists()]
    try:
        for argv in (["link", "add", name, "type", "bridge"], ["addr", "add", f"{address}/24", "dev", name],
                     ["link", "set", name, "up"]):
            done = ip(*argv)
            assert done.returncode == 0, f"ip {' '.join(argv)}: {done.stderr}"
        yield name, address
    finally:
        sweep(name)
        for path in absent:  # empty folders this run made
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()
