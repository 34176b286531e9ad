"""Horovod, Chainer, CNTK (Python) and Caffe (Python) run under mpirun: this checks what each rank
gets. Arguments: <expected process count> <expected node count> then the job's own arguments."""

import os
import sys

import contract

processes, nodes = int(sys.argv[1]), int(sys.argv[2])
rank, size = contract.mpi_rank()
contract.expect("world size", size, processes)
contract.expect("rank in range", 0 <= rank < processes, True)
contract.expect("hostfile nodes", len(contract.hostfile_hosts()), nodes)
contract.expect("arguments after the script", sys.argv[3:], ["--data", os.environ["AZ_BATCHAI_INPUT_DATA"], "lit"])
contract.common_variables()
print(f"rank {rank} of {size} done", flush=True)
contract.done()
