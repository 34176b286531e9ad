"""Stand-in for the PyTorch-GPU-Distributed-Gloo recipe's mnist_trainer.py: takes the recipe's
arguments, checks them against the launcher's variables, and all-reduces over the backend named."""

import argparse
import os

import torch
import torch.distributed as dist

import contract

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int)
parser.add_argument("--world-size", type=int)
parser.add_argument("--dist-backend")
parser.add_argument("--dist-url")
parser.add_argument("--rank", type=int)
args = parser.parse_args()

contract.expect("--rank is the task index", str(args.rank), os.environ["AZ_BATCHAI_TASK_INDEX"])
contract.expect("--dist-url is the init method", args.dist_url, os.environ["AZ_BATCHAI_PYTORCH_INIT_METHOD"])
contract.expect("AZ_BATCHAI_PYTORCH_BACKEND", os.environ.get("AZ_BATCHAI_PYTORCH_BACKEND"), args.dist_backend)
contract.common_variables()
dist.init_process_group(args.dist_backend, init_method=args.dist_url, rank=args.rank, world_size=args.world_size)
value = torch.tensor([float(args.rank)])
dist.all_reduce(value)
contract.expect("all-reduced ranks", value.item(), float(sum(range(args.world_size))))
print(f"rank {args.rank} of {args.world_size} over {args.dist_backend}: sum {value.item():.0f}, "
      f"{args.epochs} epochs", flush=True)
dist.destroy_process_group()
contract.done()
