"""Bad requests get a 4xx CloudError that names the problem, and leave the store exactly as it was."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from shared.adapters.local.sqlite_store import SqliteStateStore
from shared.localhost.process import LocalHostProcess
from shared.ports.state_store import Query
from shared.resources import CONTAINERS, R

SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
RG = "rg-invalid"
WS = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}/providers/Microsoft.BatchAI/workspaces/ws"
CLUSTER_ID = WS + "/clusters/gpu"
USER = {"adminUserName": "scientist", "adminUserPassword": "Pa55-secret-word"}
CLUSTER = {"properties": {"vmSize": "STANDARD_NC6", "userAccountSettings": USER,
                          "scaleSettings": {"manual": {"targetNodeCount": 1}}}}
FILE_SERVER = {"properties": {"vmSize": "STANDARD_D2", "sshConfiguration": {"userAccountSettings": USER},
                              "dataDisks": {"diskSizeInGB": 10, "diskCount": 1, "storageAccountType": "Standard_LRS"}}}
JOB_BASE = {"cluster": {"id": CLUSTER_ID}, "nodeCount": 1, "stdOutErrPathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/logs"}


def job(**properties: Any) -> dict[str, Any]:
    """A job body: the valid base with these properties changed (None removes one)."""
    merged = {**JOB_BASE, "customToolkitSettings": {"commandLine": "true"}, **properties}
    return {"properties": {k: v for k, v in merged.items() if v is not None}}


def cluster(**properties: Any) -> dict[str, Any]:
    merged = {**CLUSTER["properties"], **properties}
    return {"properties": {k: v for k, v in merged.items() if v is not None}}


@dataclass
class Bad:
    """One invalid request and what the answer must say."""

    method: str
    path: str
    body: Any = None
    status: int = 400
    names: str = ""  # must appear in the error's target or message
    query: dict[str, str] = field(default_factory=lambda: {"api-version": "2018-05-01"})
    raw: bytes | None = None


NEW = WS + "/experiments/exp/jobs/new"
CASES: dict[str, Bad] = {
    # --- api-version, body framing ------------------------------------------------------------
    "missing api-version": Bad("GET", WS, query={}, names="api-version"),
    "unknown api-version": Bad("GET", WS, query={"api-version": "2017-09-01-preview"}, names="api-version"),
    "malformed JSON": Bad("PUT", WS + "/clusters/new", raw=b'{"properties": {"vmSize": ', names="JSON"),
    "empty body": Bad("PUT", WS + "/clusters/new", raw=b"", names="body"),
    "body is a list": Bad("PUT", WS + "/clusters/new", body=[CLUSTER], names="body"),
    "multi-megabyte body": Bad("PUT", NEW, raw=json.dumps(job(environmentVariables=[
        {"name": f"V{i}", "value": "x" * 1000} for i in range(3000)])).encode(), status=413, names="bytes"),
    # --- workspaces ---------------------------------------------------------------------------
    "workspace without location": Bad("PUT", WS.replace("/ws", "/ws2"), {"tags": {}}, names="location"),
    "workspace location a number": Bad("PUT", WS.replace("/ws", "/ws2"), {"location": 5}, names="location"),
    "workspace tags not strings": Bad("PUT", WS.replace("/ws", "/ws2"), {"location": "x", "tags": {"a": 1}},
                                      names="tags.a"),
    "workspace unknown property": Bad("PUT", WS.replace("/ws", "/ws2"), {"location": "x", "colour": "red"},
                                      names="colour"),
    "workspace name of 65 characters": Bad("PUT", WS.replace("/ws", "/" + "w" * 65), {"location": "x"},
                                           names="workspaceName"),
    "workspace name with a dot": Bad("PUT", WS.replace("/ws", "/ws.two"), {"location": "x"}, names="workspaceName"),
    "resource group name of 91 characters": Bad("GET", WS.replace(RG, "r" * 91), names="resourceGroupName"),
    "workspace moving to another location": Bad("PUT", WS, {"location": "westus"}, status=409, names="location"),
    "missing workspace": Bad("GET", WS.replace("/ws", "/nope"), status=404, names="nope"),
    "PATCH of a missing workspace": Bad("PATCH", WS.replace("/ws", "/nope"), {"tags": {}}, status=404, names="nope"),
    # --- clusters -----------------------------------------------------------------------------
    "cluster larger than the local pool runs": Bad("PUT", WS + "/clusters/new", cluster(scaleSettings={
        "manual": {"targetNodeCount": 65}}), names="properties.scaleSettings.manual.targetNodeCount"),
    "auto-scale larger than the local pool runs": Bad("PUT", WS + "/clusters/new", cluster(scaleSettings={
        "autoScale": {"minimumNodeCount": 0, "maximumNodeCount": 2147483647}}),
        names="properties.scaleSettings.autoScale.maximumNodeCount"),
    "cluster without vmSize": Bad("PUT", WS + "/clusters/new", cluster(vmSize=None), names="properties.vmSize"),
    "cluster without user account": Bad("PUT", WS + "/clusters/new", cluster(userAccountSettings=None),
                                        names="userAccountSettings"),
    "cluster of an unsupported size": Bad("PUT", WS + "/clusters/new", cluster(vmSize="STANDARD_A0"),
                                          names="STANDARD_A0"),
    "cluster with manual and autoScale": Bad("PUT", WS + "/clusters/new", cluster(scaleSettings={
        "manual": {"targetNodeCount": 1}, "autoScale": {"minimumNodeCount": 0, "maximumNodeCount": 1}}),
        names="manual or autoScale"),
    "cluster with empty scaleSettings": Bad("PUT", WS + "/clusters/new", cluster(scaleSettings={}),
                                            names="manual or autoScale"),
    "autoScale minimum above maximum": Bad("PUT", WS + "/clusters/new", cluster(scaleSettings={
        "autoScale": {"minimumNodeCount": 3, "maximumNodeCount": 2}}), names="minimumNodeCount"),
    "negative targetNodeCount": Bad("PUT", WS + "/clusters/new", cluster(scaleSettings={
        "manual": {"targetNodeCount": -1}}), names="targetNodeCount"),
    "targetNodeCount as text": Bad("PUT", WS + "/clusters/new", cluster(scaleSettings={
        "manual": {"targetNodeCount": "2"}}), names="targetNodeCount"),
    "unknown vmPriority": Bad("PUT", WS + "/clusters/new", cluster(vmPriority="cheap"), names="vmPriority"),
    "unknown nodeDeallocationOption": Bad("PUT", WS + "/clusters/new", cluster(scaleSettings={
        "manual": {"targetNodeCount": 1, "nodeDeallocationOption": "never"}}), names="nodeDeallocationOption"),
    "mount path leaving the mount root": Bad("PUT", WS + "/clusters/new", cluster(nodeSetup={"mountVolumes": {
        "unmanagedFileSystems": [{"mountCommand": "mount x", "relativeMountPath": "../etc"}]}}),
        names="relativeMountPath"),
    "setup task with a read-only suffix": Bad("PUT", WS + "/clusters/new", cluster(nodeSetup={"setupTask": {
        "commandLine": "true", "stdOutErrPathPrefix": "/tmp", "stdOutErrPathSuffix": "x"}}),
        names="stdOutErrPathSuffix"),
    "cluster in a missing workspace": Bad("PUT", WS.replace("/ws", "/nope") + "/clusters/new", CLUSTER,
                                          status=404, names="nope"),
    "cluster changing its vmSize": Bad("PUT", CLUSTER_ID, cluster(vmSize="STANDARD_NC12"), status=409,
                                       names="vmSize"),
    "PATCH with a negative count": Bad("PATCH", CLUSTER_ID, {"properties": {"scaleSettings": {
        "manual": {"targetNodeCount": -2}}}}, names="targetNodeCount"),
    "PATCH to autoScale without maximum": Bad("PATCH", CLUSTER_ID, {"properties": {"scaleSettings": {
        "autoScale": {"minimumNodeCount": 1}}}}, names="maximumNodeCount"),
    "PATCH of a missing cluster": Bad("PATCH", WS + "/clusters/nope", {"properties": {}}, status=404, names="nope"),
    # --- file servers -------------------------------------------------------------------------
    "file server without data disks": Bad("PUT", WS + "/fileServers/new", {"properties": {
        k: v for k, v in FILE_SERVER["properties"].items() if k != "dataDisks"}}, names="dataDisks"),
    "file server with zero disks": Bad("PUT", WS + "/fileServers/new", {"properties": {
        **FILE_SERVER["properties"], "dataDisks": {"diskSizeInGB": 10, "diskCount": 0,
                                                   "storageAccountType": "Standard_LRS"}}}, names="diskCount"),
    "file server of an unknown storage type": Bad("PUT", WS + "/fileServers/new", {"properties": {
        **FILE_SERVER["properties"], "dataDisks": {"diskSizeInGB": 10, "diskCount": 1,
                                                   "storageAccountType": "Floppy"}}}, names="storageAccountType"),
    # --- jobs ---------------------------------------------------------------------------------
    "job with two toolkits": Bad("PUT", NEW, job(horovodSettings={"pythonScriptFilePath": "a.py"}),
                                 names="customToolkitSettings"),
    "job with no toolkit": Bad("PUT", NEW, job(customToolkitSettings=None), names="exactly one toolkit"),
    "snake_case instead of the wire name": Bad("PUT", NEW, job(nodeCount=None, node_count=1), names="nodeCount"),
    "job on zero nodes": Bad("PUT", NEW, job(nodeCount=0), names="nodeCount"),
    "job without stdOutErrPathPrefix": Bad("PUT", NEW, job(stdOutErrPathPrefix=None), names="stdOutErrPathPrefix"),
    "job without cluster": Bad("PUT", NEW, job(cluster=None), names="properties.cluster"),
    "unknown schedulingPriority": Bad("PUT", NEW, job(schedulingPriority="urgent"), names="schedulingPriority"),
    "job on a missing cluster": Bad("PUT", NEW, job(cluster={"id": WS + "/clusters/nope"}), names="cluster.id"),
    "job on another workspace's cluster": Bad("PUT", NEW, job(cluster={"id": CLUSTER_ID.replace("/ws/", "/other/")}),
                                              names="cluster.id"),
    "job with a malformed cluster id": Bad("PUT", NEW, job(cluster={"id": "gpu"}), names="cluster.id"),
    "job in a missing experiment": Bad("PUT", NEW.replace("/exp/", "/nope/"), job(), status=404, names="nope"),
    "CNTK BrainScript with a Python script": Bad("PUT", NEW, job(customToolkitSettings=None, cntkSettings={
        "languageType": "BrainScript", "pythonScriptFilePath": "a.py"}), names="pythonScriptFilePath"),
    "CNTK Python with a config file": Bad("PUT", NEW, job(customToolkitSettings=None, cntkSettings={
        "languageType": "Python", "pythonScriptFilePath": "a.py", "configFilePath": "c"}), names="configFilePath"),
    "Caffe with config and script": Bad("PUT", NEW, job(customToolkitSettings=None, caffeSettings={
        "configFilePath": "s.prototxt", "pythonScriptFilePath": "a.py"}), names="configFilePath"),
    "TensorFlow with more parameter servers than nodes": Bad("PUT", NEW, job(
        customToolkitSettings=None, nodeCount=1, tensorFlowSettings={
            "pythonScriptFilePath": "tf.py", "parameterServerCount": 2}), names="parameterServerCount"),
    "TensorFlow with more workers than GPUs": Bad("PUT", NEW, job(customToolkitSettings=None, nodeCount=1,
        tensorFlowSettings={"pythonScriptFilePath": "tf.py", "workerCount": 2}), names="workerCount"),
    "PyTorch without its script": Bad("PUT", NEW, job(customToolkitSettings=None, pyTorchSettings={}),
                                      names="pythonScriptFilePath"),
    "custom MPI without a command line": Bad("PUT", NEW, job(customToolkitSettings=None, customMpiSettings={}),
                                             names="commandLine"),
    "unreadable maxWallClockTime": Bad("PUT", NEW, job(constraints={"maxWallClockTime": "forever"}),
                                       names="maxWallClockTime"),
    "secret without a value": Bad("PUT", NEW, job(secrets=[{"name": "TOKEN"}]), names="secrets[0]"),
    "variable named twice": Bad("PUT", NEW, job(environmentVariables=[{"name": "A", "value": "1"}],
                                                secrets=[{"name": "A", "value": "2"}]), names="'A'"),
    "output directory id with a slash": Bad("PUT", NEW, job(outputDirectories=[{"id": "a/b", "pathPrefix": "/x"}]),
                                            names="outputDirectories[0].id"),
    "job changing its nodeCount": Bad("PUT", WS + "/experiments/exp/jobs/job", job(nodeCount=2), status=409,
                                      names="nodeCount"),
    # --- query parameters ---------------------------------------------------------------------
    "maxresults of zero": Bad("GET", WS + "/experiments/exp/jobs",
                              query={"api-version": "2018-05-01", "maxresults": "0"}, names="maxresults"),
    "maxresults above 1000": Bad("GET", WS + "/experiments/exp/jobs",
                                 query={"api-version": "2018-05-01", "maxresults": "5000"}, names="maxresults"),
    "maxresults not a number": Bad("GET", WS + "/clusters",
                                   query={"api-version": "2018-05-01", "maxresults": "ten"}, names="maxresults"),
    "a made-up $skiptoken": Bad("GET", WS + "/clusters",
                                query={"api-version": "2018-05-01", "$skiptoken": "%%%"}, names="$skiptoken"),
    "output files without a directory id": Bad("POST", WS + "/experiments/exp/jobs/job/listOutputFiles",
                                               names="outputdirectoryid"),
    "output files of an unknown directory": Bad("POST", WS + "/experiments/exp/jobs/job/listOutputFiles", query={
        "api-version": "2018-05-01", "outputdirectoryid": "MODELS"}, names="outputdirectoryid"),
    "link expiry below five minutes": Bad("POST", WS + "/experiments/exp/jobs/job/listOutputFiles", query={
        "api-version": "2018-05-01", "outputdirectoryid": "stdouterr", "linkexpiryinminutes": "1"},
        names="linkexpiryinminutes"),
    "list jobs of a missing experiment": Bad("GET", WS + "/experiments/nope/jobs", status=404, names="nope"),
    "terminate a missing job": Bad("POST", WS + "/experiments/exp/jobs/nope/terminate", status=404, names="nope"),
    "delete under a missing workspace": Bad("DELETE", WS.replace("/ws", "/nope") + "/experiments/exp",
                                            status=404, names="nope"),
}


@pytest.fixture(scope="module")
def raw(local_host: LocalHostProcess) -> Iterator[httpx.Client]:
    """A client that adds nothing to the request, not even the api-version (its credential aside)."""
    with httpx.Client(base_url=local_host.endpoint, timeout=30, headers=local_host.headers) as client:
        yield client


@pytest.fixture(scope="module")
def seeded(http: httpx.Client, local_host: LocalHostProcess) -> SqliteStateStore:
    """A workspace with a cluster, a file server, an experiment and a job; and a reader of the store."""
    for path, body in ((WS, {"location": "eastus"}), (CLUSTER_ID, CLUSTER), (WS + "/fileServers/nfs", FILE_SERVER),
                       (WS + "/experiments/exp", None), (WS + "/experiments/exp/jobs/job", job())):
        assert http.put(path, json=body).status_code == 200
    settle(http)
    store = SqliteStateStore(local_host.data_dir / "state.sqlite3")
    store.open(CONTAINERS)
    return store


def settle(http: httpx.Client, timeout: float = 60) -> None:
    """Wait until the seeded job has run and its cluster is steady: from then on only a request
    changes the store, so a snapshot before and after one tells what that request changed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job_state = http.get(WS + "/experiments/exp/jobs/job").json()["properties"]["executionState"]
        cluster = http.get(CLUSTER_ID).json()["properties"]
        if job_state in ("succeeded", "failed") and cluster["allocationState"] == "steady" \
                and cluster["nodeStateCounts"]["idleNodeCount"] == 1:
            return
        time.sleep(0.1)
    raise AssertionError("the seeded job did not run to its end")


def snapshot(store: SqliteStateStore) -> dict[str, str]:
    return {d["id"]: d["_etag"] for d in store.query(R, Query())}


def test_there_are_at_least_forty_cases() -> None:
    assert len(CASES) >= 40


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_invalid_request_is_refused_and_changes_nothing(raw: httpx.Client, seeded: SqliteStateStore,
                                                        case: Bad) -> None:
    before = snapshot(seeded)
    content = case.raw if case.raw is not None else (json.dumps(case.body).encode() if case.body is not None else b"")
    response = raw.request(case.method, case.path, params=case.query, content=content,
                            headers={"Content-Type": "application/json"})
    assert response.status_code == case.status, response.text[:400]
    error = response.json()["error"]
    assert error["code"] and error["message"]
    assert case.names in f"{error.get('target', '')} {error['message']}", error
    assert snapshot(seeded) == before
