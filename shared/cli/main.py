"""The `batchai` command: `az batchai`'s command groups, plus `configure`, `local up` and `demo`.

Every failure a user can cause or meet (a mistake in the command line or a config file, an error
answered by the service, no service at all) ends as one line on stderr and a non-zero exit code,
never a traceback.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from typer._click.exceptions import NoArgsIsHelpError, UsageError  # typer vendors click

from shared.cli import clusters, jobs, resources, sweeps, ui
from shared.cli.common import Query, UserError, console, errors, new_session, session
from shared.client import ClientError
from shared.client.config import ENVIRONMENT, config_file, resolve, write_file

app = typer.Typer(help="Batch AI, rebuilt: clusters, jobs and their queues, on Azure or on this machine.",
                  no_args_is_help=True, pretty_exceptions_enable=False,
                  context_settings={"help_option_names": ["-h", "--help"]})
local_app = typer.Typer(help="Run the control plane on this machine.", no_args_is_help=True)
app.add_typer(local_app, name="local")
app.add_typer(resources.workspace_app, name="workspace")
app.add_typer(clusters.app, name="cluster")
app.add_typer(resources.file_server_app, name="file-server")
app.add_typer(resources.experiment_app, name="experiment")
app.add_typer(jobs.app, name="job")
app.add_typer(resources.event_app, name="event-subscription")
app.add_typer(sweeps.app, name="sweep")
app.command("ui")(ui.ui)


@app.callback()
def root(
    endpoint: Annotated[str | None, typer.Option("--endpoint", show_default=False,
                                                 help="The service's URL (default: BATCHAI_ENDPOINT, the config "
                                                      "file, or a local host started in this folder).")] = None,
    subscription: Annotated[str | None, typer.Option("--subscription", show_default=False,
                                                     help="Subscription id (default: configured, or the local one)."
                                                     )] = None,
) -> None:
    new_session(endpoint, subscription)


@app.command()
def configure(
    endpoint: Annotated[str | None, typer.Option("--endpoint", show_default=False, help="The service's URL.")] = None,
    subscription: Annotated[str | None, typer.Option("--subscription", show_default=False,
                                                     help="Subscription id.")] = None,
    group: Annotated[str | None, typer.Option("--resource-group", "-g", show_default=False,
                                              help="Default resource group.")] = None,
    workspace: Annotated[str | None, typer.Option("--workspace", "-w", show_default=False,
                                                  help="Default workspace.")] = None,
    location: Annotated[str | None, typer.Option("--location", "-l", show_default=False,
                                                 help="Default location of new workspaces.")] = None,
    servicebus: Annotated[str | None, typer.Option(
        "--servicebus", show_default=False,
        help="Connection string of the Service Bus namespace that takes requests by message (--via-queue).")] = None,
) -> None:
    """Save defaults (an empty value removes one), then show the settings in force and where each
    comes from. Environment variables BATCHAI_ENDPOINT, ..._SUBSCRIPTION, ..._RESOURCE_GROUP,
    ..._WORKSPACE, ..._LOCATION and ..._SERVICEBUS override the file; flags override both."""
    path = config_file()
    given = {"endpoint": endpoint, "subscription": subscription, "resource_group": group, "workspace": workspace,
             "location": location, "servicebus": servicebus}
    if any(v is not None for v in given.values()):
        write_file(path, given)
        console.print(f"Saved to {path}", markup=False)
    config = resolve()
    table = Table("Setting", "Value", "From", header_style="bold", box=None, pad_edge=False)
    for key in ENVIRONMENT:
        secret = key in ("token", "servicebus")  # a token, a shared access key: never shown
        value = ("(set)" if getattr(config, key) else None) if secret else getattr(config, key)
        table.add_row(key, value or "-", config.sources.get(key, "default" if value else "not set"))
    console.print(table)


@local_app.command("up")
def local_up(
    data_dir: Annotated[Path, typer.Option(help="Folder that keeps the state between runs.")] = Path(".batchai"),
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 to serve the API on (0: any free port).")] = 7071,
    list_functions: Annotated[bool, typer.Option("--list-functions", help="List every function it hosts.")] = False,
    workers: Annotated[int | None, typer.Option(
        min=1, max=64, show_default="the machine's cores",
        help="Host instances over the same data folder, as Functions scales out: all serve HTTP on the port, "
             "each runs whichever queue trigger or timer it gets.")] = None,
) -> None:
    """Start the local host: the Batch AI API on 127.0.0.1 (BATCHAI_HOST_ADDRESS), state in DATA_DIR. Ctrl-C stops it."""
    flags = ["--data-dir", str(data_dir), "--port", str(port)] + (["--list-functions"] if list_functions else [])
    flags += ["--workers", str(workers)] if workers is not None else []
    _exec_host("up", flags)


@local_app.command("down")
def local_down(
    data_dir: Annotated[Path, typer.Option(help="Folder of the local host.")] = Path(".batchai"),
) -> None:
    """Stop the local host of DATA_DIR and its nodes (state stays for the next start)."""
    _exec_host("down", ["--data-dir", str(data_dir)])


def _exec_host(command: str, flags: list[str]) -> None:
    """Become the local host's own program (shared/localhost/__main__.py): same process, signals and
    exit code, and the client imports nothing of the server."""
    argv = [sys.executable, "-m", "shared.localhost", command, *flags]
    sys.stdout.flush()
    os.execv(sys.executable, argv)


@app.command()
def demo(
    epochs: Annotated[int, typer.Option(help="Epochs of the demo's training.")] = 60,
    output_dir: Annotated[Path, typer.Option(help="Where the job's outputs are downloaded.")] = Path("demo-output"),
) -> None:
    """Run the product's main job on a local 2-node cluster with `batchai` commands: distributed
    PyTorch training, its stdout followed as it runs, its model downloaded at the end."""
    from shared.demo import run

    run(output_dir=output_dir, epochs=epochs)


def main(argv: list[str] | None = None) -> None:
    """Run the command; exit with its code, a user's mistake or a service's refusal in one line, and
    anything unexpected in one line too (never a traceback)."""
    try:
        args = Query.take(sys.argv[1:] if argv is None else list(argv))
        code = app(args=args, prog_name="batchai", standalone_mode=False)
    except NoArgsIsHelpError as exc:  # `batchai job`: the group's help, as `batchai job --help` shows it
        text = exc.format_message()  # the help; typer's rich help printed itself when the error was made
        if text:
            console.print(text, markup=False, highlight=False)
        code = 0
    except UsageError as exc:
        hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx else ""
        code = _fail(f"{exc.format_message()}{hint}", 2)
    except typer.TyperException as exc:
        code = _fail(str(exc), getattr(exc, "exit_code", 1))
    except (UserError, ClientError, TimeoutError) as exc:
        code = _fail(str(exc), 1)
    except (typer.Abort, KeyboardInterrupt):
        code = _fail("Interrupted.", 130)
    except Exception as exc:  # a bug, or an answer no one foresaw: still one line, never a traceback
        code = _fail(f"unexpected {type(exc).__name__}: {exc} (please report this)", 1)
    finally:
        session().close()
    sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str, code: int) -> int:
    message = " ".join(line.strip() for line in message.splitlines() if line.strip())  # always one line
    errors.print(f"batchai: error: {message}", markup=False, soft_wrap=True)
    return code
