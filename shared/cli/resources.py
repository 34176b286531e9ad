"""`batchai workspace | experiment | file-server | event-subscription`: the simpler resources."""

from __future__ import annotations

from typing import Annotated

import typer

from shared.cli.bodies import properties_of
from shared.cli.ssh_keys import ensure_rsa_key_pair
from shared.cli.common import (
    add_show_list_delete,
    Column,
    GenerateKeysOpt,
    GroupOpt,
    NameOpt,
    Output,
    OutputOpt,
    WorkspaceOpt,
    YesOpt,
    confirm,
    console,
    dig,
    id_part,
    read_json_file,
    session,
    show,
)

workspace_app = typer.Typer(help="Workspaces: where clusters, file servers and experiments live.",
                            no_args_is_help=True)
experiment_app = typer.Typer(help="Experiments: groups of jobs.", no_args_is_help=True)
file_server_app = typer.Typer(help="File servers: NFS servers the clusters and jobs can mount.", no_args_is_help=True)
event_app = typer.Typer(help="Event subscriptions: webhooks told of every change of a job's state.",
                        no_args_is_help=True)

WORKSPACE_COLUMNS: list[Column] = [
    ("Name", lambda w: w.name), ("Resource Group", lambda w: id_part(w.id, "resourceGroups")),
    ("Location", lambda w: w.location), ("State", lambda w: dig(w, "properties", "provisioning_state"))]
EXPERIMENT_COLUMNS: list[Column] = [
    ("Name", lambda e: e.name), ("Resource Group", lambda e: id_part(e.id, "resourceGroups")),
    ("Workspace", lambda e: id_part(e.id, "workspaces")),
    ("Created", lambda e: _when(dig(e, "properties", "creation_time")))]
FILE_SERVER_COLUMNS: list[Column] = [
    ("Name", lambda f: f.name), ("Resource Group", lambda f: id_part(f.id, "resourceGroups")),
    ("Workspace", lambda f: id_part(f.id, "workspaces")), ("VM Size", lambda f: dig(f, "properties", "vm_size")),
    ("State", lambda f: dig(f, "properties", "provisioning_state")),
    ("Address", lambda f: dig(f, "properties", "mount_settings", "file_server_internal_ip"))]
EVENT_COLUMNS: list[Column] = [
    ("Name", lambda s: s.name), ("Endpoint", lambda s: dig(s, "properties", "destination", "endpoint_url")),
    ("Experiments", lambda s: dig(s, "properties", "filter", "experiments") or "all"),
    ("Event Types", lambda s: [t.rsplit(".", 1)[-1] for t in dig(s, "properties", "filter", "event_types") or []]
     or "all"),
    ("Signed", lambda s: dig(s, "properties", "has_secret"))]
DEAD_LETTER_COLUMNS: list[Column] = [
    ("Event Id", lambda d: d.event_id), ("Type", lambda d: d.event_type.rsplit(".", 1)[-1]),
    ("Attempts", lambda d: d.attempts), ("Last Attempt", lambda d: _when(d.last_attempt_time)),
    ("Reason", lambda d: d.reason)]


def _when(moment: object) -> str | None:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment is not None else None  # type: ignore[attr-defined]


# -- workspace ------------------------------------------------------------------------------------
@workspace_app.command("create")
def workspace_create(
    name: NameOpt, group: GroupOpt = None,
    location: Annotated[str | None, typer.Option(
        "--location", "-l", show_default=False, help="Azure region (default: configured, or local).")] = None,
    output: OutputOpt = Output.table,
) -> None:
    """Create a workspace (or leave an identical one as it is)."""
    s = session()
    show(s.client().workspaces.create(s.group(group), name, location), output, WORKSPACE_COLUMNS)


@workspace_app.command("show")
def workspace_show(name: NameOpt, group: GroupOpt = None, output: OutputOpt = Output.table) -> None:
    """Show a workspace."""
    s = session()
    show(s.client().workspaces.get(s.group(group), name), output, WORKSPACE_COLUMNS)


@workspace_app.command("list")
def workspace_list(group: GroupOpt = None, output: OutputOpt = Output.table) -> None:
    """List the workspaces of a resource group, or of the subscription without -g."""
    show(session().client().workspaces.list(group), output, WORKSPACE_COLUMNS, title="workspaces")


@workspace_app.command("delete")
def workspace_delete(name: NameOpt, group: GroupOpt = None, yes: YesOpt = False) -> None:
    """Delete a workspace with everything in it (running jobs are stopped)."""
    s = session()
    group = s.group(group)
    confirm(f"Delete the workspace {name} with its clusters, file servers, experiments and jobs?", yes)
    s.client().workspaces.delete(group, name)
    console.print(f"Deleted the workspace {name}.")


# -- experiment -----------------------------------------------------------------------------------
@experiment_app.command("create")
def experiment_create(name: NameOpt, group: GroupOpt = None, workspace: WorkspaceOpt = None,
                      output: OutputOpt = Output.table) -> None:
    """Create an experiment."""
    s = session()
    show(s.client().experiments.create(*s.workspace(group, workspace), name), output, EXPERIMENT_COLUMNS)


add_show_list_delete(experiment_app, noun="experiment", plural="experiments", operations=lambda c: c.experiments,
                     columns=EXPERIMENT_COLUMNS,
                     delete_help="Delete an experiment and its jobs (running ones are stopped).",
                     delete_question="Delete the {noun} {name} and its jobs (running ones are stopped)?")


# -- file server ----------------------------------------------------------------------------------
@file_server_app.command("create")
def file_server_create(
    name: NameOpt, group: GroupOpt = None, workspace: WorkspaceOpt = None,
    config_file: Annotated[str | None, typer.Option("--config-file", "-f", show_default=False,
                                                    help="Batch AI style file: {\"properties\": {...}}.")] = None,
    vm_size: Annotated[str | None, typer.Option("--vm-size", "-s", show_default=False, help="VM size.")] = None,
    disk_count: Annotated[int | None, typer.Option("--disk-count", min=1, show_default=False,
                                                   help="Data disks (RAID 0 over them).")] = None,
    disk_size: Annotated[int | None, typer.Option("--disk-size", min=1, show_default=False,
                                                  help="Size of each data disk, GB.")] = None,
    storage_sku: Annotated[str | None, typer.Option("--storage-sku", show_default=False,
                                                    help="Standard_LRS or Premium_LRS.")] = None,
    caching_type: Annotated[str | None, typer.Option("--caching-type", show_default=False,
                                                     help="Host caching of the data disks: none, readonly or "
                                                          "readwrite.")] = None,
    user_name: Annotated[str | None, typer.Option("--user-name", "-u", show_default=False,
                                                  help="Admin user.")] = None,
    password: Annotated[str | None, typer.Option("--password", "-p", show_default=False,
                                                 help="Admin password (never shown).")] = None,
    ssh_key: Annotated[str | None, typer.Option("--ssh-key", "-k", show_default=False,
                                                help="Admin SSH public key, or the path of one.")] = None,
    generate_ssh_keys: GenerateKeysOpt = False,
    subnet: Annotated[str | None, typer.Option("--subnet", show_default=False, help="Subnet id.")] = None,
    output: OutputOpt = Output.table,
) -> None:
    """Create a file server from a config file and/or flags."""
    from shared.cli.clusters import default_ssh_key, default_user, ssh_key_value

    s = session()
    if generate_ssh_keys:
        generated = ensure_rsa_key_pair()
        ssh_key = ssh_key or generated
    where = s.workspace(group, workspace)
    props = properties_of(read_json_file(config_file, "config file") if config_file else None, "config file")
    if vm_size:
        props["vmSize"] = vm_size
    props.setdefault("vmSize", "STANDARD_D2_V2")
    disks = props.setdefault("dataDisks", {})
    for key, value, fallback in (("diskCount", disk_count, 1), ("diskSizeInGB", disk_size, 10),
                                 ("storageAccountType", storage_sku, "Standard_LRS")):
        if value is not None:
            disks[key] = value
        disks.setdefault(key, fallback)
    if caching_type:
        disks["cachingType"] = caching_type
    ssh = props.setdefault("sshConfiguration", {})
    account = ssh.setdefault("userAccountSettings", {})
    account["adminUserName"] = user_name or account.get("adminUserName") or default_user()
    if password:
        account["adminUserPassword"] = password
    if ssh_key:
        account["adminUserSshPublicKey"] = ssh_key_value(ssh_key)
    if not account.get("adminUserPassword") and not account.get("adminUserSshPublicKey") and default_ssh_key():
        account["adminUserSshPublicKey"] = default_ssh_key()  # as az: the default key when no password
    if subnet:
        props["subnet"] = {"id": subnet}
    show(s.client().file_servers.create(*where, name, {"properties": props}), output, FILE_SERVER_COLUMNS)


add_show_list_delete(file_server_app, noun="file server", plural="file servers", operations=lambda c: c.file_servers,
                     columns=FILE_SERVER_COLUMNS, delete_help="Delete a file server.")


# -- event subscription ---------------------------------------------------------------------------
@event_app.command("create")
def event_create(
    name: NameOpt,
    url: Annotated[str, typer.Option("--url", help="The webhook (https://...); it must answer the CloudEvents "
                                                   "validation handshake.", show_default=False)],
    group: GroupOpt = None, workspace: WorkspaceOpt = None,
    experiment: Annotated[list[str] | None, typer.Option("--experiment", "-e", show_default=False,
                                                         help="Only this experiment's jobs (repeatable).")] = None,
    event_type: Annotated[list[str] | None, typer.Option(
        "--event-type", show_default=False,
        help="Only these events (repeatable): JobQueued, JobRunning, JobTerminating, JobSucceeded, JobFailed.")] = None,
    secret: Annotated[str | None, typer.Option("--secret", envvar="BATCHAI_WEBHOOK_SECRET", show_default=False,
                                               help="Signs every delivery (X-BatchAI-Signature); never shown.")] = None,
    output: OutputOpt = Output.table,
) -> None:
    """Subscribe a webhook to the workspace's job events."""
    s = session()
    where = s.workspace(group, workspace)
    types = [t if "." in t else f"Microsoft.BatchAI.{t}" for t in event_type or []]
    props: dict[str, object] = {"destination": {"endpointUrl": url}}
    if experiment or types:
        props["filter"] = {**({"experiments": experiment} if experiment else {}),
                           **({"eventTypes": types} if types else {})}
    if secret:
        props["secret"] = secret
    show(s.client().event_subscriptions.create(*where, name, {"properties": props}), output, EVENT_COLUMNS)


add_show_list_delete(event_app, noun="event subscription", plural="event subscriptions",
                     operations=lambda c: c.event_subscriptions, columns=EVENT_COLUMNS,
                     delete_help="Delete an event subscription (deliveries under way stop).")


@event_app.command("dead-letters")
def event_dead_letters(name: NameOpt, group: GroupOpt = None, workspace: WorkspaceOpt = None,
                       output: OutputOpt = Output.table) -> None:
    """The events the subscription's webhook never took, with the reasons."""
    s = session()
    show(s.client().event_subscriptions.list_dead_letters(*s.workspace(group, workspace), name), output,
         DEAD_LETTER_COLUMNS, title="dead letters")

