"""What every `batchai` command shares: its options, the client it talks through, and how it prints.

Options follow `az batchai`: `-g` resource group, `-w` workspace, `-n` name, `-o table|json|tsv`.
A resource group or workspace not given comes from the environment or `batchai configure`
(see `shared.client.config`). A user's mistake is a `UserError`: one line, exit code 1.
"""

from __future__ import annotations

import enum
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer
from rich.console import Console
from rich.table import Table

from shared.client import BatchAIClient, ClientConfig, resolve
from shared.ids import KINDS, ResourceRef
from shared.models import WireModel

# Tables piped to a file or another program are not cut to 80 columns.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
errors = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 200)


class UserError(Exception):
    """A mistake the user can fix; printed as one line, never with a traceback."""


class Output(enum.StrEnum):
    table = "table"
    json = "json"
    tsv = "tsv"


GroupOpt = Annotated[str | None, typer.Option("--resource-group", "-g", help="Resource group (default: configured).",
                                              show_default=False)]
WorkspaceOpt = Annotated[str | None, typer.Option("--workspace", "-w", help="Workspace (default: configured).",
                                                  show_default=False)]
NameOpt = Annotated[str, typer.Option("--name", "-n", help="Name of the resource.", show_default=False)]
ExperimentOpt = Annotated[str, typer.Option("--experiment", "-e", help="Experiment of the job.", show_default=False)]
JobOpt = Annotated[str, typer.Option("--job", "-j", help="Name of the job.", show_default=False)]
OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="Output format.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
# Requests by Service Bus message (shared/client/requests_by_message.py) instead of HTTP.
ViaQueueOpt = Annotated[bool, typer.Option(
    "--via-queue", help="Send the request as a Service Bus message (BATCHAI_SERVICEBUS, or the local host's door).")]
WaitOpt = Annotated[bool, typer.Option("--wait/--no-wait",
                                       help="With --via-queue: wait for the outcome on the reply queue.")]
TimeoutOpt = Annotated[float, typer.Option("--timeout", min=1, help="With --via-queue --wait: seconds to wait.")]
MessageIdOpt = Annotated[str | None, typer.Option(
    "--message-id", show_default=False,
    help="With --via-queue: the request's id; sending again with the same id makes it once.")]


@dataclass
class Session:
    """The settings in force for this run of the command (the root options and what they resolve to)."""

    endpoint: str | None = None
    subscription: str | None = None
    _config: ClientConfig | None = None
    _client: BatchAIClient | None = None

    def config(self) -> ClientConfig:
        if self._config is None:
            self._config = resolve({"endpoint": self.endpoint, "subscription": self.subscription})
        return self._config

    def client(self) -> BatchAIClient:
        if self._client is None:
            self._client = BatchAIClient(self.config())
        return self._client

    def group(self, given: str | None) -> str:
        value = given or self.config().resource_group
        if not value:
            raise UserError("No resource group: give --resource-group/-g, or set one with "
                            "`batchai configure --resource-group NAME`.")
        return value

    def workspace(self, group: str | None, workspace: str | None) -> tuple[str, str]:
        group = self.group(group)
        value = workspace or self.config().workspace
        if not value:
            raise UserError("No workspace: give --workspace/-w, or set one with "
                            "`batchai configure --workspace NAME`.")
        return group, value

    def is_local(self) -> bool:
        """Whether the service is a local host found in this folder (or on this machine's loopback)."""
        config = self.config()
        host = urlsplit(config.endpoint or "").hostname or ""
        return config.sources.get("endpoint") == "local host" or host == "localhost" or host.startswith("127.")

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


_current = [Session()]


def session() -> Session:
    return _current[0]


def new_session(endpoint: str | None, subscription: str | None) -> Session:
    """A fresh session for this run (the command may run several times in one process, as in tests)."""
    _current[0].close()
    _current[0] = Session(endpoint, subscription)
    return _current[0]


# -- printing -------------------------------------------------------------------------------------
Column = tuple[str, Callable[[Any], Any]]


class Query:
    """The global `--query` (JMESPath, as every az command has), taken out of the command line
    wherever it stands (`batchai job show ... --query jobOutputDirectoryPathSegment`)."""

    expression: Any = None  # a compiled jmespath expression

    @classmethod
    def take(cls, argv: list[str]) -> list[str]:
        """argv without --query and its value; the expression kept (a bad one is a UserError)."""
        import jmespath
        from jmespath.exceptions import JMESPathError

        cls.expression = None
        rest, given = [], None
        items = iter(argv)
        for arg in items:
            if arg == "--":
                rest += [arg, *items]
                break
            if arg == "--query":
                given = next(items, None)
                if given is None:
                    raise UserError("--query needs a JMESPath expression, e.g. --query properties.executionState.")
            elif arg.startswith("--query="):
                given = arg.removeprefix("--query=")
            else:
                rest.append(arg)
        if given is not None:
            try:
                cls.expression = jmespath.compile(given)
            except JMESPathError as exc:
                reason = str(exc).splitlines()[0].removeprefix("Invalid jmespath expression: ")
                raise UserError(f"--query '{given}' is not a JMESPath expression: {reason}") from None
        return rest


def az_view(wire: dict[str, Any]) -> dict[str, Any]:
    """A resource as az printed it, for --query: its properties also at the top (the SDK's models
    flatten them) and its resourceGroup; `properties.x` works as well as `x`."""
    view = {**wire, **(wire.get("properties") or {})} if isinstance(wire.get("properties"), dict) else dict(wire)
    group = id_part(wire.get("id"), "resourceGroups")
    if group:
        view.setdefault("resourceGroup", group)
    return view


def _print_query(wire: Any, output: Output) -> None:
    result = Query.expression.search(wire)
    if output is Output.tsv:
        values = result if isinstance(result, list) else [result]
        for value in values:
            row = list(value.values()) if isinstance(value, dict) else value if isinstance(value, list) else [value]
            print("\t".join("" if v is None else v if isinstance(v, str) else json.dumps(v) for v in row))
        return
    print(json.dumps(result, indent=2))


def show(items: WireModel | Iterable[WireModel] | None, output: Output, columns: Sequence[Column],
         *, title: str | None = None) -> None:
    """One resource or a list, as a table (the columns), JSON (the wire form) or TSV (the columns);
    with --query, what the expression picks from az's view of them (JSON, or TSV with -o tsv)."""
    single = isinstance(items, WireModel)
    rows: list[WireModel] = [items] if isinstance(items, WireModel) else list(items or [])
    if Query.expression is not None:
        views = [az_view(r.to_wire()) for r in rows]
        _print_query(views[0] if single else views, output)
        return
    if output is Output.json:
        wire = [r.to_wire() for r in rows]
        print(json.dumps(wire[0] if single else wire, indent=2))
        return
    values = [[_cell(getter(r)) for _, getter in columns] for r in rows]
    if output is Output.tsv:
        for row in values:
            print("\t".join(row))
        return
    if not rows and not single:
        console.print(f"(no {title or 'items'})", style="dim")
        return
    table = Table(*(name for name, _ in columns), title=None, header_style="bold", box=None, pad_edge=False)
    for row in values:
        table.add_row(*row)
    console.print(table)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(_cell(v) for v in value)
    return str(value)


def dig(obj: Any, *path: str) -> Any:
    """obj.a.b.c, None as soon as a step is missing (properties are optional in the models)."""
    for step in path:
        if obj is None:
            return None
        obj = getattr(obj, step, None)
    return obj


def id_part(arm_id: str | None, segment: str) -> str | None:
    """The name after `segment` in an ARM id (resourceGroups, workspaces, clusters, ...)."""
    if not arm_id:
        return None
    parts = [p for p in arm_id.split("/") if p]
    lowered = [p.lower() for p in parts]
    try:
        return parts[lowered.index(segment.lower()) + 1]
    except (ValueError, IndexError):
        return None


def resource_id(given: str, segment: str, group: str, workspace: str, subscription: str) -> str:
    """A name in this workspace, or a full ARM id as it is (clusters and file servers are named so)."""
    if "/" in given:
        if not any(ResourceRef.parse(given, kind) for kind in KINDS):
            raise UserError(f"'{given}' is neither a name nor a Batch AI resource id.")
        return given
    return (f"/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.BatchAI/workspaces/"
            f"{workspace}/{segment}/{given}")


def confirm(question: str, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise UserError(f"{question} Add --yes/-y to confirm when not at a terminal.")
    if not typer.confirm(question, default=False):
        raise typer.Exit(1)


def read_json_file(path: str, what: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as source:
            data = json.load(source)
    except FileNotFoundError:
        raise UserError(f"The {what} '{path}' does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"Cannot read the {what} '{path}': {exc}.") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"The {what} '{path}' is not valid JSON: {exc.msg} at line {exc.lineno}, "
                        f"column {exc.colno}.") from None
    if not isinstance(data, dict):
        raise UserError(f"The {what} '{path}' must hold a JSON object such as {{\"properties\": {{...}}}}.")
    return data


# -- storage and mounts, shared by `cluster create` and `job create` ------------------------------
AccountOpt = Annotated[str | None, typer.Option(
    "--storage-account-name", envvar="AZURE_BATCHAI_STORAGE_ACCOUNT", show_envvar=True, show_default=False,
    help="Storage account of --afs-name/--bfs-name and of the config file's <AZURE_BATCHAI_STORAGE_ACCOUNT>.")]
KeyOpt = Annotated[str | None, typer.Option(
    "--storage-account-key", envvar="AZURE_BATCHAI_STORAGE_KEY", show_envvar=False, show_default=False,
    help="Its key (or AZURE_BATCHAI_STORAGE_KEY); sent to the service, never shown.")]
AfsOpt = Annotated[str | None, typer.Option("--afs-name", help="Azure file share to mount.", show_default=False)]
AfsPathOpt = Annotated[str, typer.Option("--afs-mount-path", help="Where, relative to the mount root.")]
BfsOpt = Annotated[str | None, typer.Option("--bfs-name", help="Blob container to mount.", show_default=False)]
BfsPathOpt = Annotated[str, typer.Option("--bfs-mount-path", help="Where, relative to the mount root.")]
NfsOpt = Annotated[str | None, typer.Option("--nfs", help="File server (name or id) to mount.", show_default=False)]
GenerateKeysOpt = Annotated[bool, typer.Option(
    "--generate-ssh-keys", help="Use ~/.ssh/id_rsa.pub as the admin's key, making the pair first if missing.")]
# `az batchai cluster create -l` (before workspaces): clusters live where their workspace is.
LocationOpt = Annotated[str | None, typer.Option("--location", "-l", hidden=True, show_default=False)]
NfsPathOpt = Annotated[str, typer.Option("--nfs-mount-path", help="Where, relative to the mount root.")]


def add_show_list_delete(app: typer.Typer, *, noun: str, plural: str, operations: Callable[[BatchAIClient], Any],
                         columns: Sequence[Column], delete_help: str,
                         delete_question: str = "Delete the {noun} {name}?") -> None:
    """The `show`, `list` and `delete` commands of a kind of resource that lives in a workspace."""

    def show_one(name: NameOpt, group: GroupOpt = None, workspace: WorkspaceOpt = None,
                 output: OutputOpt = Output.table) -> None:
        s = session()
        show(operations(s.client()).get(*s.workspace(group, workspace), name), output, columns)

    def list_all(group: GroupOpt = None, workspace: WorkspaceOpt = None, output: OutputOpt = Output.table) -> None:
        s = session()
        show(operations(s.client()).list(*s.workspace(group, workspace)), output, columns, title=plural)

    def delete(name: NameOpt, group: GroupOpt = None, workspace: WorkspaceOpt = None, yes: YesOpt = False) -> None:
        s = session()
        where = s.workspace(group, workspace)
        confirm(delete_question.format(noun=noun, name=name), yes)
        operations(s.client()).delete(*where, name)
        console.print(f"Deleted the {noun} {name}.", markup=False)

    show_one.__doc__ = f"Show one {noun}."
    list_all.__doc__ = f"List the workspace's {plural}."
    delete.__doc__ = delete_help
    app.command("show")(show_one)
    app.command("list")(list_all)
    app.command("delete")(delete)
