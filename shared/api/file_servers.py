"""File servers: an NFS server VM with data disks, mounted by clusters and jobs.

A new file server is `creating` while the file server port makes it (shared/file_servers.py:
the first step is started here, the timer carries on); on one machine it is ready at once."""

from __future__ import annotations

import uuid

from shared import errors, file_servers
from shared.api.generic import own_subnet, put_resource, refuse_changes, route_ref, timestamp
from shared.api.request import ApiRequest, ApiResponse, parse_body
from shared.composition import Services
from shared.documents.resources import FileServerDocument
from shared.ids import FILE_SERVER
from shared.models import FileServerCreateParameters
from shared.resources import envelope, new_document


def create(svc: Services, req: ApiRequest) -> ApiResponse:
    ref = route_ref(FILE_SERVER, req)
    params = parse_body(FileServerCreateParameters, req).properties
    default_subnet = svc.file_servers.default_subnet_id()
    if svc.file_servers.needs_subnet and params.subnet is None and not default_subnet:
        raise errors.InvalidParameter("A file server on Azure needs a subnet: give properties.subnet.id (the nodes' "
                                      "subnet), or set the deployment's BATCHAI_DEFAULT_SUBNET_ID.",
                                      target="properties.subnet")
    wanted = params.to_wire(reveal_secrets=True)  # the create's properties, compared by a repeated PUT

    def build() -> FileServerDocument:
        now = timestamp(svc.clock.now())
        properties = params.to_wire() | {
            "subnet": params.subnet.to_wire() if params.subnet else {"id": default_subnet or own_subnet(ref)},
            "creationTime": now,
            "provisioningState": file_servers.CREATING,
            "provisioningStateTransitionTime": now,
        }
        # uid names the server's VM, disks, NIC, NSG and public IP: a name used again gets new ones.
        return new_document(ref, FileServerDocument, envelope(ref, properties), params, uid=uuid.uuid4().hex[:16])

    def reconcile(doc: FileServerDocument) -> bool:
        refuse_changes(FILE_SERVER, doc.spec.to_wire(reveal_secrets=True), wanted)
        return False

    return put_resource(svc, ref, FileServerDocument, build, reconcile,
                        created=lambda doc: file_servers.advance(svc, doc))
