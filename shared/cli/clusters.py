"""`batchai cluster`: create (flags or a Batch AI config file), resize, auto-scale, show, list,
list-nodes, delete."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer

from shared.cli.bodies import (
    AUTO_CONTAINER,
    AUTO_CONTAINER_PATH,
    AUTO_SHARE,
    AUTO_SHARE_PATH,
    ClusterFlags,
    MountFlags,
    Storage,
    cluster_body,
)
from shared.cli.common import (
    add_show_list_delete,
    AccountOpt,
    AfsOpt,
    AfsPathOpt,
    BfsOpt,
    BfsPathOpt,
    Column,
    GenerateKeysOpt,
    GroupOpt,
    KeyOpt,
    LocationOpt,
    MessageIdOpt,
    NameOpt,
    NfsOpt,
    NfsPathOpt,
    Output,
    OutputOpt,
    TimeoutOpt,
    UserError,
    ViaQueueOpt,
    WaitOpt,
    WorkspaceOpt,
    console,
    dig,
    read_json_file,
    resource_id,
    session,
    show,
)
from shared.cli.ssh_keys import ensure_rsa_key_pair
from shared.models import Cluster

# --use-auto-storage on a local host: its folders stand for every storage account, any key will do.
LOCAL_AUTO_STORAGE_ACCOUNT, LOCAL_AUTO_STORAGE_KEY = "baiautostorage", "local"

app = typer.Typer(help="Clusters: pools of nodes that run jobs.", no_args_is_help=True)


def _counts(c: object, name: str) -> object:
    return dig(c, "properties", "node_state_counts", name)


def _scale(c: object) -> str | None:
    manual = dig(c, "properties", "scale_settings", "manual")
    if manual is not None:
        return f"{manual.target_node_count}"
    auto = dig(c, "properties", "scale_settings", "auto_scale")
    return f"auto {auto.minimum_node_count}-{auto.maximum_node_count}" if auto is not None else None


COLUMNS: list[Column] = [
    ("Name", lambda c: c.name), ("VM Size", lambda c: dig(c, "properties", "vm_size")),
    ("State", lambda c: dig(c, "properties", "allocation_state")), ("Target", _scale),
    ("Nodes", lambda c: dig(c, "properties", "current_node_count")),
    ("Idle", lambda c: _counts(c, "idle_node_count")), ("Running", lambda c: _counts(c, "running_node_count")),
    ("Preparing", lambda c: _counts(c, "preparing_node_count")),
    ("Leaving", lambda c: _counts(c, "leaving_node_count")),
    ("Unusable", lambda c: _counts(c, "unusable_node_count")),
    ("Errors", lambda c: [e.code for e in dig(c, "properties", "errors") or []])]
NODE_COLUMNS: list[Column] = [("Node Id", lambda n: n.node_id), ("IP", lambda n: n.ip_address),
                              ("SSH Port", lambda n: None if n.port is None else int(n.port))]


def default_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "batchai"


def ssh_key_value(given: str) -> str:
    """A public key as given, or read from the file it names."""
    path = Path(given).expanduser()
    return path.read_text().strip() if not given.startswith("ssh-") and path.is_file() else given


def auto_storage_account(given: Storage) -> Storage:
    """The account --use-auto-storage mounts. az made (or reused) one in Azure; a local host stands
    for every account with folders and takes any key, so locally it is a fixed local account."""
    if session().is_local():
        return Storage(LOCAL_AUTO_STORAGE_ACCOUNT, LOCAL_AUTO_STORAGE_KEY)
    if given.account and given.key:
        return given
    raise UserError("--use-auto-storage: batchai does not create storage accounts in Azure; give the account "
                    "to use with --storage-account-name and --storage-account-key.")


def default_ssh_key() -> str | None:
    for name in ("id_ed25519.pub", "id_rsa.pub"):
        path = Path.home() / ".ssh" / name
        if path.is_file():
            return path.read_text().strip()
    return None


@app.command("create")
def create(
    name: NameOpt, group: GroupOpt = None, workspace: WorkspaceOpt = None,
    config_file: Annotated[str | None, typer.Option("--config-file", "-f", show_default=False,
                                                    help="Batch AI style file: {\"properties\": {...}}; "
                                                         "flags override it.")] = None,
    vm_size: Annotated[str | None, typer.Option("--vm-size", "-s", show_default=False,
                                                help="VM size (default STANDARD_NC6).")] = None,
    vm_priority: Annotated[str | None, typer.Option("--vm-priority", show_default=False,
                                                    help="dedicated or lowpriority.")] = None,
    target: Annotated[int | None, typer.Option(
        "--target", "-t", min=0, show_default=False,
        help="Nodes at creation (default 1); with --min/--max, where auto-scale starts.")] = None,
    min_nodes: Annotated[int | None, typer.Option("--min", min=0, show_default=False,
                                                  help="Auto-scale: fewest nodes (equal to --max: a fixed size).")
                         ] = None,
    max_nodes: Annotated[int | None, typer.Option("--max", min=0, show_default=False,
                                                  help="Auto-scale: most nodes.")] = None,
    image: Annotated[str | None, typer.Option("--image", "-i", show_default=False,
                                              help="UbuntuLTS, UbuntuDSVM or publisher:offer:sku[:version].")] = None,
    custom_image: Annotated[str | None, typer.Option(
        "--custom-image", show_default=False,
        help="ARM id of a custom VM image; --image names the image it was made from.")] = None,
    user_name: Annotated[str | None, typer.Option("--user-name", "-u", show_default=False,
                                                  help="Admin user on the nodes (default: you).")] = None,
    password: Annotated[str | None, typer.Option("--password", "-p", show_default=False,
                                                 help="Admin password (never shown).")] = None,
    ssh_key: Annotated[str | None, typer.Option(
        "--ssh-key", "-k", show_default=False, help="Admin SSH public key or its file (default ~/.ssh/*.pub).")] = None,
    generate_ssh_keys: GenerateKeysOpt = False,
    subnet: Annotated[str | None, typer.Option("--subnet", show_default=False, help="Subnet id.")] = None,
    setup_task: Annotated[str | None, typer.Option("--setup-task", show_default=False,
                                                   help="Command every node runs when it starts.")] = None,
    setup_task_output: Annotated[str | None, typer.Option("--setup-task-output", show_default=False,
                                                          help="Where the setup task's logs go.")] = None,
    storage_account_name: AccountOpt = None, storage_account_key: KeyOpt = None,
    afs_name: AfsOpt = None, afs_mount_path: AfsPathOpt = "afs", bfs_name: BfsOpt = None,
    bfs_mount_path: BfsPathOpt = "bfs", nfs: NfsOpt = None, nfs_mount_path: NfsPathOpt = "nfs",
    use_auto_storage: Annotated[bool, typer.Option(
        "--use-auto-storage",
        help=f"Mount the share {AUTO_SHARE} at $AZ_BATCHAI_MOUNT_ROOT/{AUTO_SHARE_PATH} and the container "
             f"{AUTO_CONTAINER} at .../{AUTO_CONTAINER_PATH} of an auto-storage account: on a local host its "
             "local account, elsewhere the --storage-account-name/-key given.")] = False,
    location: LocationOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Create a cluster from flags, a Batch AI config file, or both."""
    s = session()
    group, workspace = s.workspace(group, workspace)
    config = read_json_file(config_file, "config file") if config_file else None
    if generate_ssh_keys:
        generated = ensure_rsa_key_pair()
        ssh_key = ssh_key or generated
    flags = ClusterFlags(vm_size=vm_size, vm_priority=vm_priority, target=target, min_nodes=min_nodes,
                         max_nodes=max_nodes, image=image, custom_image=custom_image, user_name=user_name,
                         password=password, ssh_key=ssh_key_value(ssh_key) if ssh_key else None, subnet=subnet,
                         setup_task=setup_task, setup_task_output=setup_task_output)
    nfs_id = resource_id(nfs, "fileServers", group, workspace, s.config().subscription) if nfs else None
    storage = Storage(storage_account_name, storage_account_key)
    mounts = MountFlags(afs_name, afs_mount_path, bfs_name, bfs_mount_path, nfs_id, nfs_mount_path,
                        auto_storage=auto_storage_account(storage) if use_auto_storage else None)
    body = cluster_body(config, flags, mounts, storage, default_user(), default_ssh_key())
    show(s.client().clusters.create(group, workspace, name, body), output, COLUMNS)


@app.command("resize")
def resize(name: NameOpt,
           target: Annotated[int, typer.Option("--target", "-t", min=0, help="Number of nodes.", show_default=False)],
           group: GroupOpt = None, workspace: WorkspaceOpt = None, output: OutputOpt = Output.table,
           via_queue: ViaQueueOpt = False, wait: WaitOpt = True, timeout: TimeoutOpt = 60.0,
           message_id: MessageIdOpt = None) -> None:
    """Give the cluster a fixed number of nodes (ends auto-scale)."""
    s = session()
    scale = {"manual": {"targetNodeCount": target}}
    if not via_queue:
        show(s.client().clusters.update(*s.workspace(group, workspace), name, scale), output, COLUMNS)
        return
    sent = s.client().by_message().resize_cluster(s.config().subscription, *s.workspace(group, workspace), name,
                                                  scale, message_id=message_id, wait=timeout if wait else None)
    if isinstance(sent, str):
        console.print(f"Sent the resize of {name} as message {sent}.", markup=False)
    else:
        show(sent.resource_as(Cluster), output, COLUMNS)


@app.command("auto-scale")
def auto_scale(name: NameOpt,
               min_nodes: Annotated[int, typer.Option("--min", min=0, help="Fewest nodes.", show_default=False)],
               max_nodes: Annotated[int, typer.Option("--max", min=0, help="Most nodes.", show_default=False)],
               group: GroupOpt = None, workspace: WorkspaceOpt = None, output: OutputOpt = Output.table) -> None:
    """Let the cluster grow with its queued jobs and shrink when idle, between --min and --max."""
    s = session()
    settings = {"autoScale": {"minimumNodeCount": min_nodes, "maximumNodeCount": max_nodes}}
    show(s.client().clusters.update(*s.workspace(group, workspace), name, settings), output, COLUMNS)


@app.command("list-nodes")
def list_nodes(name: NameOpt, group: GroupOpt = None, workspace: WorkspaceOpt = None,
               output: OutputOpt = Output.table) -> None:
    """The cluster's nodes: their ids, addresses and SSH ports."""
    s = session()
    show(s.client().clusters.list_remote_login_information(*s.workspace(group, workspace), name), output,
         NODE_COLUMNS, title="nodes")


add_show_list_delete(app, noun="cluster", plural="clusters", operations=lambda c: c.clusters, columns=COLUMNS,
                     delete_help="Delete a cluster: its nodes go, its unfinished jobs fail.",
                     delete_question="Delete the {noun} {name}? Its nodes go, its unfinished jobs fail.")
