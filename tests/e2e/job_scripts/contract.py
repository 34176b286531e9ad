"""Checks a job's process makes of what its launcher gave it (ENVIRONMENT.md). Every check that
fails is printed and makes the process exit 3, which fails the job; every check that holds prints
one 'ok' line, so the test can read what was checked from the job's stdout."""

from __future__ import annotations

import json
import os
import sys

FAILED: list[str] = []


def expect(what: str, actual: object, wanted: object) -> None:
    if actual == wanted:
        print(f"ok {what}", flush=True)
    else:
        FAILED.append(what)
        print(f"FAILED {what}: {actual!r} != {wanted!r}", file=sys.stderr, flush=True)


def common_variables() -> None:
    """The variables every job sees on every node, and the folders they name."""
    for name in ("AZ_BATCHAI_MOUNT_ROOT", "AZ_BATCHAI_JOB_MOUNT_ROOT", "AZ_BATCHAI_JOB_TEMP_DIR",
                 "AZ_BATCHAI_JOB_TEMP", "AZ_BATCHAI_SHARED_JOB_TEMP", "AZ_BATCHAI_STDOUTERR_DIR"):
        expect(f"{name} is a folder", os.path.isdir(os.environ.get(name, "")), True)
    expect("AZ_BATCHAI_NUM_GPUS", os.environ.get("AZ_BATCHAI_NUM_GPUS"), "0")
    expect("hostfile exists", os.path.isfile(os.environ.get("AZ_BATCHAI_MPI_HOST_FILE", "")), True)
    expect("the job's temp is below the temp root",
           os.environ["AZ_BATCHAI_JOB_TEMP"].startswith(os.environ["AZ_BATCHAI_JOB_TEMP_DIR"]), True)
    expect("stdouterr dir ends with stdouterr", os.environ["AZ_BATCHAI_STDOUTERR_DIR"].endswith("/stdouterr"), True)


def hostfile_hosts() -> list[str]:
    with open(os.environ["AZ_BATCHAI_MPI_HOST_FILE"]) as lines:
        return [line.split()[0] for line in lines if line.strip()]


def mpi_rank() -> tuple[int, int]:
    return int(os.environ["OMPI_COMM_WORLD_RANK"]), int(os.environ["OMPI_COMM_WORLD_SIZE"])


def done() -> None:
    if FAILED:
        print(f"{len(FAILED)} check(s) failed: {', '.join(FAILED)}", file=sys.stderr, flush=True)
        sys.exit(3)


def tf_config() -> dict:
    return json.loads(os.environ["TF_CONFIG"])
