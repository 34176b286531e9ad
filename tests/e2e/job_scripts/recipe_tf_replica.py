"""Stand-in for the TensorFlow-GPU-Distributed recipe's mnist_replica.py: takes the recipe's
arguments and checks them against what the launcher set (TF_CONFIG, the host lists, the task index,
the output folders), then leaves a checkpoint as a worker, or serves until the job ends as a
parameter server."""

import argparse
import os
import time

import contract

parser = argparse.ArgumentParser()
for name in ("job_name", "ps_hosts", "worker_hosts", "checkpoint_dir", "log_dir", "data_dir"):
    parser.add_argument(f"--{name}", default=None)
for name in ("num_gpus", "train_steps", "task_index"):
    parser.add_argument(f"--{name}", type=int, default=None)
args = parser.parse_args()

config = contract.tf_config()
task = config["task"]
contract.expect("job name matches TF_CONFIG", args.job_name, "ps" if task["type"] == "ps" else "worker")
contract.expect("--task_index", str(args.task_index), os.environ["AZ_BATCHAI_TASK_INDEX"])
contract.expect("TF_CONFIG index", task["index"], args.task_index)
contract.expect("--ps_hosts", args.ps_hosts.split(","), config["cluster"]["ps"])
contract.expect("--worker_hosts", args.worker_hosts.split(","), config["cluster"]["worker"])
contract.expect("1 ps and 2 workers", (len(config["cluster"]["ps"]), len(config["cluster"]["worker"])), (1, 2))
contract.common_variables()
shared = os.environ["AZ_BATCHAI_SHARED_JOB_TEMP"]
if args.job_name == "ps":
    contract.expect("--data_dir on the data container", args.data_dir.endswith("/data/mnist_data"), True)
    print(f"ps {args.task_index} ok", flush=True)
    contract.done()
    open(os.path.join(shared, f"ps-{args.task_index}-ready"), "w").close()
    while True:
        time.sleep(1)
contract.expect("--checkpoint_dir is the MODEL folder", os.path.isdir(args.checkpoint_dir), True)
contract.expect("--log_dir is the TENSORBOARD folder", os.path.isdir(args.log_dir), True)
contract.expect("--train_steps", args.train_steps, 10000)
print(f"worker {args.task_index} ok: {task['type']} of {args.worker_hosts}", flush=True)
contract.done()
with open(os.path.join(args.checkpoint_dir, f"model.ckpt-{args.task_index}"), "w") as checkpoint:
    checkpoint.write("trained\n")
for _ in range(600):  # as a TensorFlow worker: after its parameter server took part
    if os.path.exists(os.path.join(shared, "ps-0-ready")):
        break
    time.sleep(0.05)
