"""Runs until it is stopped: for cases where the job ends from outside (terminate, failure elsewhere)."""

import time

print("sleeping", flush=True)
while True:
    time.sleep(1)
