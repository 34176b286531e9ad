"""pyTorchSettings: each process has its rank and the rendezvous address, and all-reduces over gloo."""

import os
import sys

import torch
import torch.distributed as dist

import contract

world = int(sys.argv[1])
rank = int(os.environ["AZ_BATCHAI_TASK_INDEX"])
dist.init_process_group("gloo", init_method=os.environ["AZ_BATCHAI_PYTORCH_INIT_METHOD"], rank=rank, world_size=world)
value = torch.tensor([float(rank)])
dist.all_reduce(value)
contract.expect("all-reduced ranks", value.item(), float(sum(range(world))))
contract.expect("init method is tcp", os.environ["AZ_BATCHAI_PYTORCH_INIT_METHOD"].startswith("tcp://"), True)
contract.common_variables()
print(f"rank {rank} of {world}: sum {value.item():.0f}", flush=True)
dist.destroy_process_group()
contract.done()
