"""Jobs submitted by queue message on the local host: a pipeline's view, through the Service Bus
door with the azure-servicebus SDK. Messages are sent in batches on one connection; each asks for a
reply, and a job counts once its "accepted" reply is back (the job is then stored and queued).

    python bench/submissions.py [--jobs 1000] [--batch 50] [--workers N] [--no-slurm]

Both cases of api_throughput.py: jobs on a cluster with no nodes (failed at once), and jobs that queue
behind a busy node; the host runs `--workers` instances (default: the machine's cores).

Prints accepted jobs/s, the p50/p99 time from a message's send to its reply, and — in the same run —
Slurm's `sbatch` submit rate on this machine (one submitter; slurm_peer.py), the peer a pipeline
would otherwise drive.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

from azure.servicebus import ServiceBusClient, ServiceBusMessage

sys.path.insert(0, str(Path(__file__).parent))  # beside this file

from api_throughput import (  # noqa: E402
    CASES, WS, job_body, make_busy_cluster, percentiles, slurm_submit_rate)

from shared.client.requests_by_message import JOB_SUBMISSIONS, REPLIES  # noqa: E402
from shared.localhost.process import LocalHostProcess, start_local_host  # noqa: E402

PATH = {"subscriptionId": "bench", "resourceGroupName": "bench", "workspaceName": "ws", "experimentName": "e"}


def prepare(host: LocalHostProcess) -> None:
    """A workspace, an experiment and a cluster as api_throughput.py makes them (the default scale,
    no nodes: each job is stored, queued and failed as ClusterTooSmall — the same work per job as
    that bench's HTTP creates, so the two rates compare)."""
    import httpx

    with httpx.Client(base_url=host.endpoint, params={"api-version": "2018-05-01"}, headers=host.headers) as http:
        http.put(WS, json={"location": "local"}).raise_for_status()
        http.put(WS + "/experiments/e", json={}).raise_for_status()
        http.put(WS + "/clusters/c", json={"properties": {
            "vmSize": "STANDARD_D1_V2",
            "userAccountSettings": {"adminUserName": "u", "adminUserPassword": "p"}}}).raise_for_status()


def measure(host: LocalHostProcess, jobs: int, batch: int, cluster: str) -> tuple[float, list[float]]:
    connection = host.servicebus_connection_string
    assert connection, "the local host has no Service Bus door"
    token = host.headers["Authorization"]
    sent_at: dict[str, float] = {}
    latencies: list[float] = []
    done = threading.Event()

    last_reply = [0.0]

    def read_replies(client: ServiceBusClient) -> None:
        with client.get_queue_receiver(REPLIES, prefetch_count=100) as receiver:
            while len(latencies) < jobs:
                for reply in receiver.receive_messages(max_message_count=100, max_wait_time=0.05):
                    receiver.complete_message(reply)
                    outcome = json.loads(b"".join(reply.body))
                    assert outcome["status"] == 200, outcome
                    last_reply[0] = time.perf_counter()
                    latencies.append(last_reply[0] - sent_at[str(reply.correlation_id)])
            done.set()  # before the receiver's close, which takes up to a second and is no reply's time

    with ServiceBusClient.from_connection_string(connection) as client:
        reader = threading.Thread(target=read_replies, args=(client,), daemon=True)
        reader.start()
        started = time.perf_counter()
        with client.get_queue_sender(JOB_SUBMISSIONS) as sender:
            for first in range(0, jobs, batch):
                messages = []
                for n in range(first, min(first + batch, jobs)):
                    request = {"path": {**PATH, "jobName": f"{cluster}-{n}"}, "body": job_body(n, cluster)}
                    messages.append(ServiceBusMessage(json.dumps(request), message_id=f"{cluster}-{n}",
                                                      correlation_id=str(n),
                                                      reply_to=REPLIES, application_properties={"Authorization": token}))
                now = time.perf_counter()
                for message in messages:
                    sent_at[str(message.correlation_id)] = now
                sender.send_messages(messages)
        if not done.wait(timeout=600):
            raise TimeoutError(f"only {len(latencies)} of {jobs} replies in 10 minutes")
        reader.join(30)  # its receiver closes before the client does
        return last_reply[0] - started, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="host instances")
    parser.add_argument("--no-slurm", action="store_true", help="skip the Slurm peer")
    args = parser.parse_args()
    rates: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="batchai-bench-") as folder:
        host = start_local_host(Path(folder) / "state", workers=args.workers, timeout=60 + 30 * args.workers)
        try:
            prepare(host)
            make_busy_cluster(host.endpoint, host.headers)
            for cluster, label in CASES.items():
                elapsed, latencies = measure(host, args.jobs, args.batch, cluster)
                rates[cluster] = len(latencies) / elapsed
                print(f"jobs by message, {label}: {len(latencies)} in batches of {args.batch}, {args.workers} host "
                      f"instances, all accepted in {elapsed:.2f} s: {rates[cluster]:.0f}/s, send to reply "
                      f"{percentiles(latencies)}", flush=True)
        finally:
            host.stop(30)
    if args.no_slurm:
        return
    sbatch = slurm_submit_rate(1)
    if isinstance(sbatch, str):
        print(f"vs sbatch:       Slurm not available here ({sbatch})")
    else:
        print(f"vs sbatch:       one sbatch submitter {sbatch:.0f} submits/s here, same run: "
              + ", ".join(f"{CASES[c]} {rates[c] / sbatch:.2f}x" for c in CASES))


if __name__ == "__main__":
    main()
