"""Who is calling: every request but /health, the agents' own routes and signed download URLs must
say, and a request that does not is a 401.

Accepted, in this order: a Functions key (`x-functions-key` header or `code` query), App Service
authentication's principal headers (only when the app sits behind it: `BATCHAI_AUTH_APP_SERVICE`,
since anyone can send those headers to an app that does not), and a bearer token — the local host's
owner token, or an Entra ID JWT checked for signature (the tenant's keys), issuer, audience and
expiry. The clock is the service's own (injected), not PyJWT's.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import jwt

from shared import errors
from shared.auth.principals import FUNCTION_KEY, LOCAL_OWNER, Principal

LEEWAY_SECONDS = 60  # clock skew between the token's issuer and this service
ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256"]


class Unauthenticated(errors.ApiError):
    status, code = 401, "AuthenticationFailed"


@dataclass(frozen=True)
class JwtRules:
    """What a bearer JWT must satisfy; `key_for` finds the key that signed a token (its `kid`)."""

    issuers: tuple[str, ...]
    audience: str
    key_for: Callable[[str], Any]


@dataclass
class Authenticator:
    local_token: str | None = None
    function_keys: Sequence[str] = ()
    app_service: bool = False
    jwt_rules: JwtRules | None = None
    owners: frozenset[str] = field(default_factory=frozenset)

    def authenticate(self, headers: Mapping[str, str], query: Mapping[str, str], now: datetime) -> Principal:
        """The caller, or a 401 that says what was wrong (never echoing what was sent)."""
        lowered = {k.lower(): v for k, v in headers.items()}
        key = lowered.get("x-functions-key") or query.get("code")
        if key:
            if any(hmac.compare_digest(key, k) for k in self.function_keys):
                return FUNCTION_KEY
            raise Unauthenticated("The Functions key is not valid.", target="x-functions-key")
        if self.app_service and lowered.get("x-ms-client-principal-id"):
            return self._owned(Principal(lowered["x-ms-client-principal-id"],
                                         lowered.get("x-ms-client-principal-name", ""), "appservice"))
        scheme, _, token = lowered.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("Authentication is required: send 'Authorization: Bearer <token>'.",
                                  target="Authorization")
        if self.local_token and hmac.compare_digest(token.encode(), self.local_token.encode()):
            return LOCAL_OWNER
        if self.jwt_rules is None:
            raise Unauthenticated("The bearer token is not valid.", target="Authorization")
        return self._owned(self._from_jwt(token, self.jwt_rules, now))

    def _owned(self, principal: Principal) -> Principal:
        if principal.id in self.owners:
            return Principal(principal.id, principal.name, principal.how, superuser=True)
        return principal

    @staticmethod
    def _from_jwt(token: str, rules: JwtRules, now: datetime) -> Principal:
        try:
            claims = jwt.decode(token, rules.key_for(token), algorithms=ALGORITHMS, audience=rules.audience,
                                options={"require": ["exp", "iss", "aud"], "verify_exp": False,
                                         "verify_nbf": False, "verify_iat": False, "verify_iss": False})
        except jwt.InvalidAudienceError:
            raise Unauthenticated("The token is not for this service (audience).", target="Authorization") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthenticated(f"The token has no '{exc.claim}' claim.", target="Authorization") from None
        except jwt.PyJWTError as exc:  # bad signature, unknown key, malformed, unsigned ("alg": "none")
            raise Unauthenticated(f"The token is not valid: {_reason(exc)}.", target="Authorization") from None
        if claims["iss"] not in rules.issuers:
            raise Unauthenticated("The token was issued by someone this service does not trust (issuer).",
                                  target="Authorization")
        moment = now.timestamp()
        if float(claims["exp"]) + LEEWAY_SECONDS < moment:
            raise Unauthenticated("The token expired.", target="Authorization")
        if "nbf" in claims and float(claims["nbf"]) - LEEWAY_SECONDS > moment:
            raise Unauthenticated("The token is not valid yet (nbf).", target="Authorization")
        subject = str(claims.get("oid") or claims.get("sub") or "")
        if not subject:
            raise Unauthenticated("The token names no principal (oid or sub).", target="Authorization")
        name = str(claims.get("preferred_username") or claims.get("name") or claims.get("appid") or subject)
        return Principal(subject, name, "jwt")


def _reason(exc: Exception) -> str:
    kind = type(exc).__name__
    return {"InvalidSignatureError": "its signature does not match", "DecodeError": "it cannot be read",
            "InvalidAlgorithmError": "it is not signed with an accepted algorithm",
            "PyJWKClientError": "no key of the tenant signed it"}.get(kind, kind)


def entra_rules(tenant: str, audience: str, issuer: str = "", jwks_url: str = "") -> JwtRules:
    """Entra ID's defaults for a tenant: v2.0 and v1 issuers, the tenant's published keys (fetched on
    first use and cached by PyJWT's key client)."""
    issuers = (issuer,) if issuer else (f"https://login.microsoftonline.com/{tenant}/v2.0",
                                        f"https://sts.windows.net/{tenant}/")
    client = jwt.PyJWKClient(jwks_url or f"https://login.microsoftonline.com/{tenant}/discovery/v2.0/keys",
                             cache_keys=True, timeout=10)
    return JwtRules(issuers, audience, lambda token: client.get_signing_key_from_jwt(token).key)
