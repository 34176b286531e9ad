"""pyTorchSettings: each process has its rank, the rendezvous address and the backend (argv[2], as
torch.distributed spells it), and all-reduces over it, as the PyTorch recipe does."""

import os
import sys

import torch
import torch.distributed as dist

import contract

world = int(sys.argv[1])
rank = int(os.environ["AZ_BATCHAI_TASK_INDEX"])
contract.expect("backend", os.environ.get("AZ_BATCHAI_PYTORCH_BACKEND"), sys.argv[2])
backend, init_method = os.environ["AZ_BATCHAI_PYTORCH_BACKEND"], os.environ["AZ_BATCHAI_PYTORCH_INIT_METHOD"]
dist.init_process_group(backend, init_method=init_method, rank=rank, world_size=world)
value = torch.tensor([float(rank)])
dist.all_reduce(value)
contract.expect("all-reduced ranks", value.item(), float(sum(range(world))))
contract.expect("init method is tcp", os.environ["AZ_BATCHAI_PYTORCH_INIT_METHOD"].startswith("tcp://"), True)
contract.common_variables()
print(f"rank {rank} of {world}: sum {value.item():.0f}", flush=True)
dist.destroy_process_group()
contract.done()
