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
from typing import Any

from shared.composition import Services
from shared.nodes import stamp
from shared.ports.file_servers import FileServerError, FileServerSpec, FileServerState
from shared.ports.state_store import Conflict, NotFound, Query
from shared.resources import R, mutate_doc

log = logging.getLogger(__name__)
TEARDOWN = "fileServerTeardown"
CREATING, SUCCEEDED, FAILED = "creating", "succeeded", "failed"


def server_id(doc: dict[str, Any]) -> str:
    """The name of the file server's Azure resources: new for every file server ever made."""
    return f"fs{doc['uid']}"


def spec_of(svc: Services, doc: dict[str, Any]) -> FileServerSpec:
    spec = doc["spec"]
    account = spec["sshConfiguration"]["userAccountSettings"]
    disks = spec["dataDisks"]
    return FileServerSpec(
        server_id=server_id(doc), vm_size=spec["vmSize"], admin_user_name=account["adminUserName"],
        admin_password=account.get("adminUserPassword"), admin_ssh_public_key=account.get("adminUserSshPublicKey"),
        disk_count=disks["diskCount"], disk_size_gb=disks["diskSizeInGB"],
        storage_account_type=disks["storageAccountType"], caching_type=disks.get("cachingType", "none"),
        subnet_id=(spec.get("subnet") or {}).get("id"),
        ssh_sources=tuple(spec["sshConfiguration"].get("publicIPsToAllow") or ()),
        location=svc.settings.default_location, tags={"batchai-file-server": doc["resource"]["id"][-256:]})


def advance(svc: Services, doc: dict[str, Any]) -> dict[str, Any]:
    """One round for a file server being made: ask the port, and write down where it stands."""
    try:
        state = svc.file_servers.provision(spec_of(svc, doc))
        problem = None
    except FileServerError as exc:
        state, problem = FileServerState(stage=CREATING), str(exc)
    return record(svc, doc, state, problem) or doc


def record(svc: Services, doc: dict[str, Any], state: FileServerState, problem: str | None = None
           ) -> dict[str, Any] | None:
    """Write the port's answer into the resource (None when nothing changed or it is gone)."""
    now = stamp(svc.clock.now())

    def edit(current: dict[str, Any]) -> bool:
        props = current["resource"]["properties"]
        if props.get("provisioningState") != CREATING:
            return False  # decided already (or being deleted): a late answer changes nothing
        before = dict(props)
        if state.stage != CREATING:
            props["provisioningState"] = state.stage
            props["provisioningStateTransitionTime"] = now
        if state.stage == SUCCEEDED:
            props["mountSettings"] = {"mountPoint": state.mount_point, "fileServerPublicIP": state.public_ip,
                                      "fileServerInternalIP": state.internal_ip}
        if state.stage == FAILED:
            props["errors"] = [{"code": "FileServerProvisioningFailed", "message": state.details[:1000]}]
        elif problem:
            props["errors"] = [{"code": "FileServerOperationFailed", "message": problem[:1000]}]
        else:
            props.pop("errors", None)
        return bool(props != before)

    return mutate_doc(svc.store, doc, edit)


def teardown(svc: Services, doc: dict[str, Any]) -> None:
    """A deleted file server: start removing what was made for it; later rounds finish."""
    if "uid" not in doc:
        return
    try:
        if svc.file_servers.delete(server_id(doc)):
            return
    except FileServerError as exc:
        log.warning("file server %s: removing it failed for now: %s", server_id(doc), exc)
    try:
        svc.store.create(R, {"id": f"{TEARDOWN}|{server_id(doc)}", "pk": doc["pk"], "kind": TEARDOWN,
                             "parent": "", "serverId": server_id(doc)})
    except Conflict:
        pass  # remembered already


def reconcile_all(svc: Services) -> None:
    """The timer's round: file servers being made move on; removals under way carry on."""
    for doc in svc.store.query(R, Query(where={"kind": "fileServer"})):
        if doc["resource"]["properties"].get("provisioningState") == CREATING:
            advance(svc, doc)
    for record_ in svc.store.query(R, Query(where={"kind": TEARDOWN})):
        try:
            done = svc.file_servers.delete(record_["serverId"])
        except FileServerError as exc:
            log.warning("file server %s: removing it failed for now: %s", record_["serverId"], exc)
            continue
        if done:
            try:
                svc.store.delete(R, record_["pk"], record_["id"])
            except NotFound:
                pass
