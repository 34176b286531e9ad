"""File servers' life: made through the file server port, observed on later rounds, removed after.

A file server is `creating` until the port reports it ready: then `succeeded`, with `mountSettings`
(its internal IP, which nodes mount over NFS, its public IP and mount point); or `failed`, with the
reason in `errors` (an addition beside Batch AI's properties, shaped like a cluster's errors). A
call that fails for now (throttling, no answer) is shown in `errors` too and retried next round.

Deleting a file server removes its document at once (as for every resource); what the port still
has to remove is remembered in a teardown record (kind "fileServerTeardown", in the resources
container, under no parent), which later rounds carry on until the port reports nothing left.
"""

from __future__ import annotations

import logging

from shared.composition import Services
from shared.documents import base as documents
from shared.documents.resources import ErrorEntry, FileServerDocument, FileServerMountSettings, TeardownRecord
from shared.nodes import stamp
from shared.ports.file_servers import FileServerError, FileServerSpec, FileServerState
from shared.ports.state_store import Conflict, Query
from shared.resources import mutate_doc

log = logging.getLogger(__name__)
TEARDOWN = "fileServerTeardown"
CREATING, SUCCEEDED, FAILED = "creating", "succeeded", "failed"


def server_id(doc: FileServerDocument) -> str:
    """The name of the file server's Azure resources: new for every file server ever made."""
    return f"fs{doc.uid}"


def spec_of(svc: Services, doc: FileServerDocument) -> FileServerSpec:
    spec = doc.spec
    account = spec.ssh_configuration.user_account_settings
    disks = spec.data_disks
    return FileServerSpec(
        server_id=server_id(doc), vm_size=spec.vm_size, admin_user_name=account.admin_user_name,
        admin_password=account.admin_user_password, admin_ssh_public_key=account.admin_user_ssh_public_key,
        disk_count=disks.disk_count, disk_size_gb=disks.disk_size_in_gb,
        storage_account_type=str(disks.storage_account_type), caching_type=str(disks.caching_type),
        subnet_id=spec.subnet.id if spec.subnet else None,
        ssh_sources=tuple(spec.ssh_configuration.public_ips_to_allow or ()),
        location=svc.settings.default_location, tags={"batchai-file-server": doc.resource.id[-256:]})


def advance(svc: Services, doc: FileServerDocument) -> FileServerDocument:
    """One round for a file server being made: ask the port, and write down where it stands."""
    try:
        state = svc.file_servers.provision(spec_of(svc, doc))
        problem = None
    except FileServerError as exc:
        state, problem = FileServerState(stage=CREATING), str(exc)
    return record(svc, doc, state, problem) or doc


def record(svc: Services, doc: FileServerDocument, state: FileServerState, problem: str | None = None
           ) -> FileServerDocument | None:
    """Write the port's answer into the resource (None when nothing changed or it is gone)."""
    now = stamp(svc.clock.now())

    def edit(current: FileServerDocument) -> bool:
        props = current.resource.properties
        if props.provisioning_state != CREATING:
            return False  # decided already (or being deleted): a late answer changes nothing
        before = props.model_copy(deep=True)
        if state.stage != CREATING:
            props.provisioning_state = state.stage
            props.provisioning_state_transition_time = now
        if state.stage == SUCCEEDED:
            props.mount_settings = FileServerMountSettings(
                mount_point=state.mount_point, file_server_public_ip=state.public_ip,
                file_server_internal_ip=state.internal_ip)
        if state.stage == FAILED:
            props.errors = [ErrorEntry(code="FileServerProvisioningFailed", message=state.details[:1000])]
        elif problem:
            props.errors = [ErrorEntry(code="FileServerOperationFailed", message=problem[:1000])]
        else:
            props.errors = None
        return props != before

    return mutate_doc(svc.store, doc, edit)


def teardown(svc: Services, doc: FileServerDocument) -> None:
    """A deleted file server: start removing what was made for it; later rounds finish."""
    if doc.uid is None:
        return
    try:
        if svc.file_servers.delete(server_id(doc)):
            return
    except FileServerError as exc:
        log.warning("file server %s: removing it failed for now: %s", server_id(doc), exc)
    try:
        documents.create(svc.store, TeardownRecord(id=f"{TEARDOWN}|{server_id(doc)}", pk=doc.pk,
                                                   server_id=server_id(doc)))
    except Conflict:
        pass  # remembered already


def reconcile_all(svc: Services) -> None:
    """The timer's round: file servers being made move on; removals under way carry on."""
    for doc in documents.query(svc.store, FileServerDocument, Query(where={"kind": "fileServer"})):
        if doc.resource.properties.provisioning_state == CREATING:
            advance(svc, doc)
    for record_ in documents.query(svc.store, TeardownRecord, Query(where={"kind": TEARDOWN})):
        try:
            done = svc.file_servers.delete(record_.server_id)
        except FileServerError as exc:
            log.warning("file server %s: removing it failed for now: %s", record_.server_id, exc)
            continue
        if done:
            documents.delete(svc.store, TeardownRecord, record_.pk, record_.id)
