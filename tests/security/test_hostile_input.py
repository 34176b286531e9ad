"""Hostile input over every write route of one real local host (issue 16): names in paths of every
resource kind, bodies, query parameters, the agents' routes, signed download URLs and messages on
the request queues. Each case must get a 4xx whose CloudError names the field (target or message),
store nothing (the store's documents and the API's list of workspaces are the same after it), start
no process (the host's process tree is the same), and never a 5xx.

Left to their own suites: webhook endpoint URLs, `..` in output paths and the node ids agents
register with (tests/security's other modules).
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, parse_qs, urlencode, urlsplit

import httpx
import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage

from shared import nodes
from shared.adapters.local.sqlite_store import SqliteStateStore
from shared.client.requests_by_message import CLUSTER_RESIZES, JOB_SUBMISSIONS, REPLIES, Outcome
from shared.localhost.process import LocalHostProcess
from shared.models.limits import (MAX_COMMAND_LINE_LENGTH, MAX_DATA_DISKS, MAX_DIRECTORIES, MAX_DISK_SIZE_GB,
                                  MAX_ENV_NAME_LENGTH, MAX_ENV_VALUE_LENGTH, MAX_ENVIRONMENT_VARIABLES,
                                  MAX_MOUNT_VOLUMES, MAX_NODE_COUNT, MAX_PROCESSES_PER_NODE,
                                  MAX_RELATIVE_MOUNT_PATH_LENGTH, MAX_SECRET_LENGTH, MAX_SECRETS, MAX_STRING_LENGTH,
                                  MAX_TAG_NAME_LENGTH, MAX_TAG_VALUE_LENGTH, MAX_TAGS, MAX_URL_LENGTH,
                                  MAX_USER_NAME_LENGTH)
from shared.ports.state_store import Query
from shared.resources import CONTAINERS, NODES, RESOURCES, ROLE_ASSIGNMENTS
from shared.signed_urls import UrlSigner, load_or_create_key
from tests.e2e.hosts import running_host
from tests.e2e.test_invalid_requests import CLUSTER, FILE_SERVER, USER, Bad

SUB = "00000000-0000-0000-0000-000000000000"
RG = "rg-hostile"
ARM = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.BatchAI"
WS = f"{ARM}/workspaces/ws"
CLUSTER_ID = WS + "/clusters/gpu"
FILE_SERVER_ID = WS + "/fileServers/nfs"
JOB = WS + "/experiments/exp/jobs/job"
NEW_JOB = WS + "/experiments/exp/jobs/new"
NEW_CLUSTER = WS + "/clusters/new"
NEW_FILE_SERVER = WS + "/fileServers/new"
EMPTY_CLUSTER = WS + "/clusters/empty"  # no nodes: a job on it is failed at once, never run
QUERY = {"api-version": "2018-05-01"}
INT32_MAX = 2**31 - 1
KEY = {"accountKey": "a-key"}


# --------------------------------------------------------------------------------------------------
# Valid bodies, and each case's change to one
# --------------------------------------------------------------------------------------------------

def job(**properties: Any) -> dict[str, Any]:
    """A valid job body with these properties changed (None removes one)."""
    merged = {"cluster": {"id": CLUSTER_ID}, "nodeCount": 1, "stdOutErrPathPrefix": "$AZ_BATCHAI_JOB_TEMP",
              "customToolkitSettings": {"commandLine": "true"}, **properties}
    return {"properties": {k: v for k, v in merged.items() if v is not None}}


def toolkit(name: str, settings: dict[str, Any], **properties: Any) -> dict[str, Any]:
    return job(customToolkitSettings=None, **{name: settings}, **properties)


def cluster(**properties: Any) -> dict[str, Any]:
    merged = {**CLUSTER["properties"], "scaleSettings": {"manual": {"targetNodeCount": 0}}, **properties}
    return {"properties": {k: v for k, v in merged.items() if v is not None}}


def file_server(**properties: Any) -> dict[str, Any]:
    return {"properties": {**FILE_SERVER["properties"], **properties}}


def disks(**changes: Any) -> dict[str, Any]:
    return {"diskSizeInGB": 10, "diskCount": 1, "storageAccountType": "Standard_LRS", **changes}


def share(**changes: Any) -> dict[str, Any]:
    return {"accountName": "acct", "azureFileUrl": "https://acct.file.core.windows.net/share", "credentials": KEY,
            "relativeMountPath": "afs", **changes}


def blob(**changes: Any) -> dict[str, Any]:
    return {"accountName": "acct", "containerName": "data", "credentials": KEY, "relativeMountPath": "bfs", **changes}


def server(**changes: Any) -> dict[str, Any]:
    return {"fileServer": {"id": FILE_SERVER_ID}, "relativeMountPath": "nfs", **changes}


def unmanaged(**changes: Any) -> dict[str, Any]:
    return {"mountCommand": "mount -t tmpfs none", "relativeMountPath": "own", **changes}


def variables(count: int, value: str = "v") -> list[dict[str, str]]:
    return [{"name": f"V{i}", "value": value} for i in range(count)]


def subscription_body(**properties: Any) -> dict[str, Any]:
    return {"properties": {"destination": {"endpointUrl": "http://127.0.0.1:9/hook"}, **properties}}


def long(n: int) -> str:
    return "x" * n


TOO_MANY_PROCESSES = MAX_PROCESSES_PER_NODE + 1  # on a one-node job


# --------------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------------

@dataclass
class Case(Bad):
    """One hostile request and what the refusal must say (`names`: in the CloudError's target or
    message), sent as `caller`."""

    caller: str = "owner"  # owner (the host's token), node (the test's agent credential), anyone (nothing)
    headers: dict[str, str] = field(default_factory=dict)


CASES: dict[str, Case] = {}


def add(group: str, cases: dict[str, Case]) -> None:
    for name, case in cases.items():
        key = f"{group}: {name}"
        assert key not in CASES, key
        CASES[key] = case


# --- names in paths: every resource kind, each with the same tricks -----------------------------

NAME_TRICKS = {
    "a trailing newline": "n%0A",
    "a trailing carriage return": "n%0D",
    "a NUL": "n%00",
    "a space": "n%20m",
    "a dot": "n.m",
    "a pipe": "n%7Cm",
    "65 characters": "n" * 65,
    "two dots": "%2E%2E",
}
NAMED_ROUTES = {  # route parameter -> (path with {} for the name, a valid body)
    "workspaceName": (f"{ARM}/workspaces/{{}}", {"location": "eastus"}),
    "clusterName": (WS + "/clusters/{}", cluster()),
    "fileServerName": (WS + "/fileServers/{}", FILE_SERVER),
    "experimentName": (WS + "/experiments/{}", None),
    "jobName": (WS + "/experiments/exp/jobs/{}", job()),
    "eventSubscriptionName": (WS + "/eventSubscriptions/{}", subscription_body()),
    "roleAssignmentName": (WS + "/roleAssignments/{}", {"properties": {"principalId": "p", "role": "reader"}}),
}
for param, (template, valid) in NAMED_ROUTES.items():
    add(f"{param} in the path", {trick: Case("PUT", template.format(name), valid, names=param)
                                 for trick, name in NAME_TRICKS.items()})
add("other names in the path", {
    "resourceGroupName with a trailing newline": Case("PUT", WS.replace(RG, RG + "%0A"), {"location": "eastus"},
                                                      names="resourceGroupName"),
    "resourceGroupName of 91 characters": Case("PUT", WS.replace(RG, "r" * 91), {"location": "eastus"},
                                               names="resourceGroupName"),
    "subscriptionId with a trailing newline": Case("PUT", WS.replace(SUB, SUB + "%0A"), {"location": "eastus"},
                                                   names="subscriptionId"),
    "subscriptionId with a pipe": Case("PUT", WS.replace(SUB, "a%7Cb"), {"location": "eastus"},
                                       names="subscriptionId"),
    "subscription role assignment, subscriptionId with a newline": Case(
        "PUT", f"/subscriptions/{SUB}%0A/providers/Microsoft.BatchAI/roleAssignments/r",
        {"properties": {"principalId": "p", "role": "reader"}}, names="subscriptionId"),
    "subscription role assignment, name with a newline": Case(
        "PUT", f"/subscriptions/{SUB}/providers/Microsoft.BatchAI/roleAssignments/r%0A",
        {"properties": {"principalId": "p", "role": "reader"}}, names="roleAssignmentName"),
})

# --- job bodies: counts -------------------------------------------------------------------------

PROCESS_COUNTS = {
    "pyTorchSettings": {"pythonScriptFilePath": "t.py"},
    "customMpiSettings": {"commandLine": "hostname"},
    "horovodSettings": {"pythonScriptFilePath": "t.py"},
    "chainerSettings": {"pythonScriptFilePath": "t.py"},
    "cntkSettings": {"configFilePath": "c.bs"},
    "caffeSettings": {"configFilePath": "s.prototxt"},
}
add("job counts", {
    **{f"{name}.processCount of int32 max": Case("PUT", NEW_JOB, toolkit(name, {**settings, "processCount": INT32_MAX}),
                                                 names=f"properties.{name}.processCount")
       for name, settings in PROCESS_COUNTS.items()},
    **{f"{name}.processCount of {TOO_MANY_PROCESSES} on one node": Case(
        "PUT", NEW_JOB, toolkit(name, {**settings, "processCount": TOO_MANY_PROCESSES}),
        names=f"properties.{name}.processCount") for name, settings in PROCESS_COUNTS.items()},
    "tensorFlowSettings.workerCount of int32 max": Case("PUT", NEW_JOB, toolkit(
        "tensorFlowSettings", {"pythonScriptFilePath": "t.py", "workerCount": INT32_MAX}),
        names="properties.tensorFlowSettings.workerCount"),
    "tensorFlowSettings.parameterServerCount of int32 max": Case("PUT", NEW_JOB, toolkit(
        "tensorFlowSettings", {"pythonScriptFilePath": "t.py", "parameterServerCount": INT32_MAX}),
        names="properties.tensorFlowSettings.parameterServerCount"),
    "nodeCount above the bound": Case("PUT", NEW_JOB, job(nodeCount=MAX_NODE_COUNT + 1), names="properties.nodeCount"),
    "nodeCount of int32 max": Case("PUT", NEW_JOB, job(nodeCount=INT32_MAX), names="properties.nodeCount"),
    "nodeCount beyond int64": Case("PUT", NEW_JOB, raw=json.dumps(job()).replace(
        '"nodeCount": 1', '"nodeCount": 99999999999999999999999999').encode(), names="properties.nodeCount"),
    "nodeCount as a float": Case("PUT", NEW_JOB, job(nodeCount=1e300), names="properties.nodeCount"),
    "too many environment variables": Case("PUT", NEW_JOB, job(environmentVariables=variables(
        MAX_ENVIRONMENT_VARIABLES + 1)), names="properties.environmentVariables"),
    "too many secrets": Case("PUT", NEW_JOB, job(secrets=variables(MAX_SECRETS + 1)), names="properties.secrets"),
    "too many input directories": Case("PUT", NEW_JOB, job(inputDirectories=[
        {"id": f"D{i}", "path": "/tmp"} for i in range(MAX_DIRECTORIES + 1)]), names="properties.inputDirectories"),
    "too many output directories": Case("PUT", NEW_JOB, job(outputDirectories=[
        {"id": f"D{i}", "pathPrefix": "$AZ_BATCHAI_JOB_TEMP"} for i in range(MAX_DIRECTORIES + 1)]),
        names="properties.outputDirectories"),
    **{f"too many {kind}": Case("PUT", NEW_JOB, job(mountVolumes={kind: [
        make(relativeMountPath=f"m{i}") for i in range(MAX_MOUNT_VOLUMES + 1)]}), names=f"properties.mountVolumes.{kind}")
       for kind, make in (("azureFileShares", share), ("azureBlobFileSystems", blob), ("fileServers", server),
                          ("unmanagedFileSystems", unmanaged))},
})

# --- job bodies: string lengths and shapes -------------------------------------------------------

add("job strings", {
    "commandLine too long": Case("PUT", NEW_JOB, job(customToolkitSettings={
        "commandLine": long(MAX_COMMAND_LINE_LENGTH + 1)}), names="properties.customToolkitSettings.commandLine"),
    "commandLineArgs too long": Case("PUT", NEW_JOB, toolkit("pyTorchSettings", {
        "pythonScriptFilePath": "t.py", "commandLineArgs": long(MAX_COMMAND_LINE_LENGTH + 1)}),
        names="properties.pyTorchSettings.commandLineArgs"),
    "workerCommandLineArgs too long": Case("PUT", NEW_JOB, toolkit("tensorFlowSettings", {
        "pythonScriptFilePath": "t.py", "workerCommandLineArgs": long(MAX_COMMAND_LINE_LENGTH + 1)}),
        names="properties.tensorFlowSettings.workerCommandLineArgs"),
    "custom MPI commandLine too long": Case("PUT", NEW_JOB, toolkit("customMpiSettings", {
        "commandLine": long(MAX_COMMAND_LINE_LENGTH + 1)}), names="properties.customMpiSettings.commandLine"),
    "jobPreparation commandLine too long": Case("PUT", NEW_JOB, job(jobPreparation={
        "commandLine": long(MAX_COMMAND_LINE_LENGTH + 1)}), names="properties.jobPreparation.commandLine"),
    "pythonScriptFilePath too long": Case("PUT", NEW_JOB, toolkit("horovodSettings", {
        "pythonScriptFilePath": long(MAX_STRING_LENGTH + 1)}), names="properties.horovodSettings.pythonScriptFilePath"),
    "stdOutErrPathPrefix too long": Case("PUT", NEW_JOB, job(stdOutErrPathPrefix="/" + long(MAX_STRING_LENGTH)),
                                         names="properties.stdOutErrPathPrefix"),
    "input directory path too long": Case("PUT", NEW_JOB, job(inputDirectories=[
        {"id": "D", "path": "/" + long(MAX_STRING_LENGTH)}]), names="properties.inputDirectories[0].path"),
    "environment variable value too long": Case("PUT", NEW_JOB, job(environmentVariables=variables(
        1, long(MAX_ENV_VALUE_LENGTH + 1))), names="properties.environmentVariables[0].value"),
    "secret value too long": Case("PUT", NEW_JOB, job(secrets=variables(1, long(MAX_ENV_VALUE_LENGTH + 1))),
                                  names="properties.secrets[0].value"),
    "environment variable name too long": Case("PUT", NEW_JOB, job(environmentVariables=[
        {"name": "V" * (MAX_ENV_NAME_LENGTH + 1), "value": "v"}]), names="properties.environmentVariables[0].name"),
    "environment variable name with a trailing newline": Case("PUT", NEW_JOB, job(environmentVariables=[
        {"name": "NAME\n", "value": "v"}]), names="properties.environmentVariables[0].name"),
    "secret name with a trailing newline": Case("PUT", NEW_JOB, job(secrets=[{"name": "TOKEN\n", "value": "v"}]),
                                                names="properties.secrets[0].name"),
    "environment variable name with '='": Case("PUT", NEW_JOB, job(environmentVariables=[
        {"name": "A=B", "value": "v"}]), names="properties.environmentVariables[0].name"),
    "environment variable name with a space": Case("PUT", NEW_JOB, job(environmentVariables=[
        {"name": "A B", "value": "v"}]), names="properties.environmentVariables[0].name"),
    "empty environment variable name": Case("PUT", NEW_JOB, job(environmentVariables=[{"name": "", "value": "v"}]),
                                            names="properties.environmentVariables[0].name"),
    "environment variable name as a number": Case("PUT", NEW_JOB, job(environmentVariables=[{"name": 5, "value": "v"}]),
                                                  names="properties.environmentVariables[0].name"),
    "input directory id with a trailing newline": Case("PUT", NEW_JOB, job(inputDirectories=[
        {"id": "DATA\n", "path": "/tmp"}]), names="properties.inputDirectories[0].id"),
    "output directory id with a trailing newline": Case("PUT", NEW_JOB, job(outputDirectories=[
        {"id": "OUT\n", "pathPrefix": "$AZ_BATCHAI_JOB_TEMP"}]), names="properties.outputDirectories[0].id"),
    "output directory id of 65 characters": Case("PUT", NEW_JOB, job(outputDirectories=[
        {"id": "O" * 65, "pathPrefix": "$AZ_BATCHAI_JOB_TEMP"}]), names="properties.outputDirectories[0].id"),
    "cluster id too long": Case("PUT", NEW_JOB, job(cluster={"id": CLUSTER_ID + long(MAX_URL_LENGTH)}),
                                names="properties.cluster.id"),
    "cluster id with a trailing newline": Case("PUT", NEW_JOB, job(cluster={"id": CLUSTER_ID + "\n"}),
                                               names="properties.cluster.id"),
    "image name too long": Case("PUT", NEW_JOB, job(containerSettings={"imageSourceRegistry": {
        "image": long(MAX_STRING_LENGTH + 1)}}), names="properties.containerSettings.imageSourceRegistry.image"),
    "registry serverUrl too long": Case("PUT", NEW_JOB, job(containerSettings={"imageSourceRegistry": {
        "image": "ubuntu", "serverUrl": "https://" + long(MAX_URL_LENGTH)}}),
        names="properties.containerSettings.imageSourceRegistry.serverUrl"),
    "registry password too long": Case("PUT", NEW_JOB, job(containerSettings={"imageSourceRegistry": {
        "image": "ubuntu", "credentials": {"username": "u", "password": long(MAX_SECRET_LENGTH + 1)}}}),
        names="properties.containerSettings.imageSourceRegistry.credentials.password"),
    "registry user name too long": Case("PUT", NEW_JOB, job(containerSettings={"imageSourceRegistry": {
        "image": "ubuntu", "credentials": {"username": long(MAX_USER_NAME_LENGTH + 1), "password": "p"}}}),
        names="properties.containerSettings.imageSourceRegistry.credentials.username"),
    "Key Vault secretUrl too long": Case("PUT", NEW_JOB, job(secrets=[{"name": "S", "valueSecretReference": {
        "sourceVault": {"id": "/subscriptions/s/resourceGroups/r/providers/Microsoft.KeyVault/vaults/v"},
        "secretUrl": "https://" + long(MAX_URL_LENGTH)}}]), names="properties.secrets[0].valueSecretReference.secretUrl"),
    "maxWallClockTime of 10^20 days": Case("PUT", NEW_JOB, job(constraints={"maxWallClockTime": "P" + "9" * 20 + "D"}),
                                           names="properties.constraints.maxWallClockTime"),
    "shmSize with a trailing newline": Case("PUT", NEW_JOB, job(containerSettings={
        "imageSourceRegistry": {"image": "ubuntu"}, "shmSize": "8g\n"}), names="properties.containerSettings.shmSize"),
})

# --- volumes: Azure's naming rules, checked at create -------------------------------------------

JOB_VOLUMES = "properties.mountVolumes"
add("job volumes", {
    **{f"accountName {label}": Case("PUT", NEW_JOB, job(mountVolumes={"azureFileShares": [share(accountName=name)]}),
                                    names=f"{JOB_VOLUMES}.azureFileShares[0].accountName")
       for label, name in (("'..'", ".."), ("'a/b'", "a/b"), ("in capitals", "Account"), ("of 2 characters", "ab"),
                           ("of 25 characters", "a" * 25), ("with a trailing newline", "acct\n"),
                           ("with a hyphen", "my-acct"))},
    **{f"blob accountName {label}": Case("PUT", NEW_JOB, job(mountVolumes={"azureBlobFileSystems": [
        blob(accountName=name)]}), names=f"{JOB_VOLUMES}.azureBlobFileSystems[0].accountName")
       for label, name in (("'..'", ".."), ("with an underscore", "my_acct"))},
    **{f"containerName {label}": Case("PUT", NEW_JOB, job(mountVolumes={"azureBlobFileSystems": [
        blob(containerName=name)]}), names=f"{JOB_VOLUMES}.azureBlobFileSystems[0].containerName")
       for label, name in (("'../..'", "../.."), ("'a/b'", "a/b"), ("in capitals", "Data"), ("of 2 characters", "ab"),
                           ("of 64 characters", "c" * 64), ("with two hyphens in a row", "my--data"),
                           ("ending in a hyphen", "data-"), ("starting with a hyphen", "-data"),
                           ("with a trailing newline", "data\n"))},
    **{f"azureFileUrl {label}": Case("PUT", NEW_JOB, job(mountVolumes={"azureFileShares": [share(azureFileUrl=url)]}),
                                     names=f"{JOB_VOLUMES}.azureFileShares[0].azureFileUrl")
       for label, url in (("not a URL", "share"), ("of another scheme", "ftp://acct.file.core.windows.net/share"),
                          ("without a share", "https://acct.file.core.windows.net/"),
                          ("with a share in capitals", "https://acct.file.core.windows.net/Share"),
                          ("with a share '..'", "https://acct.file.core.windows.net/../x"),
                          ("with credentials", "https://user:pw@acct.file.core.windows.net/share"),
                          ("with a tab", "https://acct.file.core.windows.net/sh\tare"),
                          ("with a newline", "https://acct.file.core.windows.net/share\n"),
                          ("with an unclosed IPv6 host", "https://[::1/share"),
                          ("too long", "https://acct.file.core.windows.net/share/" + long(MAX_URL_LENGTH)))},
    **{f"relativeMountPath {label}": Case("PUT", NEW_JOB, job(mountVolumes={"unmanagedFileSystems": [
        unmanaged(relativeMountPath=path)]}), names=f"{JOB_VOLUMES}.unmanagedFileSystems[0].relativeMountPath")
       for label, path in (("climbing out", "../etc"), ("absolute", "/etc"), ("with '..' inside", "a/../b"),
                           ("'.'", "."), ("with an empty segment", "a//b"), ("with a space", "my mount"),
                           ("with a newline", "afs\n"), ("with a backslash", "a\\b"), ("with a quote", "a'b"),
                           ("too long", "m" * (MAX_RELATIVE_MOUNT_PATH_LENGTH + 1)))},
    "file server id not a file server's": Case("PUT", NEW_JOB, job(mountVolumes={"fileServers": [
        server(fileServer={"id": CLUSTER_ID})]}), names=f"{JOB_VOLUMES}.fileServers[0].fileServer.id"),
    "file server id with a newline": Case("PUT", NEW_JOB, job(mountVolumes={"fileServers": [
        server(fileServer={"id": FILE_SERVER_ID + "\n"})]}), names=f"{JOB_VOLUMES}.fileServers[0].fileServer.id"),
    "file server sourceDirectory climbing out": Case("PUT", NEW_JOB, job(mountVolumes={"fileServers": [
        server(sourceDirectory="../../etc")]}), names=f"{JOB_VOLUMES}.fileServers[0].sourceDirectory"),
    "mountCommand too long": Case("PUT", NEW_JOB, job(mountVolumes={"unmanagedFileSystems": [
        unmanaged(mountCommand=long(MAX_COMMAND_LINE_LENGTH + 1))]}),
        names=f"{JOB_VOLUMES}.unmanagedFileSystems[0].mountCommand"),
    "account key too long": Case("PUT", NEW_JOB, job(mountVolumes={"azureFileShares": [share(credentials={
        "accountKey": long(MAX_SECRET_LENGTH + 1)})]}), names=f"{JOB_VOLUMES}.azureFileShares[0].credentials.accountKey"),
    "fileMode with a trailing newline": Case("PUT", NEW_JOB, job(mountVolumes={"azureFileShares": [
        share(fileMode="0777\n")]}), names=f"{JOB_VOLUMES}.azureFileShares[0].fileMode"),
})

# --- clusters ------------------------------------------------------------------------------------

SETUP = {"commandLine": "true", "stdOutErrPathPrefix": "$AZ_BATCHAI_MOUNT_ROOT"}
CLUSTER_VOLUMES = "properties.nodeSetup.mountVolumes"
add("cluster bodies", {
    "targetNodeCount above the bound": Case("PUT", NEW_CLUSTER, cluster(scaleSettings={"manual": {
        "targetNodeCount": MAX_NODE_COUNT + 1}}), names="properties.scaleSettings.manual.targetNodeCount"),
    "maximumNodeCount of int32 max": Case("PUT", NEW_CLUSTER, cluster(scaleSettings={"autoScale": {
        "minimumNodeCount": 0, "maximumNodeCount": INT32_MAX}}), names="properties.scaleSettings.autoScale.maximumNodeCount"),
    "minimumNodeCount above the bound": Case("PUT", NEW_CLUSTER, cluster(scaleSettings={"autoScale": {
        "minimumNodeCount": MAX_NODE_COUNT + 1, "maximumNodeCount": MAX_NODE_COUNT + 1}}),
        names="properties.scaleSettings.autoScale.minimumNodeCount"),
    "initialNodeCount above the bound": Case("PUT", NEW_CLUSTER, cluster(scaleSettings={"autoScale": {
        "minimumNodeCount": 0, "maximumNodeCount": 1, "initialNodeCount": MAX_NODE_COUNT + 1}}),
        names="properties.scaleSettings.autoScale.initialNodeCount"),
    "vmSize with a trailing newline": Case("PUT", NEW_CLUSTER, cluster(vmSize="STANDARD_NC6\n"), names="properties.vmSize"),
    "vmSize with a shell command": Case("PUT", NEW_CLUSTER, cluster(vmSize="$(reboot)"), names="properties.vmSize"),
    "vmSize of 65 characters": Case("PUT", NEW_CLUSTER, cluster(vmSize="S" * 65), names="properties.vmSize"),
    "adminUserName too long": Case("PUT", NEW_CLUSTER, cluster(userAccountSettings={
        **USER, "adminUserName": long(MAX_USER_NAME_LENGTH + 1)}), names="properties.userAccountSettings.adminUserName"),
    "adminUserPassword too long": Case("PUT", NEW_CLUSTER, cluster(userAccountSettings={
        **USER, "adminUserPassword": long(MAX_SECRET_LENGTH + 1)}),
        names="properties.userAccountSettings.adminUserPassword"),
    "SSH public key too long": Case("PUT", NEW_CLUSTER, cluster(userAccountSettings={
        **USER, "adminUserSshPublicKey": "ssh-rsa " + long(MAX_SECRET_LENGTH)}),
        names="properties.userAccountSettings.adminUserSshPublicKey"),
    "image publisher too long": Case("PUT", NEW_CLUSTER, cluster(virtualMachineConfiguration={"imageReference": {
        "publisher": long(MAX_STRING_LENGTH + 1), "offer": "o", "sku": "s"}}),
        names="properties.virtualMachineConfiguration.imageReference.publisher"),
    "image id with a trailing newline": Case("PUT", NEW_CLUSTER, cluster(virtualMachineConfiguration={"imageReference": {
        "publisher": "p", "offer": "o", "sku": "s", "virtualMachineImageId":
            "/subscriptions/s/resourceGroups/r/providers/Microsoft.Compute/images/i\n"}}),
        names="virtualMachineImageId"),
    "setup task commandLine too long": Case("PUT", NEW_CLUSTER, cluster(nodeSetup={"setupTask": {
        **SETUP, "commandLine": long(MAX_COMMAND_LINE_LENGTH + 1)}}), names="properties.nodeSetup.setupTask.commandLine"),
    "setup task with too many variables": Case("PUT", NEW_CLUSTER, cluster(nodeSetup={"setupTask": {
        **SETUP, "environmentVariables": variables(MAX_ENVIRONMENT_VARIABLES + 1)}}),
        names="properties.nodeSetup.setupTask.environmentVariables"),
    "setup task with too many secrets": Case("PUT", NEW_CLUSTER, cluster(nodeSetup={"setupTask": {
        **SETUP, "secrets": variables(MAX_SECRETS + 1)}}), names="properties.nodeSetup.setupTask.secrets"),
    "setup task variable name with a newline": Case("PUT", NEW_CLUSTER, cluster(nodeSetup={"setupTask": {
        **SETUP, "environmentVariables": [{"name": "PATH\n", "value": "/x"}]}}),
        names="properties.nodeSetup.setupTask.environmentVariables[0].name"),
    "cluster share accountName '..'": Case("PUT", NEW_CLUSTER, cluster(nodeSetup={"mountVolumes": {
        "azureFileShares": [share(accountName="..")]}}), names=f"{CLUSTER_VOLUMES}.azureFileShares[0].accountName"),
    "cluster containerName '../..'": Case("PUT", NEW_CLUSTER, cluster(nodeSetup={"mountVolumes": {
        "azureBlobFileSystems": [blob(containerName="../..")]}}),
        names=f"{CLUSTER_VOLUMES}.azureBlobFileSystems[0].containerName"),
    "cluster relativeMountPath absolute": Case("PUT", NEW_CLUSTER, cluster(nodeSetup={"mountVolumes": {
        "azureFileShares": [share(relativeMountPath="/mnt")]}}),
        names=f"{CLUSTER_VOLUMES}.azureFileShares[0].relativeMountPath"),
    "cluster with too many file servers": Case("PUT", NEW_CLUSTER, cluster(nodeSetup={"mountVolumes": {
        "fileServers": [server(relativeMountPath=f"n{i}") for i in range(MAX_MOUNT_VOLUMES + 1)]}}),
        names=f"{CLUSTER_VOLUMES}.fileServers"),
    "PATCH targetNodeCount above the bound": Case("PATCH", CLUSTER_ID, {"properties": {"scaleSettings": {"manual": {
        "targetNodeCount": MAX_NODE_COUNT + 1}}}}, names="properties.scaleSettings.manual.targetNodeCount"),
    "PATCH maximumNodeCount of int32 max": Case("PATCH", CLUSTER_ID, {"properties": {"scaleSettings": {"autoScale": {
        "minimumNodeCount": 0, "maximumNodeCount": INT32_MAX}}}},
        names="properties.scaleSettings.autoScale.maximumNodeCount"),
})

# --- file servers, workspaces, event subscriptions, role assignments -----------------------------

SSH = FILE_SERVER["properties"]["sshConfiguration"]
add("other bodies", {
    "file server diskCount above the bound": Case("PUT", NEW_FILE_SERVER, file_server(dataDisks=disks(
        diskCount=MAX_DATA_DISKS + 1)), names="properties.dataDisks.diskCount"),
    "file server diskSizeInGB above the bound": Case("PUT", NEW_FILE_SERVER, file_server(dataDisks=disks(
        diskSizeInGB=MAX_DISK_SIZE_GB + 1)), names="properties.dataDisks.diskSizeInGB"),
    "file server vmSize with a newline": Case("PUT", NEW_FILE_SERVER, file_server(vmSize="STANDARD_D2\n"),
                                              names="properties.vmSize"),
    "file server adminUserName too long": Case("PUT", NEW_FILE_SERVER, file_server(sshConfiguration={
        "userAccountSettings": {**USER, "adminUserName": long(MAX_USER_NAME_LENGTH + 1)}}),
        names="properties.sshConfiguration.userAccountSettings.adminUserName"),
    "file server with 401 allowed IPs": Case("PUT", NEW_FILE_SERVER, file_server(sshConfiguration={
        **SSH, "publicIPsToAllow": ["10.0.0.1"] * 401}), names="properties.sshConfiguration.publicIPsToAllow"),
    "workspace with too many tags": Case("PUT", f"{ARM}/workspaces/new", {"location": "eastus", "tags": {
        f"t{i}": "v" for i in range(MAX_TAGS + 1)}}, names="tags"),
    "workspace tag name too long": Case("PUT", f"{ARM}/workspaces/new", {"location": "eastus", "tags": {
        long(MAX_TAG_NAME_LENGTH + 1): "v"}}, names="tags"),
    "workspace tag value too long": Case("PUT", f"{ARM}/workspaces/new", {"location": "eastus", "tags": {
        "t": long(MAX_TAG_VALUE_LENGTH + 1)}}, names="tags.t"),
    "workspace location too long": Case("PUT", f"{ARM}/workspaces/new", {"location": long(MAX_STRING_LENGTH + 1)},
                                        names="location"),
    "PATCH with too many tags": Case("PATCH", WS, {"tags": {f"t{i}": "v" for i in range(MAX_TAGS + 1)}}, names="tags"),
    "event subscription secret too long": Case("PUT", WS + "/eventSubscriptions/new", subscription_body(
        secret=long(257)), names="properties.secret"),
    "event subscription empty secret": Case("PUT", WS + "/eventSubscriptions/new", subscription_body(secret=""),
                                            names="properties.secret"),
    "event subscription filtering 101 experiments": Case("PUT", WS + "/eventSubscriptions/new", subscription_body(
        filter={"experiments": [f"e{i}" for i in range(101)]}), names="properties.filter.experiments"),
    "event subscription experiment with a newline": Case("PUT", WS + "/eventSubscriptions/new", subscription_body(
        filter={"experiments": ["exp\n"]}), names="properties.filter.experiments[0]"),
    "event subscription unknown event type": Case("PUT", WS + "/eventSubscriptions/new", subscription_body(
        filter={"eventTypes": ["Microsoft.BatchAI.Everything"]}), names="properties.filter.eventTypes[0]"),
    "event subscription filtering 101 event types": Case("PUT", WS + "/eventSubscriptions/new", subscription_body(
        filter={"eventTypes": ["Microsoft.BatchAI.JobFailed"] * 101}), names="properties.filter.eventTypes"),
    "event subscription without destination": Case("PUT", WS + "/eventSubscriptions/new", {"properties": {}},
                                                   names="properties.destination"),
    "role assignment with an unknown role": Case("PUT", WS + "/roleAssignments/new", {"properties": {
        "principalId": "p", "role": "god"}}, names="properties.role"),
    "role assignment principalId too long": Case("PUT", WS + "/roleAssignments/new", {"properties": {
        "principalId": long(129), "role": "reader"}}, names="properties.principalId"),
    "role assignment principalId a number": Case("PUT", WS + "/roleAssignments/new", {"properties": {
        "principalId": 7, "role": "reader"}}, names="properties.principalId"),
})

# --- query parameters ----------------------------------------------------------------------------

FILES = JOB + "/listOutputFiles"
add("query parameters", {
    "api-version missing": Case("PUT", NEW_JOB, job(), query={}, names="api-version"),
    "api-version with a trailing newline": Case("PUT", NEW_JOB, job(), query={"api-version": "2018-05-01\n"},
                                                names="api-version"),
    "api-version of another version": Case("PUT", NEW_CLUSTER, cluster(), query={"api-version": "2017-09-01-preview"},
                                           names="api-version"),
    "api-version of 10 kB": Case("PUT", f"{ARM}/workspaces/new", {"location": "eastus"},
                                 query={"api-version": long(10_000)}, names="api-version"),
    "maxresults of zero": Case("GET", WS + "/clusters", query={**QUERY, "maxresults": "0"}, names="maxresults"),
    "maxresults negative": Case("GET", WS + "/experiments", query={**QUERY, "maxresults": "-1"}, names="maxresults"),
    "maxresults above 1000": Case("GET", f"{ARM}/workspaces", query={**QUERY, "maxresults": "1001"},
                                  names="maxresults"),
    "maxresults of 30 digits": Case("GET", WS + "/fileServers", query={**QUERY, "maxresults": "9" * 30},
                                    names="maxresults"),
    "maxresults as a float": Case("GET", WS + "/experiments/exp/jobs", query={**QUERY, "maxresults": "1e3"},
                                  names="maxresults"),
    "a made-up $skiptoken": Case("GET", WS + "/clusters", query={**QUERY, "$skiptoken": "%%%"}, names="$skiptoken"),
    "output files of a directory id with a newline": Case("POST", FILES, query={
        **QUERY, "outputdirectoryid": "stdouterr\n"}, names="outputdirectoryid"),
    "output files with a link expiry of 601 minutes": Case("POST", FILES, query={
        **QUERY, "outputdirectoryid": "stdouterr", "linkexpiryinminutes": "601"}, names="linkexpiryinminutes"),
    "output files with a link expiry as text": Case("POST", FILES, query={
        **QUERY, "outputdirectoryid": "stdouterr", "linkexpiryinminutes": "soon"}, names="linkexpiryinminutes"),
    "output files of a folder climbing out": Case("POST", FILES, query={
        **QUERY, "outputdirectoryid": "stdouterr", "directory": "../../.."}, names="directory"),
    "output files with a superscript $skiptoken": Case("POST", FILES, query={
        **QUERY, "outputdirectoryid": "stdouterr", "$skiptoken": "\u00b2"}, names="$skiptoken"),
    "output files with a $skiptoken of 5000 digits": Case("POST", FILES, query={
        **QUERY, "outputdirectoryid": "stdouterr", "$skiptoken": "9" * 5000}, names="$skiptoken"),
    "cluster nodes with a made-up $skiptoken": Case("POST", CLUSTER_ID + "/listRemoteLoginInformation", query={
        **QUERY, "$skiptoken": "next"}, names="$skiptoken"),
    "output files with maxresults of zero": Case("POST", FILES, query={
        **QUERY, "outputdirectoryid": "stdouterr", "maxresults": "0"}, names="maxresults"),
})

# --- the agents' routes (as a node that holds nothing; registration is another suite's) ----------

REGISTER = {"clusterId": CLUSTER_ID, "nodeId": "node-0000", "address": "127.0.0.2", "token": "guess",
            "credential": "c" * 40}
NODE_ROUTES_BODIES = {
    "ready": {"error": {"code": "MountFailed", "message": "m"}},
    "report": {"job": "job|x", "attempt": 1, "exitCode": 0},
    "prepared": {"job": "job|x", "attempt": 1},
}
add("agent routes", {
    **{f"{route} with malformed JSON": Case("POST", f"/agent/{route}", raw=b'{"job": ', caller="node", names="JSON")
       for route in NODE_ROUTES_BODIES},
    **{f"{route} with a list for a body": Case("POST", f"/agent/{route}", [body], caller="node", names="body")
       for route, body in NODE_ROUTES_BODIES.items()},
    **{f"{route} with an unknown field": Case("POST", f"/agent/{route}", {**body, "root": True}, caller="node",
                                              names="root") for route, body in NODE_ROUTES_BODIES.items()},
    "ready with an error code of 101 characters": Case("POST", "/agent/ready", {"error": {
        "code": long(101), "message": "m"}}, caller="node", names="error.code"),
    "ready with an error message of 4001 characters": Case("POST", "/agent/ready", {"error": {
        "code": "C", "message": long(4001)}}, caller="node", names="error.message"),
    "ready with an error that is text": Case("POST", "/agent/ready", {"error": "broken"}, caller="node",
                                             names="error"),
    "report with attempt 0": Case("POST", "/agent/report", {**NODE_ROUTES_BODIES["report"], "attempt": 0},
                                  caller="node", names="attempt"),
    "report with a negative attempt": Case("POST", "/agent/report", {**NODE_ROUTES_BODIES["report"], "attempt": -3},
                                           caller="node", names="attempt"),
    "report with a fractional attempt": Case("POST", "/agent/report", {**NODE_ROUTES_BODIES["report"],
                                                                       "attempt": 1.5}, caller="node", names="attempt"),
    "report with an attempt of 30 digits": Case("POST", "/agent/report", {**NODE_ROUTES_BODIES["report"],
                                                                          "attempt": 10**30},
                                                status=409, caller="node", names="attempt"),
    "report of an attempt the node does not hold": Case("POST", "/agent/report", NODE_ROUTES_BODIES["report"],
                                                        status=409, caller="node", names="attempt"),
    "report without exitCode": Case("POST", "/agent/report", {"job": "job|x", "attempt": 1}, caller="node",
                                    names="exitCode"),
    "report with exitCode as text": Case("POST", "/agent/report", {**NODE_ROUTES_BODIES["report"], "exitCode": "x"},
                                         caller="node", names="exitCode"),
    "report with a job key of 1001 characters": Case("POST", "/agent/report", {
        **NODE_ROUTES_BODIES["report"], "job": long(1001)}, caller="node", names="job"),
    "report with an error message of 4001 characters": Case("POST", "/agent/report", {
        **NODE_ROUTES_BODIES["report"], "error": {"code": "C", "message": long(4001)}}, caller="node",
        names="error.message"),
    "prepared with attempt 0": Case("POST", "/agent/prepared", {"job": "job|x", "attempt": 0}, caller="node",
                                    names="attempt"),
    "prepared with attempt as text": Case("POST", "/agent/prepared", {"job": "job|x", "attempt": "one"},
                                          caller="node", names="attempt"),
    "all prepared with attempt as text": Case("GET", "/agent/prepared", query={"job": "job|x", "attempt": "one"},
                                              caller="node", names="attempt"),
    "all prepared with a superscript attempt": Case("GET", "/agent/prepared", query={"job": "job|x", "attempt": "\u00b2"},
                                                    caller="node", names="attempt"),
    "all prepared with an attempt of 5000 digits": Case("GET", "/agent/prepared", query={
        "job": "job|x", "attempt": "9" * 5000}, caller="node", names="attempt"),
    "assignment with an infinite wait": Case("GET", "/agent/assignment", query={"wait": "inf"}, caller="node",
                                             names="wait"),
    "all prepared without attempt": Case("GET", "/agent/prepared", query={"job": "job|x"}, caller="node",
                                         names="attempt"),
    "all prepared of an attempt not held": Case("GET", "/agent/prepared", query={"job": "job|x", "attempt": "7"},
                                                status=409, caller="node", names="attempt"),
    "assignment with a wait as text": Case("GET", "/agent/assignment", query={"wait": "long"}, caller="node",
                                           names="wait"),
    "assignment with a wait of NaN": Case("GET", "/agent/assignment", query={"wait": "nan"}, caller="node",
                                          names="wait"),
    "report without a credential": Case("POST", "/agent/report", NODE_ROUTES_BODIES["report"], status=401,
                                        caller="anyone", names="x-batchai-node"),
    "report with another credential": Case("POST", "/agent/report", NODE_ROUTES_BODIES["report"], status=401,
                                           caller="anyone", names="x-batchai-node-credential",
                                           headers={"x-batchai-node": "{node}", "x-batchai-node-credential": "guess"}),
    "heartbeat of a node that does not exist": Case("POST", "/agent/heartbeat", status=410, caller="anyone",
                                                    names="x-batchai-node", headers={
                                                        "x-batchai-node": "nope|node-9", "x-batchai-node-credential": "g"}),
    "register with malformed JSON": Case("POST", "/agent/register", raw=b"{", caller="anyone", names="JSON"),
    "register with a cluster id of 1001 characters": Case("POST", "/agent/register", {
        **REGISTER, "clusterId": long(1001)}, caller="anyone", names="clusterId"),
    "register with a token of 201 characters": Case("POST", "/agent/register", {**REGISTER, "token": long(201)},
                                                    caller="anyone", names="token"),
    "register with an address of 65 characters": Case("POST", "/agent/register", {**REGISTER, "address": long(65)},
                                                      caller="anyone", names="address"),
    "register with a credential of 201 characters": Case("POST", "/agent/register", {
        **REGISTER, "credential": long(201)}, caller="anyone", names="credential"),
    "register with a wrong token": Case("POST", "/agent/register", REGISTER, status=401, caller="anyone",
                                        names="token"),
})

# --- signed download URLs (from a real listOutputFiles answer, then changed) ----------------------

add("signed URLs", {
    "a tampered signature": Case("GET", "{url}", status=403, caller="anyone", names="sig",
                                 query={"se": "{se}", "sig": "A{sig}"}),
    "no signature": Case("GET", "{url}", status=403, caller="anyone", names="sig", query={"se": "{se}"}),
    "no expiry": Case("GET", "{url}", status=403, caller="anyone", names="se", query={"sig": "{sig}"}),
    "an expiry as text": Case("GET", "{url}", status=403, caller="anyone", names="se",
                              query={"se": "tomorrow", "sig": "{sig}"}),
    "an expiry pushed later": Case("GET", "{url}", status=403, caller="anyone", names="sig",
                                   query={"se": "{later}", "sig": "{sig}"}),
    "an expiry of 40 digits": Case("GET", "{url}", status=403, caller="anyone", names="se",
                                   query={"se": "9" * 40, "sig": "{sig}"}),
    "an expiry of 5000 digits": Case("GET", "{url}", status=403, caller="anyone", names="se",
                                     query={"se": "9" * 5000, "sig": "{sig}"}),
    "an expiry in superscript digits": Case("GET", "{url}", status=403, caller="anyone", names="se",
                                            query={"se": "\u00b2", "sig": "{sig}"}),
    "an expired URL, validly signed": Case("GET", "{expired}", status=403, caller="anyone", names="se", query={}),
    "another file's path with this signature": Case("GET", "/files/token", status=403, caller="anyone", names="sig",
                                                    query={"se": "{se}", "sig": "{sig}"}),
    "'..' in the path, validly signed": Case("GET", "{climb}", status=403, caller="anyone", names="path", query={}),
    "'%2e%2e' in the path": Case("GET", "/files/pools/%2e%2e/%2e%2e/token", status=403, caller="anyone", names="sig",
                                 query={"se": "{se}", "sig": "{sig}"}),
    "a backslash in the path": Case("GET", "/files/pools%5C..%5Ctoken", status=403, caller="anyone", names="sig",
                                    query={"se": "{se}", "sig": "{sig}"}),
    "a NUL in the path": Case("GET", "/files/token%00.txt", status=403, caller="anyone", names="sig",
                              query={"se": "{se}", "sig": "{sig}"}),
})

# --- messages on the request queues --------------------------------------------------------------

JOB_PATH = {"subscriptionId": SUB, "resourceGroupName": RG, "workspaceName": "ws", "experimentName": "exp",
            "jobName": "queued"}
CLUSTER_PATH = {"subscriptionId": SUB, "resourceGroupName": RG, "workspaceName": "ws", "clusterName": "gpu"}


@dataclass
class Message:
    """One hostile request by queue message, and what the refusal (the reply's CloudError) must name."""

    queue: str
    envelope: dict[str, Any]
    names: str
    status: int = 400


MESSAGES: dict[str, Message] = {
    "job with processCount of int32 max": Message(JOB_SUBMISSIONS, {"path": JOB_PATH, "body": toolkit(
        "pyTorchSettings", {"pythonScriptFilePath": "t.py", "processCount": INT32_MAX})},
        "properties.pyTorchSettings.processCount"),
    "job with too many environment variables": Message(JOB_SUBMISSIONS, {"path": JOB_PATH, "body": job(
        environmentVariables=variables(MAX_ENVIRONMENT_VARIABLES + 1))}, "properties.environmentVariables"),
    "job with an accountName '..'": Message(JOB_SUBMISSIONS, {"path": JOB_PATH, "body": job(mountVolumes={
        "azureFileShares": [share(accountName="..")]})}, "properties.mountVolumes.azureFileShares[0].accountName"),
    "job name with a trailing newline": Message(JOB_SUBMISSIONS, {"path": {**JOB_PATH, "jobName": "queued\n"},
                                                                  "body": job()}, "jobName"),
    "workspace name with a trailing newline": Message(JOB_SUBMISSIONS, {"path": {**JOB_PATH, "workspaceName": "ws\n"},
                                                                        "body": job()}, "workspaceName"),
    "subscription id with a pipe": Message(JOB_SUBMISSIONS, {"path": {**JOB_PATH, "subscriptionId": "a|b"},
                                                             "body": job()}, "subscriptionId"),
    "job name as a number": Message(JOB_SUBMISSIONS, {"path": {**JOB_PATH, "jobName": 7}, "body": job()},
                                    "path.jobName"),
    "body that is a list": Message(JOB_SUBMISSIONS, {"path": JOB_PATH, "body": [job()]}, "body"),
    "envelope without a path": Message(JOB_SUBMISSIONS, {"body": job()}, "path"),
    "envelope with an unknown field": Message(JOB_SUBMISSIONS, {"path": JOB_PATH, "body": job(), "sudo": True}, "sudo"),
    "another apiVersion": Message(JOB_SUBMISSIONS, {"path": JOB_PATH, "body": job(), "apiVersion": "2017-09-01-preview"},
                                  "api-version"),
    "resize above the bound": Message(CLUSTER_RESIZES, {"path": CLUSTER_PATH, "body": {"properties": {
        "scaleSettings": {"manual": {"targetNodeCount": MAX_NODE_COUNT + 1}}}}},
        "properties.scaleSettings.manual.targetNodeCount"),
    "resize of a cluster name with a newline": Message(CLUSTER_RESIZES, {"path": {**CLUSTER_PATH, "clusterName": "gpu\n"},
                                                                         "body": {"properties": {"scaleSettings": {
                                                                             "manual": {"targetNodeCount": 0}}}}},
                                                       "clusterName"),
}


# --------------------------------------------------------------------------------------------------
# The host, seeded once for the module
# --------------------------------------------------------------------------------------------------

@dataclass
class Seeded:
    host: LocalHostProcess
    http: httpx.Client  # the owner's client
    store: SqliteStateStore
    node_headers: dict[str, str]  # an agent credential of a node that holds nothing
    url: SplitResult  # a real signed download URL of the seeded job's stdout
    signer: UrlSigner


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    """A workspace with a one-node cluster, a file server, an experiment, a job that ran, an event
    subscription and a role assignment; and a node credential the test knows."""
    with running_host(tmp_path_factory.mktemp("hostile") / "state") as host, httpx.Client(
            base_url=host.endpoint, params=QUERY, headers=host.headers, timeout=30) as http:
        for path, body in ((WS, {"location": "eastus"}), (CLUSTER_ID, cluster(scaleSettings={"manual": {
                "targetNodeCount": 1}})), (FILE_SERVER_ID, FILE_SERVER), (WS + "/experiments/exp", None),
                (JOB, job()), (EMPTY_CLUSTER, cluster()), (WS + "/roleAssignments/reader", {"properties": {"principalId": "p", "role": "reader"}})):
            assert http.put(path, json=body).status_code == 200, path
        settle_job(http)
        store = SqliteStateStore(host.data_dir / "state.sqlite3")
        store.open(CONTAINERS)
        answer = http.post(FILES, params={**QUERY, "outputdirectoryid": "stdouterr"})
        url = next(f["downloadUrl"] for f in answer.json()["value"] if f["name"].endswith("stdout.txt"))
        signer = UrlSigner(load_or_create_key(host.data_dir / "url-signing.key"), lambda: host.endpoint,
                           host.data_dir)
        yield Seeded(host, http, store, fake_node(store), urlsplit(url), signer)


def settle_job(http: httpx.Client) -> None:
    """The seeded job ran and its cluster is steady (test_invalid_requests' wait, on this workspace)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = http.get(JOB).json()["properties"]["executionState"]
        counts = http.get(CLUSTER_ID).json()["properties"]["nodeStateCounts"]
        if state in ("succeeded", "failed") and counts["idleNodeCount"] == 1:
            return
        time.sleep(0.1)
    raise AssertionError("the seeded job did not run to its end")


def fake_node(store: SqliteStateStore) -> dict[str, str]:
    """A node document of no cluster's pool, in a state the watchdog leaves alone, whose credential
    the test knows: the agents' routes are then reached as a node that holds no attempt. (Its agent
    would get one by registering; which node ids may register is another suite's business.)"""
    uid, node_id, secret = "hostile-" + secrets.token_hex(4), "node-hostile", secrets.token_urlsafe(16)
    doc = nodes.new_doc(uid, node_id, "cluster|nowhere", SUB, "127.0.0.99", datetime.now(UTC), state="unusable")
    store.create(nodes.N, {**doc.to_json(), "credential": nodes.hash_secret(secret)})
    return {"x-batchai-node": nodes.node_key(uid, node_id), "x-batchai-node-credential": secret}


def snapshot(store: SqliteStateStore) -> dict[str, str]:
    """Every stored resource, node and role assignment, with its ETag."""
    return {f"{spec.name}/{d['id']}": d["_etag"] for spec in (RESOURCES, NODES, ROLE_ASSIGNMENTS)
            for d in store.query(spec.name, Query())}


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (agents lead their own sessions, but are still its children)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2:].split()
            if fields[0] != "Z":
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def workspace_names(seeded: Seeded) -> list[str]:
    answer = seeded.http.get(f"{ARM}/workspaces")
    return sorted(w["name"] for w in answer.json()["value"])


def fill(text: str, seeded: Seeded) -> str:
    """A signed-URL case's placeholders: the real URL's path, expiry and signature, and URLs the
    test signs with the host's key (one expired, one whose path climbs out)."""
    query = parse_qs(seeded.url.query)
    se, sig = query["se"][0], query["sig"][0]
    relative = seeded.url.path.removeprefix("/files/")
    past = int(time.time()) - 60
    values = {"url": seeded.url.path, "se": se, "sig": sig, "later": str(int(se) + 3600),
              "expired": f"{seeded.url.path}?se={past}&sig={seeded.signer.sign(relative, past)}",
              "climb": f"/files/pools/../token?se={int(se)}&sig={seeded.signer.sign('pools/../token', int(se))}",
              "node": seeded.node_headers["x-batchai-node"]}
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text


def send(seeded: Seeded, case: Case) -> tuple[int, dict[str, Any]]:
    """The request exactly as written (no normalising of '..' or percent-escapes), and its answer."""
    host = urlsplit(seeded.host.endpoint)
    path = fill(case.path, seeded)
    query = urlencode({k: fill(v, seeded) for k, v in case.query.items()})
    target = path + ("&" if "?" in path else "?") + query if query else path
    headers = {"Content-Type": "application/json", **{k: fill(v, seeded) for k, v in case.headers.items()}}
    if case.caller == "owner":
        headers |= seeded.host.headers
    elif case.caller == "node":
        headers |= seeded.node_headers
    body = case.raw if case.raw is not None else (json.dumps(case.body).encode() if case.body is not None else b"")
    connection = http.client.HTTPConnection(host.hostname, host.port, timeout=30)
    try:
        connection.request(case.method, target, body=body, headers=headers)
        answer = connection.getresponse()
        return answer.status, json.loads(answer.read() or b"{}")
    finally:
        connection.close()


# --------------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------------

def test_there_are_at_least_150_cases() -> None:
    assert len(CASES) + len(MESSAGES) >= 150, len(CASES) + len(MESSAGES)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_hostile_request_is_refused_naming_the_field(seeded: Seeded, case: Case) -> None:
    stored, processes, workspaces = snapshot(seeded.store), descendants(seeded.host.pid), workspace_names(seeded)
    status, answer = send(seeded, case)
    assert status < 500, answer
    assert status == case.status, answer
    error = answer["error"]
    assert error["code"] and error["message"]
    assert case.names in f"{error.get('target', '')} {error['message']}", error
    assert snapshot(seeded.store) == stored, "nothing is stored"
    assert workspace_names(seeded) == workspaces
    assert descendants(seeded.host.pid) == processes, "no process started"


@dataclass
class Batch:
    """Every hostile message's outcome (the replies), and what the host looked like around them."""

    outcomes: dict[str, Outcome]
    stored_before: dict[str, str]
    stored_after: dict[str, str]
    processes_before: set[int]
    processes_after: set[int]


@pytest.fixture(scope="module")
def message_batch(seeded: Seeded) -> Batch:
    """All messages sent at once, with a reply asked for each (one connection: a message each would
    cost seconds); the outcomes are then read off the reply queue."""
    connection = seeded.host.servicebus_connection_string
    assert connection, "the local host opened its Service Bus door"
    token = seeded.host.headers["Authorization"]
    stored, processes = snapshot(seeded.store), descendants(seeded.host.pid)
    correlations = {uuid.uuid4().hex: name for name in MESSAGES}
    outcomes: dict[str, Outcome] = {}
    with ServiceBusClient.from_connection_string(connection) as client:
        for queue in (JOB_SUBMISSIONS, CLUSTER_RESIZES):
            with client.get_queue_sender(queue) as sender:
                sender.send_messages([ServiceBusMessage(
                    json.dumps(MESSAGES[name].envelope), message_id=correlation, correlation_id=correlation,
                    reply_to=REPLIES, application_properties={"Authorization": token})
                    for correlation, name in correlations.items() if MESSAGES[name].queue == queue])
        deadline = time.monotonic() + 60
        with client.get_queue_receiver(REPLIES, prefetch_count=0) as receiver:
            while len(outcomes) < len(MESSAGES) and time.monotonic() < deadline:
                for reply in receiver.receive_messages(max_message_count=50, max_wait_time=1):
                    receiver.complete_message(reply)
                    if reply.correlation_id in correlations:
                        outcomes[correlations[reply.correlation_id]] = Outcome.model_validate(
                            json.loads(b"".join(reply.body)))
    return Batch(outcomes, stored, snapshot(seeded.store), processes, descendants(seeded.host.pid))


@pytest.mark.parametrize("name", MESSAGES.keys())
def test_hostile_message_is_refused_naming_the_field(message_batch: Batch, name: str) -> None:
    message, outcome = MESSAGES[name], message_batch.outcomes.get(name)
    assert outcome is not None, "a reply came"
    assert outcome.status == message.status, outcome
    error = outcome.error or {}
    assert message.names in f"{error.get('target', '')} {error.get('message', '')}", error
    assert message_batch.stored_after == message_batch.stored_before, "nothing is stored"
    assert message_batch.processes_after == message_batch.processes_before, "no process started"


def test_a_name_with_a_trailing_newline_is_not_a_second_workspace(seeded: Seeded) -> None:
    """Issue 16, hole 6: `PUT .../workspaces/ws%0A` made a second workspace beside `ws`."""
    status, answer = send(seeded, Case("PUT", f"{ARM}/workspaces/ws%0A", {"location": "eastus"}))
    assert status == 400 and answer["error"]["target"] == "workspaceName"
    assert workspace_names(seeded) == ["ws"]


def test_process_count_of_int32_max_is_refused_naming_it(seeded: Seeded) -> None:
    """Issue 16, hole 5: `pyTorchSettings.processCount = 2147483647` on one node was accepted."""
    status, answer = send(seeded, Case("PUT", NEW_JOB, toolkit("pyTorchSettings", {
        "pythonScriptFilePath": "t.py", "processCount": INT32_MAX})))
    assert status == 400 and answer["error"]["target"] == "properties.pyTorchSettings.processCount"


@pytest.mark.parametrize(("volumes", "target"), [
    ({"azureFileShares": [share(accountName="..")]}, "azureFileShares[0].accountName"),
    ({"azureFileShares": [share(accountName="a/b")]}, "azureFileShares[0].accountName"),
    ({"azureBlobFileSystems": [blob(containerName="../..")]}, "azureBlobFileSystems[0].containerName"),
], ids=["accountName ..", "accountName a/b", "containerName ../.."])
def test_volume_names_are_checked_at_create_naming_the_field(seeded: Seeded, volumes: dict[str, Any],
                                                            target: str) -> None:
    """Issue 16, hole 7: such names were accepted and failed later at mount."""
    status, answer = send(seeded, Case("PUT", NEW_JOB, job(mountVolumes=volumes)))
    assert status == 400 and answer["error"]["target"] == f"properties.mountVolumes.{target}"


def test_the_real_download_url_is_served(seeded: Seeded) -> None:
    """The signed-URL cases change a URL that works."""
    status = httpx.get(f"{seeded.host.endpoint}{seeded.url.path}?{seeded.url.query}").status_code
    assert status == 200


def test_bounds_themselves_are_accepted(seeded: Seeded) -> None:
    """Each bound is the most accepted, not one too few: a job at every bound at once is created (on a
    cluster without nodes, so that its 512 processes never start)."""
    body = toolkit("pyTorchSettings", {"pythonScriptFilePath": "t.py", "processCount": MAX_PROCESSES_PER_NODE,
                                       "commandLineArgs": long(MAX_COMMAND_LINE_LENGTH - 10)},
                   environmentVariables=variables(200, long(100)), secrets=[{"name": "S", "value": long(1000)}],
                   mountVolumes={"azureFileShares": [share(accountName="a" * 24, relativeMountPath="m" * 255,
                                                           azureFileUrl="https://acct.file.core.windows.net/"
                                                                        + "s" * 63)],
                                 "azureBlobFileSystems": [blob(accountName="abc", containerName="a-b-c")]},
                   cluster={"id": EMPTY_CLUSTER})
    status, answer = send(seeded, Case("PUT", WS + "/experiments/exp/jobs/at-bounds", body))
    assert status == 200, answer
    assert answer["properties"]["pyTorchSettings"]["processCount"] == MAX_PROCESSES_PER_NODE
    assert send(seeded, Case("DELETE", WS + "/experiments/exp/jobs/at-bounds"))[0] in (200, 202, 204)


def test_the_suite_leaves_the_host_healthy(seeded: Seeded) -> None:
    assert httpx.get(seeded.host.endpoint + "/health").status_code == 200
    assert os.path.exists(seeded.host.data_dir / "state.sqlite3")
