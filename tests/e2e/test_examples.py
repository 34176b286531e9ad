"""Every example of the 2018-05-01 spec, replayed in order against the local host: each request is
accepted and each answer has the shape of the example's answer."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx

from tests.spec_examples import with_real_names

SPEC_DIR = Path(__file__).resolve().parents[3] / "shared/reference/batchai-2018-05-01"

# In the order a user would run them on an empty service; the deletes come last.
ORDER = [
    "PutWorkspace", "GetWorkspace", "PatchWorkspace", "ListWorkspace", "ListWorkspaceByResourceGroup",
    "PutCluster", "GetCluster", "PatchCluster", "ListClusterByWorkspace", "ClusterListRemoteLoginInfo",
    "PutFileServer", "GetFileServer", "ListFileServerByWorkspace",
    "PutExperiment", "GetExperiment", "ListExperimentByWorkspace",
    "PutJob", "GetJob", "ListJobByExperiment", "JobListRemoteLoginInfo", "ListOutputFiles", "TerminateJob",
    "ListOperation", "ListUsages",
    "DeleteJob", "DeleteExperiment", "DeleteFileServer", "DeleteCluster", "DeleteWorkspace",
]

# Examples in the folder that no operation of the 2018-05-01 spec refers to: they list clusters and
# file servers per subscription or resource group, which this API version no longer has.
NOT_IN_THIS_VERSION = {"ListCluster", "ListClusterByResourceGroup", "ListFileServer",
                       "ListFileServerByResourceGroup"}

# Parts of example answers that a new, not yet running resource cannot have, and the examples'
# own slips (README of the reference: `priority` where the spec says `schedulingPriority`).
ABSENT_UNTIL_RUNNING = {"executionInfo", "errors", "priority", "mountSettings"}


# Properties of which an answer has one or the other (a later PATCH may have switched them).
ONE_OF = {"manual": "autoScale", "autoScale": "manual"}


def operations() -> dict[str, tuple[str, str, dict[str, Any]]]:
    """Example name -> (method, path template, the operation's parameters) from the spec."""
    spec = json.loads((SPEC_DIR / "BatchAI.json").read_text())
    found = {}
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            for ref in op.get("x-ms-examples", {}).values():
                name = Path(ref["$ref"]).stem
                declared = [spec["parameters"][p["$ref"].rsplit("/", 1)[1]] if "$ref" in p else p
                            for p in op.get("parameters", [])]
                found[name] = (method.upper(), path, {p["name"]: p for p in declared})
    return found


def test_every_example_is_in_the_replay_order() -> None:
    examples = {p.stem for p in (SPEC_DIR / "examples").glob("*.json")}
    assert set(ORDER) == set(operations()) == examples - NOT_IN_THIS_VERSION


def shape_problems(example: Any, actual: Any, where: str = "") -> list[str]:
    """Keys and types of the example missing or different in the actual answer."""
    if isinstance(example, dict):
        if not isinstance(actual, dict):
            return [f"{where or 'body'}: expected an object, got {type(actual).__name__}"]
        problems = []
        for key, value in example.items():
            if key in ABSENT_UNTIL_RUNNING or (key in ONE_OF and ONE_OF[key] in actual):
                continue
            if key not in actual:
                problems.append(f"{where}.{key}: missing")
            else:
                problems += shape_problems(value, actual[key], f"{where}.{key}")
        return problems
    if isinstance(example, list):
        if not isinstance(actual, list):
            return [f"{where}: expected a list"]
        return shape_problems(example[0], actual[0], f"{where}[0]") if example and actual else []
    if isinstance(example, bool) or isinstance(actual, bool):
        return [] if type(example) is type(actual) else [f"{where}: {actual!r} is not like {example!r}"]
    if isinstance(example, (int, float)) and isinstance(actual, (int, float)):
        return []
    if type(example) is not type(actual):
        return [f"{where}: {actual!r} is not like {example!r}"]
    return []


SECRET_KEYS = {"adminUserPassword", "accountKey", "password", "instrumentationKey"}


def secrets_in(body: Any, parent: str = "") -> list[str]:
    """Secret values anywhere in a request body (and the values of job and setup task secrets)."""
    if isinstance(body, dict):
        return [found for key, value in body.items()
                for found in ([value] if key in SECRET_KEYS or (parent == "secrets" and key == "value")
                              else secrets_in(value, key))]
    if isinstance(body, list):
        return [found for item in body for found in secrets_in(item, parent)]
    return []


def request_of(example: dict[str, Any], method: str, template: str, params: dict[str, Any]
               ) -> tuple[str, dict[str, str], Any]:
    values = example["parameters"]
    path = re.sub(r"\{(\w+)\}", lambda match: str(values[match.group(1)]), template)
    query = {name: str(values[name]) for name, p in params.items()
             if p.get("in") == "query" and name in values}
    query["api-version"] = values.get("api-version", "2018-05-01")
    body = next((values[name] for name, p in params.items() if p.get("in") == "body"), None)
    return path, query, with_real_names(body)


def test_examples_replay_against_an_empty_service(http: httpx.Client) -> None:
    found = operations()
    for name in ORDER:
        example = json.loads((SPEC_DIR / "examples" / f"{name}.json").read_text())
        method, template, params = found[name]
        path, query, body = request_of(example, method, template, params)
        if name == "ListJobByExperiment":  # its experiment name is misspelt: make that one too
            http.put(path.rsplit("/jobs", 1)[0])
        response = http.request(method, path, params=query, json=body)
        allowed = {int(code) for code in example["responses"]}
        assert response.status_code in allowed, f"{name}: {response.status_code} {response.text[:500]}"
        for secret in secrets_in(body):
            assert secret not in response.text, f"{name}: a secret value came back"
        expected = example["responses"].get(str(response.status_code), {}).get("body")
        if expected is not None:
            problems = shape_problems(expected, response.json())
            assert not problems, f"{name}: {problems}"
