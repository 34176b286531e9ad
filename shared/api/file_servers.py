"""File servers: an NFS server VM with data disks, mounted by clusters and jobs."""

from __future__ import annotations

from typing import Any

from shared.api.generic import own_subnet, put_resource, refuse_changes, route_ref, timestamp
from shared.api.request import ApiRequest, ApiResponse, parse_body
from shared.composition import Services
from shared.ids import FILE_SERVER
from shared.models import FileServerCreateParameters
from shared.resources import envelope

LOCAL_MOUNT = {"mountPoint": "/mnt/data", "fileServerPublicIP": "127.0.0.1", "fileServerInternalIP": "127.0.0.1"}


def create(svc: Services, req: ApiRequest) -> ApiResponse:
    ref = route_ref(FILE_SERVER, req)
    params = parse_body(FileServerCreateParameters, req).properties
    spec = params.to_wire(reveal_secrets=True)

    def build() -> tuple[dict[str, Any], dict[str, Any]]:
        now = timestamp(svc.clock.now())
        properties = params.to_wire() | {
            "subnet": spec.get("subnet", {"id": own_subnet(ref)}),
            "mountSettings": dict(LOCAL_MOUNT),
            "creationTime": now,
            "provisioningState": "succeeded",
            "provisioningStateTransitionTime": now,
        }
        return envelope(ref, properties), spec

    def reconcile(doc: dict[str, Any]) -> None:
        refuse_changes(FILE_SERVER, doc["spec"], spec)
        return None

    return put_resource(svc, ref, build, reconcile)
