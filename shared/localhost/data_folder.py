"""The local host's data folder is private to the service's user (invariant 7: secrets at rest).

It holds the owner token, the URL-signing key, the databases (admin passwords, storage keys, job
and webhook secrets) and the nodes' folders. The host sets its umask to 0o077 before it creates
anything, so every file and folder it (and every node agent and job it starts) makes is born
0600 / 0700: nothing is ever readable by others, not even for the moment before a chmod.
"""

from __future__ import annotations

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
