"""A small but real distributed training: two-class points on two interleaved spirals, learnt by a
little MLP with DistributedDataParallel over gloo (CPU). Each rank generates the same data set from
one seed and trains on its own shard; the loss and accuracy of every epoch go to stdout, and rank 0
saves the model to the output directory.

Batch AI's PyTorch launcher gives each process its rank in AZ_BATCHAI_TASK_INDEX and the rendezvous
address in AZ_BATCHAI_PYTORCH_INIT_METHOD; the world size comes as an argument, as in Batch AI's
own samples.

As a trial of a parameter sweep it takes --lr and --hidden, shows the PARAM_ variables the sweep
gave it, and appends each epoch's test accuracy to $AZ_BATCHAI_STDOUTERR_DIR/metrics.jsonl (the
sweep's metrics file: one JSON object per line, no library needed).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


def spirals(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two interleaved spirals with a little noise: not separable by a line, easy for an MLP."""
    g = torch.Generator().manual_seed(seed)
    half = count // 2
    t = torch.rand(half, generator=g) * 3 * math.pi + 0.5
    arm = torch.stack([t * torch.cos(t), t * torch.sin(t)], dim=1) / (3 * math.pi)
    points = torch.cat([arm, -arm]) + 0.02 * torch.randn(2 * half, 2, generator=g)
    labels = torch.cat([torch.zeros(half), torch.ones(half)]).long()
    order = torch.randperm(2 * half, generator=g)
    return points[order], labels[order]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--world-size", type=int, required=True)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--pause", type=float, default=0.0, help="seconds to wait after each epoch, so that a "
                        "sweep's early stopping can be watched on a tiny data set")
    parser.add_argument("--output", default=os.environ.get("AZ_BATCHAI_OUTPUT_MODEL", "."))
    args = parser.parse_args()

    rank = int(os.environ["AZ_BATCHAI_TASK_INDEX"])
    swept = {k: v for k, v in os.environ.items() if k.startswith("PARAM_")}
    if rank == 0 and swept:
        print("sweep parameters: " + " ".join(f"{k}={v}" for k, v in sorted(swept.items())), flush=True)
    metrics_file = os.path.join(os.environ.get("AZ_BATCHAI_STDOUTERR_DIR", "."), "metrics.jsonl")
    dist.init_process_group("gloo", init_method=os.environ["AZ_BATCHAI_PYTORCH_INIT_METHOD"],
                            rank=rank, world_size=args.world_size)
    torch.set_num_threads(1)  # the ranks share the machine's cores
    torch.manual_seed(0)  # the same initial weights on every rank
    points, labels = spirals(args.samples, seed=42)
    split = int(0.8 * len(points))
    train_x, train_y = points[:split][rank::args.world_size], labels[:split][rank::args.world_size]
    test_x, test_y = points[split:], labels[split:]

    width = args.hidden
    model = DistributedDataParallel(nn.Sequential(nn.Linear(2, width), nn.Tanh(), nn.Linear(width, width), nn.Tanh(),
                                                  nn.Linear(width, 2)))
    optimiser = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = nn.CrossEntropyLoss()
    started = time.monotonic()
    for epoch in range(1, args.epochs + 1):
        for batch in torch.split(torch.randperm(len(train_x)), 32):
            optimiser.zero_grad()
            loss = loss_fn(model(train_x[batch]), train_y[batch])
            loss.backward()
            optimiser.step()
        with torch.no_grad():
            train_loss = loss_fn(model(train_x), train_y)
            dist.all_reduce(train_loss)
            accuracy = (model(test_x).argmax(1) == test_y).float().mean().item()
        if rank == 0:
            print(f"epoch {epoch:3d}  loss {train_loss.item() / args.world_size:.4f}  "
                  f"test accuracy {accuracy:.3f}", flush=True)
            if "AZ_BATCHAI_STDOUTERR_DIR" in os.environ:
                with open(metrics_file, "a") as metrics:
                    metrics.write(json.dumps({"name": "accuracy", "value": accuracy, "step": epoch}) + "\n")
        time.sleep(args.pause)
    if rank == 0:
        os.makedirs(args.output, exist_ok=True)
        path = os.path.join(args.output, "model.pt")
        torch.save(model.module.state_dict(), path)
        print(f"trained on {args.world_size} processes in {time.monotonic() - started:.1f} s; "
              f"test accuracy {accuracy:.3f}; model saved to {path}", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
