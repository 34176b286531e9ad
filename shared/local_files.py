"""Walking a local folder the way blob names see it: shared by the folder blob store and the
nodes' blob sync."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path


def walk_files(folder: Path, prefix: str = "") -> Iterator[tuple[str, os.stat_result]]:
    """(blob name, stat) of every file below `folder`, named `prefix` + its '/'-separated path;
    links are neither entered nor listed (no loops, nothing outside)."""
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        name = prefix + entry.name
        try:
            if entry.is_dir(follow_symlinks=False):
                yield from walk_files(Path(entry.path), name + "/")
            elif entry.is_file(follow_symlinks=False):
                yield name, entry.stat()
        except FileNotFoundError:
            continue  # deleted while listing
