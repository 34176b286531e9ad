"""The local host's data folder is private to the service's user (invariant 7: secrets at rest).

It holds the owner token, the URL-signing key, the databases (admin passwords, storage keys, job
and webhook secrets) and the nodes' folders. The host sets its umask to 0o077 before it creates
anything, so every file and folder it (and every node agent and job it starts) makes is born
0600 / 0700: nothing is ever readable by others, not even for the moment before a chmod.
"""

from __future__ import annotations

import fcntl
import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)
PRIVATE_UMASK = 0o077
FOLDER_MODE = 0o700


def make_private(data_dir: Path) -> bool:
    """Set the umask, then create `data_dir` 0700, or tighten an existing looser one (and what is
    in it) with one warning. True when it had to be tightened."""
    os.umask(PRIVATE_UMASK)
    try:
        mode = stat.S_IMODE(data_dir.stat().st_mode)
    except FileNotFoundError:
        data_dir.mkdir(mode=FOLDER_MODE, parents=True)  # the umask makes the parents 0700 too
        return False
    if not mode & ~FOLDER_MODE:
        return False
    log.warning("The data folder %s was readable by others (mode %o); it and its files are now private "
                "to this user (0700 folders, 0600 files).", data_dir, mode)
    _tighten(data_dir)
    return True


def _tighten(folder: Path) -> None:
    """Take every permission of group and others from the folder and all below it (links untouched)."""
    for here, _, files in os.walk(folder):  # links to folders are not entered
        for path in (here, *(os.path.join(here, name) for name in files)):
            try:
                info = os.lstat(path)
                if not stat.S_ISLNK(info.st_mode) and stat.S_IMODE(info.st_mode) & PRIVATE_UMASK:
                    os.chmod(path, stat.S_IMODE(info.st_mode) & ~PRIVATE_UMASK)
            except FileNotFoundError:
                continue  # removed meanwhile


HOST_LOCK = "host.lock"


class FolderInUse(Exception):
    """Another host (or supervisor) already serves this data folder."""


def claim_for_host(data_dir: Path) -> int:
    """Make this process the one host of `data_dir` for as long as it lives, or raise FolderInUse.

    A host started beside another on the same folder would take the deployment's start and stop for
    its own: clear the other's leases and node graces on start, stop every node and remove the endpoint
    file on exit. So the host (or the supervisor of `--workers` instances, which alone does those) holds
    an exclusive flock on DATA_DIR/host.lock; the kernel drops it when the process ends, however it ends.
    Returns the lock's descriptor (kept open, not inherited by children)."""
    fd = os.open(data_dir / HOST_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = os.pread(fd, 16, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise FolderInUse(f"Another Batch AI local host (pid {owner}) serves {data_dir}: use it, or stop it first "
                          f"(`batchai local down --data-dir {data_dir}`).") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd
