"""Stand-in for the Horovod-PyTorch recipe's pytorch_mnist.py and the Chainer recipe's
train_mnist.py, both started through mpirun: each rank checks its rank, the world size (the
processCount, which defaults to the job's nodeCount) and the hostfile, and rank 0 leaves a model in
the folder given by -o, when given. It prints the name it was copied under and its arguments."""

import os
import sys

import contract

recipe, rest = os.path.basename(sys.argv[0]), sys.argv[1:]
rank, size = contract.mpi_rank()
contract.expect("world size is the node count", size, 2)
contract.expect("hostfile nodes", len(contract.hostfile_hosts()), 2)
contract.common_variables()
if "-o" in rest:
    output = rest[rest.index("-o") + 1]
    contract.expect("-o is the MODEL folder", os.path.isdir(output), True)
    if rank == 0:
        with open(os.path.join(output, "model.npz"), "w") as model:
            model.write("trained\n")
print(f"{recipe} rank {rank} of {size} ok: {' '.join(rest)}", flush=True)
contract.done()
