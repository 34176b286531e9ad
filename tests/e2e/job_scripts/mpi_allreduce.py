"""customMpi: every rank all-reduces its rank number with mpi4py."""

from mpi4py import MPI

import contract

comm = MPI.COMM_WORLD
total = comm.allreduce(comm.Get_rank(), op=MPI.SUM)
print(f"rank {comm.Get_rank()} of {comm.Get_size()} on {MPI.Get_processor_name()}: sum {total}", flush=True)
contract.expect("all-reduced sum", total, sum(range(comm.Get_size())))
contract.done()
