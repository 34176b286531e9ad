"""Who may do what, end to end: the real local host checks Entra ID style JWTs against a key set
served here (keys generated in the test), and each role — per workspace and per subscription —
against each class of operation. 401 for who is not known, 403 for who may not."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.localhost.process import LocalHostProcess
from tests.e2e.hosts import running_host

ISSUER, AUDIENCE = "https://issuer.test/tenant-1/v2.0", "api://batchai-test"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
SUB = "/subscriptions/00000000-0000-0000-0000-000000000000"
WS = f"{SUB}/resourceGroups/rg/providers/Microsoft.BatchAI/workspaces/ws"
Q = {"api-version": "2018-05-01"}


class KeySet:
    """The tenant's published keys (JWKS) on 127.0.0.1."""

    def __init__(self) -> None:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key())) | {"kid": "k1", "use": "sig"}
        body = json.dumps({"keys": [jwk]}).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/keys"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def token_of(oid: str, **changes: Any) -> dict[str, str]:
    now = datetime.now(UTC)
    claims = {"iss": ISSUER, "aud": AUDIENCE, "oid": oid, "preferred_username": f"{oid}@example.org",
              "exp": int((now + timedelta(hours=1)).timestamp()), **changes}
    return {"Authorization": "Bearer " + jwt.encode(claims, KEY, algorithm="RS256", headers={"kid": "k1"})}


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHostProcess]:
    keys = KeySet()
    env = {"BATCHAI_AUTH_JWKS_URL": keys.url, "BATCHAI_AUTH_ISSUER": ISSUER, "BATCHAI_AUTH_AUDIENCE": AUDIENCE}
    try:
        with running_host(tmp_path_factory.mktemp("access") / "state", env) as host:
            yield host
    finally:
        keys.stop()


@pytest.fixture(scope="module")
def owner(host: LocalHostProcess) -> Iterator[httpx.Client]:
    """The local owner token: makes the workspace and hands out the roles."""
    with httpx.Client(base_url=host.endpoint, params=Q, headers=host.headers, timeout=30) as http:
        for path, body in ((WS, {"location": "local"}),
                           (WS.replace("/workspaces/ws", "/workspaces/hidden"), {"location": "l"}),
                           (f"{WS}/clusters/c", {"properties": {"vmSize": "STANDARD_D1",
                                                                "scaleSettings": {"manual": {"targetNodeCount": 0}},
                                                                "userAccountSettings": {"adminUserName": "u"}}}),
                           (f"{WS}/experiments/exp", None),
                           (f"{WS}/experiments/exp/jobs/j", {"properties": {
                               "cluster": {"id": f"{WS}/clusters/c"}, "nodeCount": 1, "stdOutErrPathPrefix": "/tmp",
                               "customToolkitSettings": {"commandLine": "true"}}}),
                           (f"{WS}/roleAssignments/alice", {"properties": {"principalId": "alice", "role": "reader"}}),
                           (f"{WS}/roleAssignments/bob", {"properties": {"principalId": "bob", "role": "contributor"}}),
                           (f"{WS}/roleAssignments/carol", {"properties": {"principalId": "carol", "role": "owner"}}),
                           (f"{SUB}/providers/Microsoft.BatchAI/roleAssignments/erin",
                            {"properties": {"principalId": "erin", "role": "reader", "principalName": "Erin"}})):
            answer = http.put(path, json=body)
            assert answer.status_code == 200, (path, answer.text)
        yield http


def attempt(host: LocalHostProcess, who: str, kind: str) -> int:
    """The status of one operation of each class, as `who`."""
    calls = {
        "anyone": ("GET", "/providers/Microsoft.BatchAI/operations", None),
        "read": ("GET", f"{WS}/clusters/c", None),
        "read by POST": ("POST", f"{WS}/experiments/exp/jobs/j/listOutputFiles", None),
        "write": ("PUT", f"{WS}/experiments/by-{who}", None),
        "grant": ("PUT", f"{WS}/roleAssignments/from-{who}", {"properties": {"principalId": "zed", "role": "reader"}}),
        "grant on the subscription": ("PUT", f"{SUB}/providers/Microsoft.BatchAI/roleAssignments/from-{who}",
                                      {"properties": {"principalId": "zed", "role": "reader"}}),
    }
    method, path, body = calls[kind]
    params = {**Q, "outputdirectoryid": "stdouterr"} if "listOutputFiles" in path else Q
    answer = httpx.request(method, host.endpoint + path, params=params, json=body, headers=token_of(who), timeout=30)
    assert answer.status_code < 500, answer.text
    if answer.status_code == 403:
        error = answer.json()["error"]
        assert error["code"] == "AuthorizationFailed" and f"({who})" in error["message"], error
    return answer.status_code


ALLOWED = {  # who: the classes of operation allowed ("anyone" always is)
    "dave": set(),  # no role anywhere
    "alice": {"read", "read by POST"},  # reader of the workspace
    "erin": {"read", "read by POST"},  # reader of the subscription
    "bob": {"read", "read by POST", "write"},  # contributor of the workspace
    "carol": {"read", "read by POST", "write", "grant"},  # owner of the workspace
}


@pytest.mark.parametrize("who", list(ALLOWED))
@pytest.mark.parametrize("kind", ["anyone", "read", "read by POST", "write", "grant", "grant on the subscription"])
def test_each_role_against_each_class_of_operation(host: LocalHostProcess, owner: httpx.Client, who: str,
                                                   kind: str) -> None:
    status = attempt(host, who, kind)
    allowed = kind == "anyone" or kind in ALLOWED[who]
    assert (status != 403) == allowed, (who, kind, status)
    if allowed:
        assert status == 200


def test_nobody_unknown_gets_in(host: LocalHostProcess, owner: httpx.Client) -> None:
    for headers, says in (({}, "Authentication is required"),
                          ({"Authorization": "Bearer guessed"}, "not valid"),
                          (token_of("alice", exp=int((datetime.now(UTC) - timedelta(hours=2)).timestamp())), "expired"),
                          (token_of("alice", aud="api://other"), "audience")):
        answer = httpx.get(host.endpoint + f"{WS}/clusters/c", params=Q, headers=headers, timeout=30)
        assert answer.status_code == 401 and says in answer.json()["error"]["message"], answer.text
        assert answer.headers["www-authenticate"].startswith("Bearer")
    assert httpx.get(host.endpoint + "/health", timeout=30).status_code == 200  # the only open door


def test_a_workspace_list_shows_a_workspace_reader_only_their_workspaces(host: LocalHostProcess,
                                                                         owner: httpx.Client) -> None:
    def names(who: str) -> list[str]:
        answer = httpx.get(f"{host.endpoint}{SUB}/providers/Microsoft.BatchAI/workspaces", params=Q,
                           headers=token_of(who), timeout=30)
        assert answer.status_code == 200, answer.text
        return sorted(w["name"] for w in answer.json()["value"])

    assert names("alice") == ["ws"]
    assert names("dave") == []
    assert names("erin") == ["hidden", "ws"]  # a subscription reader sees them all


def test_role_assignments_are_listed_and_revoked(host: LocalHostProcess, owner: httpx.Client) -> None:
    listed = owner.get(f"{WS}/roleAssignments").json()["value"]
    assert {(a["name"], a["properties"]["role"]) for a in listed} >= {("alice", "reader"), ("bob", "contributor")}
    assert all(a["properties"]["scope"].endswith("/workspaces/ws") for a in listed)
    subscription = owner.get(f"{SUB}/providers/Microsoft.BatchAI/roleAssignments").json()["value"]
    assert [a["properties"]["principalName"] for a in subscription if a["name"] == "erin"] == ["Erin"]
    owner.put(f"{WS}/roleAssignments/temp", json={"properties": {"principalId": "frank", "role": "contributor"}})
    assert attempt(host, "frank", "write") == 200
    assert owner.delete(f"{WS}/roleAssignments/temp").status_code == 200
    assert attempt(host, "frank", "write") == 403
    refused = owner.put(f"{WS}/roleAssignments/bad", json={"properties": {"principalId": "x", "role": "admin"}})
    assert refused.status_code == 400 and "role" in refused.json()["error"]["target"]
