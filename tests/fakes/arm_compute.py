"""A stand-in for ARM's Microsoft.Compute virtual machine scale set endpoints, for tests.

Plain HTTP on 127.0.0.1, served from a thread of the test process (nothing to stop but the thread).
It plays the calls the VMSS pool adapter makes and checks their shapes as the Compute REST API
would (api-version, required fields, Spot settings, base64 custom data...), answering 400 with an
ARM error otherwise. Scale sets and their instances live in memory; instances are "Creating" on
their first read and "Succeeded" afterwards. Mutations answer as ARM does for long-running
operations (201/200/202 + Azure-AsyncOperation, polled until "Succeeded"); their effects that take
time in Azure (instances vanishing, a scale set going away) happen when the operation completes:
when it is polled, or, as time passes in Azure while a caller that does not wait goes on, at the next
request that is not a poll (unless ``hold_operations`` is set, as for a create that takes minutes).
A subnet in another subscription is refused with 403 LinkedAuthorizationFailed, as ARM does when the
caller may not join it. The NIC listing is the Network RP's (azure-mgmt-network sends it with
api-version 2018-10-01). Every request is recorded for assertions.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

COMPUTE_API_VERSION = "2026-04-01"  # what azure-mgmt-compute 39.0.0 sends
NETWORK_API_VERSION = "2018-10-01"  # the Network RP's scale set NIC listing, as the adapter calls it
_MAX_CUSTOM_DATA = 87380  # base64 characters (64 KiB decoded), the Compute API's limit

_PREFIX = r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.Compute"
_SCALE_SET = re.compile(_PREFIX + r"/virtualMachineScaleSets/(?P<name>[^/]+)(?P<rest>/.*)?$", re.IGNORECASE)
_OPERATION = re.compile(r"^/subscriptions/[^/]+/providers/Microsoft\.Compute/locations/[^/]+"
                        r"/(?P<kind>operations|operationResults)/(?P<op>[^/]+)$", re.IGNORECASE)


class ArmError(Exception):
    """An ARM error answer: {"error": {"code", "message", "target"}}."""

    def __init__(self, status: int, code: str, message: str, target: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.target = status, code, message, target


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class Instance:
    instance_id: str
    state: str = "Creating"
    message: str = ""


@dataclass
class ScaleSet:
    name: str
    body: dict[str, Any]  # as PUT, without write-only secrets
    state: str = "Creating"
    instances: dict[str, Instance] = field(default_factory=dict)
    next_instance: itertools.count[int] = field(default_factory=itertools.count)


@dataclass
class _Operation:
    polls_left: int
    on_done: Callable[[], None]
    done: bool = False


def _require(condition: bool, target: str, message: str) -> None:
    if not condition:
        raise ArmError(400, "InvalidParameter", message, target)


def _dig(data: Any, path: str) -> Any:
    for key in path.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def validate_scale_set(body: Any) -> None:
    """The checks ARM makes on a scale set PUT that matter to the adapter."""
    _require(isinstance(body, dict), "body", "The request body must be a JSON object.")
    _require(isinstance(body.get("location"), str) and bool(body["location"]), "location",
             "Required parameter 'location' is missing (null).")
    sku = body.get("sku") or {}
    _require(isinstance(sku.get("name"), str) and bool(sku["name"]), "sku.name", "Required parameter 'sku.name' is missing.")
    _require(isinstance(sku.get("capacity"), int) and sku["capacity"] >= 0, "sku.capacity",
             "'sku.capacity' must be a non-negative integer.")
    props = body.get("properties") or {}
    mode = _dig(props, "upgradePolicy.mode")
    _require(mode in (None, "Automatic", "Manual", "Rolling"), "properties.upgradePolicy.mode",
             f"Upgrade mode {mode!r} is not valid.")
    profile = props.get("virtualMachineProfile")
    _require(isinstance(profile, dict), "properties.virtualMachineProfile", "Required parameter 'virtualMachineProfile' is missing.")
    base = "properties.virtualMachineProfile"
    # osProfile
    os_profile = profile.get("osProfile") or {}
    prefix = os_profile.get("computerNamePrefix")
    _require(isinstance(prefix, str) and 1 <= len(prefix) <= 58 and not prefix.startswith("-"),
             f"{base}.osProfile.computerNamePrefix", "Required parameter 'computerNamePrefix' is missing or invalid.")
    _require(isinstance(os_profile.get("adminUsername"), str) and bool(os_profile["adminUsername"]),
             f"{base}.osProfile.adminUsername", "Required parameter 'adminUsername' is missing (null).")
    keys = _dig(os_profile, "linuxConfiguration.ssh.publicKeys") or []
    _require(all(isinstance(k, dict) and k.get("keyData") and k.get("path") for k in keys),
             f"{base}.osProfile.linuxConfiguration.ssh.publicKeys", "Each SSH public key needs 'path' and 'keyData'.")
    if _dig(os_profile, "linuxConfiguration.disablePasswordAuthentication"):
        _require(bool(keys), f"{base}.osProfile.linuxConfiguration.ssh.publicKeys",
                 "Password authentication is disabled but no SSH public key was given.")
    else:
        _require(bool(os_profile.get("adminPassword")), f"{base}.osProfile.adminPassword",
                 "Required parameter 'adminPassword' is missing (null).")
    custom_data = os_profile.get("customData")
    if custom_data is not None:
        try:
            base64.b64decode(custom_data, validate=True)
            valid = isinstance(custom_data, str) and len(custom_data) <= _MAX_CUSTOM_DATA
        except (binascii.Error, TypeError, ValueError):
            valid = False
        _require(valid, f"{base}.osProfile.customData", "Custom data in OSProfile must be in Base64 encoding and "
                 f"with a maximum length of {_MAX_CUSTOM_DATA} characters.")
    # storageProfile.imageReference
    image = _dig(profile, "storageProfile.imageReference")
    _require(isinstance(image, dict), f"{base}.storageProfile.imageReference", "Required parameter 'imageReference' is missing.")
    if not image.get("id"):
        for part in ("publisher", "offer", "sku", "version"):
            _require(bool(image.get(part)), f"{base}.storageProfile.imageReference.{part}",
                     f"Required parameter 'imageReference.{part}' is missing (null).")
    # networkProfile
    nics = _dig(profile, "networkProfile.networkInterfaceConfigurations")
    _require(isinstance(nics, list) and bool(nics), f"{base}.networkProfile.networkInterfaceConfigurations",
             "At least one network interface configuration is required.")
    for i, nic in enumerate(nics):
        target = f"{base}.networkProfile.networkInterfaceConfigurations[{i}]"
        _require(bool(nic.get("name")), f"{target}.name", "Required parameter 'name' is missing.")
        ips = _dig(nic, "properties.ipConfigurations")
        _require(isinstance(ips, list) and bool(ips), f"{target}.properties.ipConfigurations",
                 "At least one IP configuration is required.")
        for j, ip in enumerate(ips):
            _require(bool(ip.get("name")), f"{target}.properties.ipConfigurations[{j}].name", "Required parameter 'name' is missing.")
            _require(bool(_dig(ip, "properties.subnet.id")), f"{target}.properties.ipConfigurations[{j}].properties.subnet.id",
                     "Required parameter 'subnet.id' is missing.")
    # priority, eviction, billing
    priority = profile.get("priority", "Regular")
    _require(priority in ("Regular", "Low", "Spot"), f"{base}.priority", f"Priority {priority!r} is not valid.")
    eviction = profile.get("evictionPolicy")
    max_price = _dig(profile, "billingProfile.maxPrice")
    if priority in ("Spot", "Low"):
        _require(eviction in ("Deallocate", "Delete"), f"{base}.evictionPolicy",
                 "Spot scale sets need evictionPolicy 'Deallocate' or 'Delete'.")
        _require(max_price is None or max_price == -1 or (isinstance(max_price, (int, float)) and max_price > 0),
                 f"{base}.billingProfile.maxPrice", "maxPrice must be -1 or greater than 0.")
    else:
        _require(eviction is None, f"{base}.evictionPolicy", "evictionPolicy can only be set for Spot VMs.")
        _require(max_price is None, f"{base}.billingProfile.maxPrice", "billingProfile can only be set for Spot VMs.")


class FakeArmCompute:
    """The fake ARM endpoint; use as a context manager, then point the SDK at ``base_url``."""

    def __init__(self, subscription_id: str = "00000000-0000-0000-0000-000000000000", polls_per_operation: int = 1) -> None:
        self.subscription_id = subscription_id
        self.polls_per_operation = polls_per_operation
        self.hold_operations = False
        self.requests: list[RecordedRequest] = []
        self.scale_sets: dict[tuple[str, str], ScaleSet] = {}  # (resource group, lower-cased name)
        self._operations: dict[str, _Operation] = {}
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle

    def __enter__(self) -> FakeArmCompute:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # One write per answer, sent at once: else delayed ACKs cost ~40 ms a request.
            wbufsize = -1
            disable_nagle_algorithm = True

            def do_GET(self) -> None: fake._handle(self)  # noqa: E704
            def do_PUT(self) -> None: fake._handle(self)  # noqa: E704
            def do_PATCH(self) -> None: fake._handle(self)  # noqa: E704
            def do_POST(self) -> None: fake._handle(self)  # noqa: E704
            def do_DELETE(self) -> None: fake._handle(self)  # noqa: E704

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-arm-compute", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def base_url(self) -> str:
        assert self._server is not None, "not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # ------------------------------------------------------------ test helpers

    def calls(self, method: str, suffix: str = "") -> list[RecordedRequest]:
        """Recorded requests of one method whose path ends with ``suffix`` (case-insensitive)."""
        with self._lock:
            return [r for r in self.requests if r.method == method and r.path.lower().endswith(suffix.lower())]

    def scale_set(self, resource_group: str, name: str) -> ScaleSet | None:
        with self._lock:
            return self.scale_sets.get((resource_group.lower(), name.lower()))

    def fail_instance(self, resource_group: str, name: str, instance_id: str, message: str) -> None:
        """Make an instance's provisioning fail, as an allocation or extension failure would."""
        with self._lock:
            scale_set = self.scale_set(resource_group, name)
            assert scale_set is not None
            instance = scale_set.instances[instance_id]
            instance.state, instance.message = "Failed", message

    # ------------------------------------------------------------ HTTP

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlsplit(handler.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        with self._lock:
            self.requests.append(RecordedRequest(handler.command, url.path, query, dict(handler.headers.items()), body))
        try:
            if not (handler.headers.get("Authorization") or "").startswith("Bearer "):
                raise ArmError(401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.")
            if raw and not isinstance(body, (dict, list)):
                raise ArmError(400, "InvalidRequestContent", "The request content was invalid and could not be deserialized.")
            if raw and not (handler.headers.get("Content-Type") or "").startswith("application/json"):
                raise ArmError(415, "UnsupportedMediaType", "The content media type is not supported. Use 'application/json'.")
            with self._lock:
                status, headers, payload = self._route(handler.command, url.path, query, body)
        except ArmError as err:
            error: dict[str, Any] = {"code": err.code, "message": err.message}
            if err.target:
                error["target"] = err.target
            status, headers, payload = err.status, {}, {"error": error}
        data = b"" if payload is None else json.dumps(payload).encode()
        handler.send_response(status)
        for key, value in headers.items():
            handler.send_header(key, value)
        if payload is not None:
            handler.send_header("Content-Type", "application/json; charset=utf-8")
        handler.send_header("Content-Length", str(len(data)))
        handler.send_header("x-ms-request-id", str(uuid.uuid4()))
        handler.end_headers()
        handler.wfile.write(data)

    def complete_operations(self) -> None:
        """Every started operation finishes (time passes in Azure)."""
        with self._lock:
            for op in self._operations.values():
                if not op.done:
                    op.on_done()
                    op.done = True

    def _route(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        if match := _OPERATION.match(path):
            return self._operation(match["kind"].lower(), match["op"])
        if not self.hold_operations:
            self.complete_operations()
        match = _SCALE_SET.match(path)
        if not match:
            raise ArmError(404, "InvalidResourceType", f"The resource type could not be found for {path}.")
        if match["sub"] != self.subscription_id:
            raise ArmError(404, "SubscriptionNotFound", f"The subscription '{match['sub']}' could not be found.")
        rg, name, rest = match["rg"], match["name"], (match["rest"] or "").lower()
        expected = NETWORK_API_VERSION if rest == "/networkinterfaces" else COMPUTE_API_VERSION
        if query.get("api-version") != expected:
            raise ArmError(400, "InvalidApiVersionParameter" if "api-version" in query else "MissingApiVersionParameter",
                           f"The api-version '{query.get('api-version')}' is invalid; expected '{expected}'.")
        routes: dict[tuple[str, str], Callable[[], tuple[int, dict[str, str], Any]]] = {
            ("GET", ""): lambda: self._get(rg, name),
            ("PUT", ""): lambda: self._put(rg, name, body),
            ("PATCH", ""): lambda: self._patch(rg, name, body),
            ("DELETE", ""): lambda: self._delete(rg, name),
            ("POST", "/delete"): lambda: self._delete_instances(rg, name, body),
            ("GET", "/virtualmachines"): lambda: self._list_instances(rg, name, query),
            ("GET", "/networkinterfaces"): lambda: self._list_nics(rg, name),
        }
        route = routes.get((method, rest))
        if route is None:
            raise ArmError(405 if rest in {r for _, r in routes} else 404, "UnsupportedOperation",
                           f"{method} {path} is not supported by this fake.")
        return route()

    # ------------------------------------------------------------ operations

    def _start_operation(self, location: str, on_done: Callable[[], None]) -> dict[str, str]:
        op_id = str(uuid.uuid4())
        self._operations[op_id] = _Operation(self.polls_per_operation, on_done)
        base = f"{self.base_url}/subscriptions/{self.subscription_id}/providers/Microsoft.Compute/locations/{location}"
        return {
            "Azure-AsyncOperation": f"{base}/operations/{op_id}?api-version={COMPUTE_API_VERSION}",
            "Location": f"{base}/operationResults/{op_id}?api-version={COMPUTE_API_VERSION}",
            "Retry-After": "0",
        }

    def _operation(self, kind: str, op_id: str) -> tuple[int, dict[str, str], Any]:
        op = self._operations.get(op_id)
        if op is None:
            raise ArmError(404, "NotFound", f"Operation {op_id} not found.")
        if not op.done and kind == "operations":
            if op.polls_left > 0:
                op.polls_left -= 1
            else:
                op.on_done()
                op.done = True
        if kind == "operationresults":
            return (204, {}, None) if op.done else (202, {"Retry-After": "0"}, None)
        return 200, {"Retry-After": "0"}, {"name": op_id, "status": "Succeeded" if op.done else "InProgress"}

    # ------------------------------------------------------------ scale sets

    def _find(self, rg: str, name: str) -> ScaleSet:
        scale_set = self.scale_sets.get((rg.lower(), name.lower()))
        if scale_set is None:
            raise ArmError(404, "ResourceNotFound", f"The Resource 'Microsoft.Compute/virtualMachineScaleSets/{name}' "
                           f"under resource group '{rg}' was not found.")
        return scale_set

    def _resource_id(self, rg: str, name: str) -> str:
        return (f"/subscriptions/{self.subscription_id}/resourceGroups/{rg}/providers/Microsoft.Compute"
                f"/virtualMachineScaleSets/{name}")

    def _view(self, rg: str, scale_set: ScaleSet) -> dict[str, Any]:
        body = json.loads(json.dumps(scale_set.body))
        body["sku"]["capacity"] = sum(1 for i in scale_set.instances.values() if i.state != "Deleting")
        body.update(id=self._resource_id(rg, scale_set.name), name=scale_set.name,
                    type="Microsoft.Compute/virtualMachineScaleSets")
        body.setdefault("properties", {})["provisioningState"] = scale_set.state
        return body

    def _get(self, rg: str, name: str) -> tuple[int, dict[str, str], Any]:
        return 200, {}, self._view(rg, self._find(rg, name))

    def _put(self, rg: str, name: str, body: Any) -> tuple[int, dict[str, str], Any]:
        validate_scale_set(body)
        for nic in body["properties"]["virtualMachineProfile"]["networkProfile"]["networkInterfaceConfigurations"]:
            for ip in nic["properties"]["ipConfigurations"]:
                subnet = ip["properties"]["subnet"]["id"]
                if not subnet.lower().startswith(f"/subscriptions/{self.subscription_id}/"):
                    raise ArmError(403, "LinkedAuthorizationFailed", "The client has permission to perform action "
                                   "'Microsoft.Compute/virtualMachineScaleSets/write', but it does not have permission "
                                   f"to perform action 'Microsoft.Network/virtualNetworks/subnets/join/action' on the "
                                   f"linked scope(s) '{subnet}'.")
        existing = self.scale_sets.get((rg.lower(), name.lower()))
        stored = json.loads(json.dumps(body))
        os_profile = stored["properties"]["virtualMachineProfile"]["osProfile"]
        os_profile.pop("customData", None)  # write-only in ARM: never returned
        os_profile.pop("adminPassword", None)
        if existing is None:
            scale_set = ScaleSet(name, stored)
            self.scale_sets[(rg.lower(), name.lower())] = scale_set
            status = 201
        else:
            scale_set, status = existing, 200
            scale_set.body, scale_set.state = stored, "Updating"
        self._set_capacity(scale_set, body["sku"]["capacity"])

        def done() -> None:
            scale_set.state = "Succeeded"

        return status, self._start_operation(body["location"], done), self._view(rg, scale_set)

    def _patch(self, rg: str, name: str, body: Any) -> tuple[int, dict[str, str], Any]:
        scale_set = self._find(rg, name)
        _require(isinstance(body, dict), "body", "The request body must be a JSON object.")
        sku = body.get("sku")
        if sku is not None:
            _require(isinstance(sku.get("capacity"), int) and sku["capacity"] >= 0, "sku.capacity",
                     "'sku.capacity' must be a non-negative integer.")
            if sku.get("name"):
                scale_set.body["sku"]["name"] = sku["name"]
            scale_set.state = "Updating"
            self._set_capacity(scale_set, sku["capacity"])

        def done() -> None:
            self._drop_deleting(scale_set)
            scale_set.state = "Succeeded"

        return 200, self._start_operation(scale_set.body["location"], done), self._view(rg, scale_set)

    def _delete(self, rg: str, name: str) -> tuple[int, dict[str, str], Any]:
        key = (rg.lower(), name.lower())
        scale_set = self.scale_sets.get(key)
        if scale_set is None:
            return 204, {}, None  # ARM: deleting what does not exist succeeds with No Content
        scale_set.state = "Deleting"
        for instance in scale_set.instances.values():
            instance.state = "Deleting"

        def done() -> None:
            if self.scale_sets.get(key) is scale_set:
                del self.scale_sets[key]

        return 202, self._start_operation(scale_set.body["location"], done), None

    def _delete_instances(self, rg: str, name: str, body: Any) -> tuple[int, dict[str, str], Any]:
        scale_set = self._find(rg, name)
        ids = body.get("instanceIds") if isinstance(body, dict) else None
        _require(isinstance(ids, list) and bool(ids) and all(isinstance(i, str) for i in ids), "instanceIds",
                 "Required parameter 'instanceIds' is missing or empty.")
        for instance_id in ids:
            instance = scale_set.instances.get(instance_id)
            _require(instance is not None and instance.state != "Deleting", "instanceIds",
                     f"The provided instanceId {instance_id} is not an active Virtual Machine Scale Set VM instanceId.")
        for instance_id in ids:
            scale_set.instances[instance_id].state = "Deleting"

        def done() -> None:
            self._drop_deleting(scale_set)

        return 202, self._start_operation(scale_set.body["location"], done), None

    # ------------------------------------------------------------ instances

    def _set_capacity(self, scale_set: ScaleSet, capacity: int) -> None:
        """Add instances, or mark the highest-numbered ones for deletion (ARM's default scale-in)."""
        active = sorted((i for i in scale_set.instances.values() if i.state != "Deleting"),
                        key=lambda i: int(i.instance_id))
        for _ in range(capacity - len(active)):
            instance_id = str(next(scale_set.next_instance))
            scale_set.instances[instance_id] = Instance(instance_id)
        for instance in active[capacity:] if capacity < len(active) else []:
            instance.state = "Deleting"

    @staticmethod
    def _drop_deleting(scale_set: ScaleSet) -> None:
        for instance_id in [i for i, inst in scale_set.instances.items() if inst.state == "Deleting"]:
            del scale_set.instances[instance_id]

    def _list_instances(self, rg: str, name: str, query: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        scale_set = self._find(rg, name)
        expand = query.get("$expand")
        _require(expand in (None, "instanceView"), "$expand", f"Invalid $expand value {expand!r}.")
        rid = self._resource_id(rg, scale_set.name)
        prefix = scale_set.body["properties"]["virtualMachineProfile"]["osProfile"]["computerNamePrefix"]
        value = []
        for instance in sorted(scale_set.instances.values(), key=lambda i: int(i.instance_id)):
            props: dict[str, Any] = {
                "provisioningState": instance.state,
                "latestModelApplied": True,
                "osProfile": {"computerName": f"{prefix}{int(instance.instance_id):06X}",
                              "adminUsername": scale_set.body["properties"]["virtualMachineProfile"]["osProfile"]["adminUsername"]},
                "networkProfile": {"networkInterfaces": [{"id": f"{rid}/virtualMachines/{instance.instance_id}/networkInterfaces/nic"}]},
            }
            if expand == "instanceView":
                status = {"code": f"ProvisioningState/{instance.state.lower()}", "level": "Info",
                          "displayStatus": f"Provisioning {instance.state.lower()}"}
                if instance.message:
                    status.update(level="Error", message=instance.message)
                props["instanceView"] = {"statuses": [status]}
            value.append({
                "id": f"{rid}/virtualMachines/{instance.instance_id}",
                "name": f"{scale_set.name}_{instance.instance_id}",
                "type": "Microsoft.Compute/virtualMachineScaleSets/virtualMachines",
                "location": scale_set.body["location"],
                "instanceId": instance.instance_id,
                "sku": {"name": scale_set.body["sku"]["name"], "tier": "Standard"},
                "properties": props,
            })
            if instance.state == "Creating":
                instance.state = "Succeeded"  # ready by the next read
        return 200, {}, {"value": value}

    def _list_nics(self, rg: str, name: str) -> tuple[int, dict[str, str], Any]:
        scale_set = self._find(rg, name)
        rid = self._resource_id(rg, scale_set.name)
        value = []
        for instance in scale_set.instances.values():
            number = int(instance.instance_id)
            value.append({
                "id": f"{rid}/virtualMachines/{instance.instance_id}/networkInterfaces/nic",
                "name": "nic",
                "properties": {
                    "primary": True,
                    "virtualMachine": {"id": f"{rid}/virtualMachines/{instance.instance_id}"},
                    "ipConfigurations": [{"name": "ipconfig", "properties": {
                        "primary": True, "privateIPAddress": f"10.0.{number // 250}.{4 + number % 250}"}}],
                },
            })
        return 200, {}, {"value": value}
