"""Shared access signatures, as Service Bus checks them: the local host's door lets in a client
whose connection string holds the door's key.

A Service Bus client signs, for each entity it uses, a token that it puts on the `$cbs` node:
    SharedAccessSignature sr=<url-encoded resource URI>&sig=<url-encoded signature>&se=<expiry>&skn=<key name>
where the signature is base64(HMAC-SHA256(key as UTF-8, "<url-encoded resource URI>\\n<expiry>")) and
expiry is in seconds since the epoch. A token grants its resource and everything under it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from urllib.parse import quote_plus, unquote_plus

from shared.localhost.amqp.paths import covers, entity_path

KEY_NAME = "local"
_SCHEME = "SharedAccessSignature "


def connection_string(host: str, port: int, key: str, key_name: str = KEY_NAME) -> str:
    """What a Service Bus client is given: plain AMQP to host:port (the emulator flag turns TLS off)."""
    return (f"Endpoint=sb://{host}:{port};SharedAccessKeyName={key_name};SharedAccessKey={key};"
            "UseDevelopmentEmulator=true;")


def sign(resource: str, expiry: int, key: str, key_name: str = KEY_NAME) -> str:
    """A token for resource until expiry, as the SDK makes one (the tests use it for odd tokens)."""
    encoded = quote_plus(resource)
    return (f"{_SCHEME}sr={encoded}&sig={quote_plus(_signature(encoded, str(expiry), key))}"
            f"&se={expiry}&skn={quote_plus(key_name)}")


def _signature(encoded_resource: str, expiry: str, key: str) -> str:
    digest = hmac.new(key.encode(), f"{encoded_resource}\n{expiry}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


class SasAuthorizer:
    """`authorize(token, audience)` for the AMQP server: a valid, unexpired token of this key that
    covers the audience."""

    def __init__(self, key: str, key_name: str = KEY_NAME, clock: Callable[[], float] = time.time) -> None:
        self._key = key
        self._key_name = key_name
        self._clock = clock

    def __call__(self, token: str, audience: str) -> bool:
        if not token.startswith(_SCHEME):
            return False
        fields: dict[str, str] = {}
        for pair in token[len(_SCHEME):].split("&"):
            name, sep, value = pair.partition("=")
            if not sep or name in fields:
                return False
            fields[name] = value  # still url-encoded: the signature covers sr in that form
        raw_resource, signature, expiry = fields.get("sr"), fields.get("sig"), fields.get("se")
        if raw_resource is None or signature is None or expiry is None or not (
                expiry.isascii() and expiry.isdigit() and len(expiry) <= 18):
            return False
        if unquote_plus(fields.get("skn", "")) != self._key_name or int(expiry) <= self._clock():
            return False
        resource = unquote_plus(raw_resource)
        given = unquote_plus(signature)
        # Clients sign the resource as they encoded it; the SDK encodes as quote_plus does.
        signed = any(hmac.compare_digest(_signature(encoded, expiry, self._key), given)
                     for encoded in {raw_resource, quote_plus(resource)})
        return signed and covers(entity_path(resource), entity_path(audience))
