"""Runs in the job's container (tests/e2e/job_scripts/fake_docker.py on a machine without Docker):
the job preparation ran in this same container, the working folder is the job's temp, and the
job's variables reached it by name."""

import os

import contract

temp = os.environ["AZ_BATCHAI_JOB_TEMP"]
container = os.environ.get("FAKE_CONTAINER", "")
contract.expect("in a container", container.startswith("batchai-"), True)
with open(os.path.join(temp, "prepared-in")) as prepared:
    contract.expect("the preparation ran in this container", prepared.read().strip(), container)
contract.expect("works in the job's temp", os.getcwd(), os.path.realpath(temp))
contract.expect("the job's own variable", os.environ.get("GREETING"), "hello")
contract.expect("the task's index", os.environ.get("AZ_BATCHAI_TASK_INDEX") in ("0", "1"), True)
contract.common_variables()
print(f"task {os.environ.get('AZ_BATCHAI_TASK_INDEX')} in {container}", flush=True)
contract.done()
