"""Authentication: Functions keys, App Service's principal headers, the local owner token and Entra ID
JWTs, with keys generated here. Every refusal is a 401 that says why and never echoes the token."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.auth.authenticate import Authenticator, JwtRules, Unauthenticated
from shared.auth.principals import FUNCTION_KEY, LOCAL_OWNER

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
ISSUER, AUDIENCE = "https://login.microsoftonline.com/tenant-1/v2.0", "api://batchai"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def claims(**changes: Any) -> dict[str, Any]:
    base = {"iss": ISSUER, "aud": AUDIENCE, "exp": int((NOW + timedelta(hours=1)).timestamp()),
            "nbf": int((NOW - timedelta(minutes=5)).timestamp()), "oid": "oid-alice", "sub": "sub-alice",
            "preferred_username": "alice@example.org"}
    return {k: v for k, v in {**base, **changes}.items() if v is not None}


def token(key: Any = KEY, **changes: Any) -> str:
    return jwt.encode(claims(**changes), key, algorithm="RS256", headers={"kid": "k1"})


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


AUTH = Authenticator(local_token="local-secret", function_keys=["fkey-1", "fkey-2"],
                     jwt_rules=JwtRules((ISSUER,), AUDIENCE, lambda _: KEY.public_key()),
                     owners=frozenset({"oid-root"}))


def refused(headers: dict[str, str], query: dict[str, str] | None = None, auth: Authenticator = AUTH,
            now: datetime = NOW) -> str:
    with pytest.raises(Unauthenticated) as caught:
        auth.authenticate(headers, query or {}, now)
    assert caught.value.status == 401
    message = str(caught.value)
    for secret in headers.values():
        sent = secret.removeprefix("Bearer ").strip()
        assert not sent or sent not in message
    return message


def test_a_valid_jwt_names_its_principal_by_object_id() -> None:
    principal = AUTH.authenticate(bearer(token()), {}, NOW)
    assert (principal.id, principal.name, principal.how, principal.superuser) == (
        "oid-alice", "alice@example.org", "jwt", False)


def test_without_oid_the_subject_names_the_principal() -> None:
    assert AUTH.authenticate(bearer(token(oid=None)), {}, NOW).id == "sub-alice"


def test_a_configured_owner_is_a_superuser() -> None:
    assert AUTH.authenticate(bearer(token(oid="oid-root")), {}, NOW).superuser


@pytest.mark.parametrize(("case", "make", "says"), [
    ("wrong issuer", lambda: token(iss="https://login.microsoftonline.com/evil/v2.0"), "issuer"),
    ("wrong audience", lambda: token(aud="api://someone-else"), "audience"),
    ("expired", lambda: token(exp=int((NOW - timedelta(hours=1)).timestamp())), "expired"),
    ("not valid yet", lambda: token(nbf=int((NOW + timedelta(hours=1)).timestamp())), "not valid yet"),
    ("no expiry", lambda: token(exp=None), "'exp'"),
    ("unsigned", lambda: jwt.encode(claims(), None, algorithm="none"), "not signed with an accepted algorithm"),
    ("signed by another key", lambda: token(OTHER_KEY), "signature does not match"),
    ("tampered", lambda: tampered(token()), "signature does not match"),
    ("not a token", lambda: "not.a.token", "cannot be read"),
])
def test_a_bad_jwt_is_refused_saying_why(case: str, make: Any, says: str) -> None:
    assert says in refused(bearer(make())), case


def tampered(value: str) -> str:
    """The same signature over claims changed to another principal."""
    header, payload, signature = value.split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data["oid"] = "oid-root"
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def test_the_clock_is_the_services_own_with_some_leeway() -> None:
    expires = int((NOW + timedelta(hours=1)).timestamp())
    assert AUTH.authenticate(bearer(token(exp=expires)), {}, NOW + timedelta(hours=1, seconds=30))
    assert "expired" in refused(bearer(token(exp=expires)), now=NOW + timedelta(hours=1, minutes=2))


def test_the_local_token_is_the_owner() -> None:
    assert AUTH.authenticate(bearer("local-secret"), {}, NOW) == LOCAL_OWNER
    assert "not valid" in refused(bearer("local-secreT"))


def test_functions_keys_by_header_or_query() -> None:
    assert AUTH.authenticate({"x-functions-key": "fkey-2"}, {}, NOW) == FUNCTION_KEY
    assert AUTH.authenticate({}, {"code": "fkey-1"}, NOW) == FUNCTION_KEY
    assert "Functions key is not valid" in refused({"X-Functions-Key": "guess"})


def test_nothing_or_another_scheme_is_refused() -> None:
    assert "Authentication is required" in refused({})
    assert "Authentication is required" in refused({"Authorization": "Basic YWxpY2U6cHc="})
    assert "Authentication is required" in refused({"Authorization": "Bearer "})


def test_app_service_headers_count_only_behind_app_service() -> None:
    headers = {"X-MS-CLIENT-PRINCIPAL-ID": "oid-bob", "X-MS-CLIENT-PRINCIPAL-NAME": "bob@example.org"}
    assert "Authentication is required" in refused(headers)  # anyone could send them to an app not behind it
    behind = Authenticator(app_service=True)
    principal = behind.authenticate(headers, {}, NOW)
    assert (principal.id, principal.name, principal.how) == ("oid-bob", "bob@example.org", "appservice")


def test_without_jwt_rules_a_jwt_is_just_an_unknown_token() -> None:
    assert "not valid" in refused(bearer(token()), auth=Authenticator(local_token="x"))
