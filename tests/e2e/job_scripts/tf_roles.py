"""tensorFlowSettings: each task checks TF_CONFIG, the host lists, its index and its role's
arguments. Parameter servers then wait, as a TensorFlow server would, until the job ends them."""

import os
import sys
import time

import contract

role = sys.argv[1]  # what the job's arguments for this role say it is
config = contract.tf_config()
task = config["task"]
ps_hosts = os.environ["AZ_BATCHAI_PS_HOSTS"].split(",")
worker_hosts = os.environ["AZ_BATCHAI_WORKER_HOSTS"].split(",")
contract.expect("cluster ps", config["cluster"]["ps"], ps_hosts)
contract.expect("cluster workers", config["cluster"]["worker"], worker_hosts)
contract.expect("environment", config["environment"], "cloud")
contract.expect("task index", str(task["index"]), os.environ["AZ_BATCHAI_TASK_INDEX"])
contract.expect("task type matches its arguments", task["type"], role)
contract.expect("counts", (len(ps_hosts), len(worker_hosts)), (1, 2))
contract.expect("distinct addresses", len(set(ps_hosts + worker_hosts)), 3)
print(f"{role} {task['index']} ok: TF_CONFIG={os.environ['TF_CONFIG']}", flush=True)
contract.done()
shared = os.environ["AZ_BATCHAI_SHARED_JOB_TEMP"]
if role == "ps":
    open(os.path.join(shared, f"ps-{task['index']}-ready"), "w").close()
    while True:
        time.sleep(1)
# As TensorFlow workers connect to their parameter servers before they work: end only after every
# parameter server has checked its TF_CONFIG (else a slow one could be stopped before it reports).
for _ in range(600):
    if all(os.path.exists(os.path.join(shared, f"ps-{n}-ready")) for n in range(len(ps_hosts))):
        break
    time.sleep(0.05)
