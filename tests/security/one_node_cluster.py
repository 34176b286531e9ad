"""What the end-to-end security tests start from: a workspace with experiment "e" and a cluster of
one local node, made through the API as a user makes them."""

from __future__ import annotations

from typing import Any

import httpx


def one_node_cluster(http: httpx.Client, workspace: str, **properties: Any) -> str:
    """The cluster's id (`<workspace>/clusters/one`); `properties` are added to the cluster's."""
    http.put(workspace, json={"location": "local"}).raise_for_status()
    http.put(f"{workspace}/experiments/e", json={}).raise_for_status()
    cluster = f"{workspace}/clusters/one"
    http.put(cluster, json={"properties": {
        "vmSize": "STANDARD_D1_V2", "scaleSettings": {"manual": {"targetNodeCount": 1}},
        "userAccountSettings": {"adminUserName": "u", "adminUserPassword": "secret-Pa55"}, **properties}}
    ).raise_for_status()
    return cluster
