"""What the control plane costs as its queue grows, on the local host with real agents.

    python bench/scale.py [--depths 10,1000,10000,100000] [--idle-nodes 8,32,64] [--idle-seconds 10]

For each depth D, a fresh local host and a 2-node cluster whose nodes are busy (two jobs that wait
for a file), D jobs queued behind them (`sleep 600`, normal priority), then:
- host CPU at idle and host memory (RSS of the host process) with the D jobs waiting;
- node freed -> next start: one busy job is let go; from its endTime to the start of the lane's
  head, both as the service recorded them (placement, ms resolution);
- high-priority submit -> start: a high-priority job is created and at once the other busy node is
  let go; from just before its PUT to its startTime (it jumps all D waiting jobs);
- a list page deep in the collection: GET .../jobs?maxresults=100 at the nextLink of a page half-way
  through (reached in hops of 1,000), median of 5, beside the first page;
- store size: the data folder's SQLite files (store and queues, with their WAL).
Then the host's idle CPU with a cluster of 8, 32 and 64 idle nodes (one agent process each).

Filling the queue: up to 1,000 jobs go through the real create path (HTTP PUT, 8 clients). Deeper
queues are written beside the running host through the same ports and in the same shape as the
create path writes them: one job created over HTTP is the template; each copy gets its own name,
id, output folder and creation event (recorded as already published: the bench has no event
subscribers) and its lane message (id job#attempt, in lane order) — about 10 s for 100,000.
Every host and agent it starts is stopped at the end; each depth is bounded by --timeout.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from shared import events, lanes
from shared.adapters.local.sqlite_messaging import SqliteMessaging
from shared.adapters.local.sqlite_store import SqliteStateStore
from shared.api.jobs import output_segment
from shared.documents.resources import JobDocument
from shared.ids import JOB, ResourceRef
from shared.localhost.process import LocalHostProcess, start_local_host
from shared.ports.state_store import Query
from shared.resources import CONTAINERS, R

sys.path.insert(0, str(Path(__file__).parent))  # dispatch.py beside this file
from dispatch import link_request  # noqa: E402

WS = "/subscriptions/bench/resourceGroups/bench/providers/Microsoft.BatchAI/workspaces/ws"
Q = {"api-version": "2018-05-01"}
HTTP_FILL_MAX = 1000  # deeper queues are written through the ports (see the docstring)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cluster_body(nodes: int) -> dict[str, Any]:
    return {"properties": {"vmSize": "STANDARD_D1_V2", "scaleSettings": {"manual": {"targetNodeCount": nodes}},
                           "userAccountSettings": {"adminUserName": "bench", "adminUserPassword": "bench"}}}


def job_body(command: str, priority: str = "normal") -> dict[str, Any]:
    return {"properties": {"cluster": {"id": f"{WS}/clusters/c"}, "nodeCount": 1, "schedulingPriority": priority,
                           "stdOutErrPathPrefix": "$AZ_BATCHAI_JOB_TEMP",
                           "customToolkitSettings": {"commandLine": command}}}


def wait_until(check: Any, timeout: float, what: str, pause: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(pause)
    raise RuntimeError(f"{what}: not within {timeout:.0f} s")


def make_cluster(http: httpx.Client, nodes: int, timeout: float) -> None:
    http.put(WS, json={"location": "local"}).raise_for_status()
    http.put(f"{WS}/experiments/e").raise_for_status()
    http.put(f"{WS}/clusters/c", json=cluster_body(nodes)).raise_for_status()
    wait_until(lambda: http.get(f"{WS}/clusters/c").json()["properties"]["nodeStateCounts"]["idleNodeCount"] == nodes,
               timeout, f"{nodes} idle nodes", 0.2)


def job(http: httpx.Client, name: str) -> dict[str, Any]:
    return http.get(f"{WS}/experiments/e/jobs/{name}").json()["properties"]


def started(http: httpx.Client, name: str) -> datetime | None:
    info = job(http, name).get("executionInfo") or {}
    return datetime.fromisoformat(info["startTime"]) if info.get("startTime") else None


def ended(http: httpx.Client, name: str) -> datetime | None:
    info = job(http, name).get("executionInfo") or {}
    return datetime.fromisoformat(info["endTime"]) if info.get("endTime") else None


def fill_by_http(host: LocalHostProcess, names: list[str], clients: int = 8) -> None:
    def submit(chunk: list[str]) -> None:
        if not chunk:
            return
        with httpx.Client(base_url=host.endpoint, params=Q, timeout=60, headers=host.headers) as own:
            for name in chunk:
                own.put(f"{WS}/experiments/e/jobs/{name}", json=job_body("sleep 600")).raise_for_status()

    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        list(pool.map(submit, [names[i::clients] for i in range(clients)]))


def fill_by_ports(host: LocalHostProcess, template_name: str, names: list[str]) -> None:
    """Copies of the template job, written as the create path writes a job and its lane message."""
    store = SqliteStateStore(host.data_dir / "state.sqlite3")
    store.open(CONTAINERS)
    messaging = SqliteMessaging(host.data_dir / "messages.sqlite3")
    try:
        template = JobDocument.load(store.query(R, Query(where={"kind": "job", "resource.name": template_name}))[0])
        for start in range(0, len(names), 1000):
            batch = [_copy(template, name) for name in names[start:start + 1000]]
            conn = store._conn()  # one transaction per thousand: the fill is not what is measured
            conn.execute("BEGIN")
            for doc in batch:
                store.create(R, doc.to_json())
            conn.execute("COMMIT")
            lanes.publish_jobs(messaging, batch)
    finally:
        messaging.close()
        store.close()


def _copy(template: JobDocument, name: str) -> JobDocument:
    job = template.copy_for_edit()
    arm_id = job.resource.id.rsplit("/", 1)[0] + "/" + name
    ref = ResourceRef.parse(arm_id, JOB)
    assert ref is not None
    job.id, job.etag = ref.key, None
    job.resource.id, job.resource.name = arm_id, name
    job.props.job_output_directory_path_segment = output_segment(ref)
    events.record_creation(job)  # its creation event, recorded as already sent
    job.outbox, job.outbox_pending = [], None
    return job


def host_cpu(host: LocalHostProcess, seconds: float) -> float:
    """The host process's CPU over `seconds`, in % of one core."""
    def ticks() -> int:
        fields = Path(f"/proc/{host.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime, stime

    before, t0 = ticks(), time.monotonic()
    time.sleep(seconds)
    return 100 * (ticks() - before) / CLOCK_TICKS / (time.monotonic() - t0)


def host_rss_mb(host: LocalHostProcess) -> float:
    for line in Path(f"/proc/{host.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def store_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.glob("*.sqlite3*")) / 2**20


def deep_page_ms(http: httpx.Client, depth: int) -> tuple[float, float]:
    """(first page, a page half-way through) of 100 jobs, ms, median of 5 each."""
    def timed(url: str | httpx.URL, params: dict[str, Any]) -> float:
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            http.get(url, params=params).raise_for_status()
            times.append((time.perf_counter() - t0) * 1000)
        return statistics.median(times)

    first = timed(f"{WS}/experiments/e/jobs", {"maxresults": 100})
    link, seen = None, 0
    params: dict[str, Any] = {"maxresults": 1000}
    url: str | httpx.URL = f"{WS}/experiments/e/jobs"
    while seen < depth // 2:
        answer = http.get(url, params=params).json()
        seen += len(answer["value"])
        link = answer.get("nextLink")
        if not link:
            break
        url, params = link_request(link, maxresults=100 if seen >= depth // 2 else 1000)
    if not link:
        return first, first
    return first, timed(*link_request(link, maxresults=100))


def measure_depth(folder: Path, depth: int, settle: float, timeout: float) -> dict[str, Any]:
    host = start_local_host(folder / "state")
    try:
        with httpx.Client(base_url=host.endpoint, params=Q, timeout=120, headers=host.headers) as http:
            make_cluster(http, 2, timeout)
            releases = [folder / "release-0", folder / "release-1"]
            for n, release in enumerate(releases):
                http.put(f"{WS}/experiments/e/jobs/busy{n}",
                         json=job_body(f"while [ ! -e {release} ]; do sleep 0.02; done")).raise_for_status()
            wait_until(lambda: all(started(http, f"busy{n}") for n in range(2)), timeout, "busy jobs start")
            names = [f"q{n:06d}" for n in range(depth)]
            t0 = time.monotonic()
            fill_by_http(host, names[:1])  # the lane's head, and the template of the copies
            if depth <= HTTP_FILL_MAX:
                fill_by_http(host, names[1:])
                how = "HTTP"
            else:
                fill_by_ports(host, names[0], names[1:])
                how = "ports"
            fill_s = time.monotonic() - t0
            time.sleep(settle)  # a few timer rounds with the queue full
            idle_cpu, rss = host_cpu(host, settle), host_rss_mb(host)
            first_page, deep_page = deep_page_ms(http, depth)
            releases[0].touch()  # node 1 frees: the head of the lane (q000000) starts
            freed = wait_until(lambda: ended(http, "busy0"), timeout, "busy0 ends")
            head_start = wait_until(lambda: started(http, names[0]), timeout, "the lane's head starts")
            submitted = time.time()
            http.put(f"{WS}/experiments/e/jobs/urgent", json=job_body("sleep 600", "high")).raise_for_status()
            releases[1].touch()  # node 2 frees: the high-priority job jumps the D waiting ones
            urgent_start = wait_until(lambda: started(http, "urgent"), timeout, "the high-priority job starts")
            return {"depth": depth, "fill": how, "fill_s": fill_s, "idle_cpu": idle_cpu, "rss": rss,
                    "freed_to_start_ms": (head_start - freed).total_seconds() * 1000,
                    "high_submit_to_start_ms": (urgent_start.timestamp() - submitted) * 1000,
                    "first_page_ms": first_page, "deep_page_ms": deep_page, "store_mb": store_mb(folder / "state")}
    finally:
        host.stop()


def measure_idle_nodes(folder: Path, nodes: int, seconds: float, timeout: float) -> tuple[float, float]:
    host = start_local_host(folder / "state")
    try:
        with httpx.Client(base_url=host.endpoint, params=Q, timeout=120, headers=host.headers) as http:
            make_cluster(http, nodes, timeout)
            time.sleep(3)  # past the registrations
            return host_cpu(host, seconds), host_rss_mb(host)
    finally:
        host.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", default="10,1000,10000,100000")
    parser.add_argument("--idle-nodes", default="8,32,64")
    parser.add_argument("--idle-seconds", type=float, default=10, help="how long idle CPU is measured")
    parser.add_argument("--timeout", type=float, default=300, help="bound of each wait")
    args = parser.parse_args()
    rows = []
    for depth in [int(d) for d in args.depths.split(",") if d]:
        with tempfile.TemporaryDirectory(prefix="batchai-scale-") as folder:
            rows.append(measure_depth(Path(folder), depth, args.idle_seconds, args.timeout))
        print(f"  measured {depth} queued jobs", file=sys.stderr, flush=True)
    idle = []
    for nodes in [int(n) for n in args.idle_nodes.split(",") if n]:
        with tempfile.TemporaryDirectory(prefix="batchai-scale-") as folder:
            idle.append((nodes, *measure_idle_nodes(Path(folder), nodes, args.idle_seconds, args.timeout)))
        print(f"  measured {nodes} idle nodes", file=sys.stderr, flush=True)
    print("Batch AI rebuilt, local host, a 2-node cluster whose nodes are busy, D jobs queued behind them:")
    print("| queued jobs | filled by (s) | host CPU at idle | host memory | node freed → next start "
          "| high-priority submit → start | list page of 100: first / half-way | store size |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['depth']:,} | {r['fill']} ({r['fill_s']:.0f}) | {r['idle_cpu']:.1f}% | {r['rss']:.0f} MB "
              f"| {r['freed_to_start_ms']:.0f} ms | {r['high_submit_to_start_ms']:.0f} ms "
              f"| {r['first_page_ms']:.1f} / {r['deep_page_ms']:.1f} ms | {r['store_mb']:.1f} MB |")
    print()
    print("| idle nodes | host CPU at idle | host memory |")
    print("|---|---|---|")
    for nodes, cpu, rss in idle:
        print(f"| {nodes} | {cpu:.1f}% | {rss:.0f} MB |")
    print(json.dumps({"depths": rows, "idle_nodes": idle}), file=sys.stderr)


if __name__ == "__main__":
    main()
