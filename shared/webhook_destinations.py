"""Where webhook requests may go (invariant 8: no webhook to an address the operator did not allow).

A user gives a URL; the service then sends requests there from inside its own network. So:
- the URL must be plain and unambiguous (`url_problem`), else the API refuses it as a field error;
- every address its host resolves to is checked (`Policy.refusal`): link-local addresses and cloud
  metadata endpoints always refused; loopback, private, shared (CGNAT), unspecified, multicast and
  reserved ranges refused unless the operator allows them (BATCHAI_WEBHOOK_ALLOW_LOOPBACK,
  BATCHAI_WEBHOOK_ALLOWED_NETWORKS);
- the check runs at creation and before every delivery (a name may be rebound between them), and the
  connection goes to the address that was checked (`send`), never to a second resolution of the name.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

import httpx

from shared.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# (host, port) -> the addresses it resolves to; the system's resolver unless the composition gives another.
Resolver = Callable[[str, int], list[str]]

# Names and addresses of cloud instance metadata and platform endpoints: never a webhook, whatever is allowed.
METADATA_NAMES = frozenset({
    "metadata", "metadata.google.internal", "metadata.goog", "metadata.azure.com", "metadata.azure.internal",
    "instance-data", "instance-data.ec2.internal", "metadata.tencentyun.com", "metadata.platformequinix.com"})
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "169.254.170.2", "168.63.129.16", "100.100.100.200", "fd00:ec2::254", "fd00:ec2::23"))
METADATA_REFUSAL, LINK_LOCAL_REFUSAL, LOOPBACK_REFUSAL = "a cloud metadata address", "a link-local address", \
    "a loopback address"
NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_NUMERIC_LABEL = re.compile(r"(?:[0-9]+|0x[0-9a-f]*)")


class DestinationRefused(Exception):
    """The endpoint may not be sent to: `permanent` when the policy refuses it, not when its name
    could not be resolved (that may pass)."""

    def __init__(self, reason: str, *, permanent: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


@dataclass(frozen=True)
class Destination:
    """A checked endpoint: its URL and the addresses requests to it connect to (tried in order)."""

    url: str
    addresses: tuple[IPAddress, ...]


def url_problem(url: str) -> str | None:
    """Why a URL is not a plain absolute http(s) URL the service will send to, or None.

    Refused: anything but printable ASCII (tab, CR/LF, spaces, non-ASCII; percent-encode and use
    punycode), backslashes, other schemes, user info, ports outside 1..65535, zone ids, host labels
    over 63 characters or names over 253, and numbers that only some parsers read as IPv4 addresses
    (`2852039166`, `0xa9.0xfe.0xa9.0xfe`, `0251.0376.0251.0376`)."""
    if any(not 0x21 <= ord(c) <= 0x7E for c in url):
        return "it may hold only printable ASCII characters (no spaces, tabs or line breaks; percent-encode the rest)"
    if "\\" in url:
        return "it may not hold a backslash"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # a broken [IPv6] host, or a port that is no number from 0 to 65535
        return "its host or port cannot be read (a port is a number from 1 to 65535)"
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return "give an absolute http:// or https:// URL"
    if "@" in parts.netloc:
        return "credentials in the URL are not accepted; use the subscription's secret"
    if port == 0:
        return "its port must be a number from 1 to 65535"
    host = parts.hostname or ""
    return _literal_ipv6_problem(host) if parts.netloc.startswith("[") else _host_name_problem(host)


def _literal_ipv6_problem(host: str) -> str | None:
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        return "its host is not a valid IPv6 address"
    return "zone ids are not accepted in its host" if "%" in host else None


def _host_name_problem(host: str) -> str | None:
    name = host[:-1] if host.endswith(".") else host  # one final dot: the fully qualified form
    if not name:
        return "give an absolute http:// or https:// URL with a host"
    labels = name.split(".")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        try:
            ipaddress.IPv4Address(name)
        except ValueError:
            return "write an IPv4 address as four decimal numbers (like 192.0.2.10)"
        return None
    if len(name) > 253:
        return "its host name is longer than 253 characters"
    if not all(_LABEL.fullmatch(label) for label in labels):
        return ("its host name must be labels of 1 to 63 letters, digits, '-' or '_' between dots "
                "(international names in punycode)")
    return None


@dataclass(frozen=True)
class Policy:
    """Which addresses may receive webhooks, from the settings."""

    allow_loopback: bool
    allowed_networks: tuple[IPNetwork, ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        allow_loopback = settings.webhook_allow_loopback
        if allow_loopback is None:  # on one machine a user's own receiver is the usual case
            allow_loopback = settings.pool == "local"
        return cls(allow_loopback, tuple(settings.webhook_allowed_networks))

    def refusal(self, address: IPAddress) -> str | None:
        """Why the address may not receive webhooks, or None when it may."""
        address = _embedded_ipv4(address)
        if address in METADATA_ADDRESSES:
            return METADATA_REFUSAL
        if address.is_link_local:
            return LINK_LOCAL_REFUSAL
        if any(address in network for network in self.allowed_networks):
            return None
        if address.is_loopback:
            return None if self.allow_loopback else LOOPBACK_REFUSAL
        if address.is_multicast:
            return "a multicast address"
        if address.is_unspecified or address.is_reserved:
            return "an unspecified or reserved address"
        if not address.is_global:
            return "a private or otherwise non-public address"
        return None


def _embedded_ipv4(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 one carries (v4-mapped, 6to4, NAT64), judged as itself."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
        if address in NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def system_resolver(host: str, port: int) -> list[str]:
    """Every address the host name resolves to (for TCP)."""
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


class WebhookDestinations:
    """Checks webhook endpoints against the policy and sends requests to the checked address; holds
    the bound on validation handshakes under way at once, so that they never take all API workers."""

    def __init__(self, settings: Settings, resolver: Resolver = system_resolver) -> None:
        self.settings = settings  # read at each check: the policy follows the settings it was given
        self.resolver = resolver
        self._handshakes = threading.BoundedSemaphore(settings.webhook_handshake_concurrency)

    def check(self, url: str) -> Destination:
        """The destination to connect to, after checking the URL and every address its host resolves to."""
        problem = url_problem(url)
        if problem is not None:
            raise DestinationRefused(f"The endpoint URL is not accepted: {problem}.")
        parts = urlsplit(url)
        host = (parts.hostname or "").rstrip(".")
        if host in METADATA_NAMES:
            raise DestinationRefused("The endpoint names a cloud metadata service, which never receives webhooks.")
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
        addresses = self._addresses(host, port)
        policy = Policy.from_settings(self.settings)
        for address in addresses:
            why = policy.refusal(address)
            if why is not None:
                raise DestinationRefused(f"The endpoint is at {why}, to which the service does not send webhooks"
                                         f"{_loosen_hint(why)}.")
        return Destination(url, tuple(addresses))

    def _addresses(self, host: str, port: int) -> list[IPAddress]:
        try:
            return [ipaddress.ip_address(host)]
        except ValueError:
            pass
        try:
            found = [ipaddress.ip_address(a.split("%")[0]) for a in self.resolver(host, port)]
        except (OSError, UnicodeError, ValueError):
            found = []
        if not found:
            raise DestinationRefused("The endpoint's host name could not be resolved.", permanent=False)
        return found

    @contextmanager
    def handshake_slot(self) -> Iterator[bool]:
        """True while this caller holds one of the handshake slots; False (at once) when all are taken."""
        acquired = self._handshakes.acquire(blocking=False)
        try:
            yield acquired
        finally:
            if acquired:
                self._handshakes.release()

    def send(self, destination: Destination, method: Literal["OPTIONS", "POST"], headers: dict[str, str],
             content: bytes | None = None) -> httpx.Response:
        """One request to the checked addresses, the next one tried only when a connection could not be
        made (Host header and TLS name stay the URL's host); no redirects, no proxies from the
        environment, and the answer's body is not read."""
        url = httpx.URL(destination.url)
        extensions = {"sni_hostname": url.host} if url.scheme == "https" else {}
        headers = {**headers, "Host": url.netloc.decode("ascii")}
        with httpx.Client(timeout=self.settings.event_delivery_timeout_seconds, follow_redirects=False,
                          trust_env=False) as client:

            def send_to(address: IPAddress) -> httpx.Response:
                request = client.build_request(method, url.copy_with(host=str(address)), content=content,
                                               headers=headers, extensions=extensions)
                answer = client.send(request, stream=True)
                answer.close()
                return answer

            for address in destination.addresses[:-1]:
                try:
                    return send_to(address)
                except httpx.ConnectError:
                    continue
            return send_to(destination.addresses[-1])


def _loosen_hint(why: str) -> str:
    """Which setting would let the address through (none for link-local and metadata addresses)."""
    if why in (METADATA_REFUSAL, LINK_LOCAL_REFUSAL):
        return ""
    if why == LOOPBACK_REFUSAL:
        return " unless the operator allows it (BATCHAI_WEBHOOK_ALLOW_LOOPBACK)"
    return " unless the operator allows its network (BATCHAI_WEBHOOK_ALLOWED_NETWORKS)"
