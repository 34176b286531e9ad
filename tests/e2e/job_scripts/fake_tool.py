#!/usr/bin/env python3
"""Stands in for the `cntk` and `caffe` commands (neither is packaged here): records the arguments
its launcher gave it, and checks the MPI ranks when there are several."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import contract  # noqa: E402

tool = os.path.basename(sys.argv[0])
print(f"{tool} arguments: {sys.argv[1:]}", flush=True)
if "OMPI_COMM_WORLD_SIZE" in os.environ:
    rank, size = contract.mpi_rank()
    print(f"{tool} rank {rank} of {size}", flush=True)
contract.common_variables()
contract.done()
