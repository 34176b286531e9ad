"""`batchai job`: create (a Batch AI config file plus flag overrides), show, list, terminate,
delete, wait (live state and stdout), `file list | stream | download`, `node list`."""

from __future__ import annotations

import posixpath
import sys
import time
from collections import deque
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Group
from rich.live import Live
from rich.panel import Panel
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.text import Text

from shared.cli.bodies import MountFlags, Storage, job_body
from shared.cli.clusters import NODE_COLUMNS
from shared.cli.common import (
    AccountOpt,
    AfsOpt,
    AfsPathOpt,
    BfsOpt,
    BfsPathOpt,
    Column,
    ExperimentOpt,
    GroupOpt,
    JobOpt,
    KeyOpt,
    MessageIdOpt,
    NameOpt,
    NfsOpt,
    NfsPathOpt,
    Output,
    OutputOpt,
    TimeoutOpt,
    ViaQueueOpt,
    WaitOpt,
    UserError,
    WorkspaceOpt,
    YesOpt,
    confirm,
    console,
    dig,
    errors,
    id_part,
    read_json_file,
    resource_id,
    session,
    show,
)
from shared.client import BatchAIClient, state_of
from shared.models import File, Job

app = typer.Typer(help="Jobs: what runs on a cluster's nodes, queued by priority.", no_args_is_help=True)
file_app = typer.Typer(help="A job's files: its stdout and stderr, and its output directories.", no_args_is_help=True)
node_app = typer.Typer(help="The nodes a running job uses.", no_args_is_help=True)
app.add_typer(file_app, name="file")
app.add_typer(node_app, name="node")

def _exit_code(j: Job) -> object:
    return dig(j, "properties", "execution_info", "exit_code")


COLUMNS: list[Column] = [
    ("Name", lambda j: j.name), ("Experiment", lambda j: id_part(j.id, "experiments")),
    ("Cluster", lambda j: id_part(dig(j, "properties", "cluster", "id"), "clusters")),
    ("Nodes", lambda j: dig(j, "properties", "node_count")), ("Tool", lambda j: dig(j, "properties", "tool_type")),
    ("Priority", lambda j: dig(j, "properties", "scheduling_priority")),
    ("State", lambda j: dig(j, "properties", "execution_state")), ("Exit Code", _exit_code)]
FILE_COLUMNS: list[Column] = [
    ("Name", lambda f: f.name), ("Type", lambda f: f.file_type),
    ("Size", lambda f: dig(f, "properties", "content_length")),
    ("Modified", lambda f: (lambda m: m.strftime("%Y-%m-%d %H:%M:%S") if m else None)(
        dig(f, "properties", "last_modified")))]

DirectoryOpt = Annotated[str, typer.Option("--output-directory-id", "-d",
                                           help="stdouterr, or the id of one of the job's output directories.")]
PathOpt = Annotated[str | None, typer.Option("--path", help="A folder inside the output directory.",
                                             show_default=False)]


def _where(group: str | None, workspace: str | None) -> tuple[BatchAIClient, str, str]:
    s = session()
    g, w = s.workspace(group, workspace)
    return s.client(), g, w


@app.command("create")
def create(
    name: NameOpt, experiment: ExperimentOpt,
    config_file: Annotated[str, typer.Option("--config-file", "-f", show_default=False,
                                             help="Batch AI style job file: {\"properties\": {...}}.")],
    group: GroupOpt = None, workspace: WorkspaceOpt = None,
    cluster: Annotated[str | None, typer.Option(
        "--cluster", "-c", show_default=False,
        help="Cluster (name in the workspace, or id); overrides the file.")] = None,
    node_count: Annotated[int | None, typer.Option("--node-count", min=1, show_default=False,
                                                   help="Nodes the job runs on; overrides the file.")] = None,
    priority: Annotated[str | None, typer.Option("--priority", show_default=False,
                                                 help="low, normal or high; overrides the file.")] = None,
    std_out_err_path_prefix: Annotated[str | None, typer.Option(
        "--std-out-err-path-prefix", show_default=False,
        help="Where stdout.txt and stderr.txt go; overrides the file.")] = None,
    storage_account_name: AccountOpt = None, storage_account_key: KeyOpt = None,
    afs_name: AfsOpt = None, afs_mount_path: AfsPathOpt = "afs", bfs_name: BfsOpt = None,
    bfs_mount_path: BfsPathOpt = "bfs", nfs: NfsOpt = None, nfs_mount_path: NfsPathOpt = "nfs",
    output: OutputOpt = Output.table,
    via_queue: ViaQueueOpt = False, wait: WaitOpt = True, timeout: TimeoutOpt = 60.0,
    message_id: MessageIdOpt = None,
) -> None:
    """Submit a job: it queues by priority and runs when its cluster has all its nodes free."""
    client, group, workspace = _where(group, workspace)
    subscription = client.config.subscription
    config = read_json_file(config_file, "job config file")
    cluster_id = resource_id(cluster, "clusters", group, workspace, subscription) if cluster else None
    nfs_id = resource_id(nfs, "fileServers", group, workspace, subscription) if nfs else None
    body = job_body(config, cluster_id=cluster_id, node_count=node_count, priority=priority,
                    std_out_err_path_prefix=std_out_err_path_prefix,
                    mounts=MountFlags(afs_name, afs_mount_path, bfs_name, bfs_mount_path, nfs_id, nfs_mount_path),
                    storage=Storage(storage_account_name, storage_account_key))
    if not via_queue:
        show(client.jobs.create(group, workspace, experiment, name, body), output, COLUMNS)
        return
    sent = client.by_message().submit_job(subscription, group, workspace, experiment, name, body,
                                          message_id=message_id, wait=timeout if wait else None)
    if isinstance(sent, str):
        console.print(f"Sent the job {name} as message {sent}; `batchai job show` tells when it is made.",
                      markup=False)
    else:
        show(sent.resource_as(Job), output, COLUMNS)


@app.command("show")
def show_job(name: NameOpt, experiment: ExperimentOpt, group: GroupOpt = None, workspace: WorkspaceOpt = None,
             output: OutputOpt = Output.table) -> None:
    """Show a job: its state, exit code and errors."""
    client, group, workspace = _where(group, workspace)
    job = client.jobs.get(group, workspace, experiment, name)
    show(job, output, COLUMNS)
    if output is Output.table:
        _print_errors(job)


@app.command("list")
def list_jobs(experiment: ExperimentOpt, group: GroupOpt = None, workspace: WorkspaceOpt = None,
              output: OutputOpt = Output.table) -> None:
    """List an experiment's jobs."""
    client, group, workspace = _where(group, workspace)
    show(client.jobs.list(group, workspace, experiment), output, COLUMNS, title="jobs")


@app.command("terminate")
def terminate(name: NameOpt, experiment: ExperimentOpt, group: GroupOpt = None, workspace: WorkspaceOpt = None,
              yes: YesOpt = False) -> None:
    """Stop a job: a queued one fails at once, a running one once its nodes stopped its processes."""
    client, group, workspace = _where(group, workspace)
    confirm(f"Terminate the job {name}?", yes)
    client.jobs.terminate(group, workspace, experiment, name)
    console.print(f"Terminating the job {name}: it is now "
                  f"{state_of(client.jobs.get(group, workspace, experiment, name))}.")


@app.command("delete")
def delete(name: NameOpt, experiment: ExperimentOpt, group: GroupOpt = None, workspace: WorkspaceOpt = None,
           yes: YesOpt = False) -> None:
    """Delete a job (stopping it first if it runs)."""
    client, group, workspace = _where(group, workspace)
    confirm(f"Delete the job {name}?", yes)
    client.jobs.delete(group, workspace, experiment, name)
    console.print(f"Deleted the job {name}.")


@app.command("wait")
def wait(name: NameOpt, experiment: ExperimentOpt, group: GroupOpt = None, workspace: WorkspaceOpt = None,
         timeout: Annotated[float | None, typer.Option("--timeout", min=0, show_default=False,
                                                       help="Give up after this many seconds.")] = None,
         interval: Annotated[float, typer.Option("--interval", min=0.1, help="Seconds between polls.")] = 1.0,
         lines: Annotated[int, typer.Option("--lines", min=0, help="Lines of stdout shown while it runs.")] = 10,
         ) -> None:
    """Wait for the job to end, showing its state and the tail of its stdout. Exit code 0 when it
    succeeded, 1 when it failed."""
    client, group, workspace = _where(group, workspace)
    started = time.monotonic()
    tail: deque[str] = deque(maxlen=lines)
    partial = [""]
    latest: list[Job] = []

    def view() -> Panel:
        state = state_of(latest[-1]) if latest else "…"
        header = Text.assemble((f"{name}", "bold"), "  ", (state, _STYLE.get(state, "yellow")),
                               f"  {time.monotonic() - started:.0f} s")
        body = Text("\n".join([*tail, partial[0]][-lines:] if lines else []), style="dim")
        return Panel(Group(header, body), title="batchai job wait", title_align="left")

    with Live(view(), console=console, refresh_per_second=4, transient=True) as live:
        def polled(job: Job) -> None:
            latest.append(job)
            live.update(view())

        for text in client.jobs.follow_file(group, workspace, experiment, name, interval=interval, timeout=timeout,
                                            on_poll=polled, missing_ok=True):
            pieces = (partial[0] + text).split("\n")
            partial[0] = pieces.pop()
            tail.extend(pieces)
            live.update(view())
    job = latest[-1]
    state = state_of(job)
    code = _exit_code(job)
    console.print(Text.assemble(f"Job {name} ", (state, _STYLE.get(state, "")),
                                f" (exit code {code})" if code is not None else "",
                                f" after {time.monotonic() - started:.0f} s."))
    _print_errors(job)
    raise typer.Exit(0 if state == "succeeded" else 1)


_STYLE = {"succeeded": "bold green", "failed": "bold red", "running": "bold cyan", "queued": "yellow",
          "terminating": "magenta"}


def _print_errors(job: Job) -> None:
    for error in dig(job, "properties", "execution_info", "errors") or []:
        errors.print(f"  {error.code}: {error.message}", markup=False)


# -- files ----------------------------------------------------------------------------------------
@file_app.command("list")
def file_list(job: JobOpt, experiment: ExperimentOpt, group: GroupOpt = None, workspace: WorkspaceOpt = None,
              output_directory_id: DirectoryOpt = "stdouterr", path: PathOpt = None,
              expiry: Annotated[int, typer.Option("--expiry", min=1, max=10080,
                                                  help="Minutes the download URLs stay valid.")] = 60,
              output: OutputOpt = Output.table) -> None:
    """List a job's files (with download URLs in -o json)."""
    client, group, workspace = _where(group, workspace)
    files = client.jobs.list_output_files(group, workspace, experiment, job, output_directory_id, path, expiry)
    show(files, output, FILE_COLUMNS, title="files")


@file_app.command("stream")
def file_stream(job: JobOpt, experiment: ExperimentOpt, group: GroupOpt = None, workspace: WorkspaceOpt = None,
                file_name: Annotated[str | None, typer.Option(
                    "--file-name", "-f", show_default=False,
                    help="The file to follow; by default the master task's stdout: stdout.txt, or stdout-wk-0.txt "
                         "(TensorFlow), stdout-0.txt (PyTorch, Caffe2).")] = None,
                output_directory_id: DirectoryOpt = "stdouterr",
                interval: Annotated[float, typer.Option("--interval", min=0.1, help="Seconds between reads.")] = 1.0,
                ) -> None:
    """Print a job's file as it grows until the job ends; a file the ended job never made is an
    error (exit code 1)."""
    client, group, workspace = _where(group, workspace)
    for text in client.jobs.follow_file(group, workspace, experiment, job, file_name, output_directory_id,
                                        interval=interval):
        sys.stdout.write(text)
        sys.stdout.flush()


@file_app.command("download")
def file_download(job: JobOpt, experiment: ExperimentOpt, group: GroupOpt = None, workspace: WorkspaceOpt = None,
                  output_directory_id: DirectoryOpt = "stdouterr", path: PathOpt = None,
                  file_name: Annotated[str | None, typer.Option("--file-name", "-f", show_default=False,
                                                                help="Only this file.")] = None,
                  dest: Annotated[Path, typer.Option("--dest", help="Folder to download into.")] = Path("."),
                  ) -> None:
    """Download a job's files (an output directory, with its folders) into --dest."""
    client, group, workspace = _where(group, workspace)
    wanted: list[tuple[str, File]] = []
    folders = [path or ""]
    while folders:
        folder = folders.pop()
        for entry in client.jobs.list_output_files(group, workspace, experiment, job, output_directory_id,
                                                   folder or None):
            relative = posixpath.join(folder, entry.name or "")
            if entry.file_type == "directory":
                if file_name is None:
                    folders.append(relative)
            elif entry.download_url and (file_name is None or entry.name == file_name):
                wanted.append((relative, entry))
    if not wanted:
        raise UserError(f"No file{' named ' + file_name if file_name else ''} in the job's "
                        f"{output_directory_id} directory{' under ' + path if path else ''}.")
    total = sum(dig(f, "properties", "content_length") or 0 for _, f in wanted)
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  console=console, transient=True) as progress:
        task = progress.add_task(f"{len(wanted)} file(s)", total=total or None)
        for relative, entry in sorted(wanted, key=lambda item: item[0]):
            target = _inside(dest, relative)
            size = client.save(entry.download_url or "", target, lambda n: progress.advance(task, n))
            console.print(f"{target} ({size} bytes)", markup=False)


def _inside(dest: Path, relative: str) -> Path:
    """dest/relative, refusing a name that would leave dest."""
    target = (dest / relative).resolve()
    if not target.is_relative_to(dest.resolve()):
        raise UserError(f"The file name '{relative}' would leave {dest}; not written.")
    return target


# -- nodes ----------------------------------------------------------------------------------------
@node_app.command("list")
def node_list(job: JobOpt, experiment: ExperimentOpt, group: GroupOpt = None, workspace: WorkspaceOpt = None,
              output: OutputOpt = Output.table) -> None:
    """The nodes a running job uses: ids, addresses and SSH ports."""
    client, group, workspace = _where(group, workspace)
    show(client.jobs.list_remote_login_information(group, workspace, experiment, job), output, NODE_COLUMNS,
         title="nodes")
