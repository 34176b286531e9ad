"""caffe2Settings: one process per node with its index; the nodes meet in the shared job temp."""

import os
import sys
import time

import contract

nodes = int(sys.argv[1])
index = int(os.environ["AZ_BATCHAI_TASK_INDEX"])
shared = os.environ["AZ_BATCHAI_SHARED_JOB_TEMP"]
open(os.path.join(shared, f"node-{index}"), "w").close()
deadline = time.monotonic() + 30
while len([f for f in os.listdir(shared) if f.startswith("node-")]) < nodes and time.monotonic() < deadline:
    time.sleep(0.05)
contract.expect("every node met in the shared temp", sorted(os.listdir(shared)), [f"node-{i}" for i in range(nodes)])
contract.common_variables()
print(f"caffe2 node {index} of {nodes} ok", flush=True)
contract.done()
