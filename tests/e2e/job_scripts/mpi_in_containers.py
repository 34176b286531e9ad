"""customMpi in containers: every rank all-reduces its rank number with mpi4py and says which
container it runs in (FAKE_CONTAINER, set by tests/e2e/job_scripts/fake_docker.py's `exec`)."""

import os

from mpi4py import MPI

import contract

comm = MPI.COMM_WORLD
total = comm.allreduce(comm.Get_rank(), op=MPI.SUM)
container = os.environ.get("FAKE_CONTAINER", "none")
print(f"rank {comm.Get_rank()} of {comm.Get_size()} in {container}: sum {total}", flush=True)
contract.expect("all-reduced sum", total, sum(range(comm.Get_size())))
contract.expect("in a container", container.startswith("batchai-"), True)
contract.done()
