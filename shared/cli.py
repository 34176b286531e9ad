"""The `batchai` command."""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Annotated

import typer

from shared.settings import Settings

app = typer.Typer(help="Batch AI, rebuilt: clusters, jobs and their queues, on Azure or on this machine.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
local_app = typer.Typer(help="Run the control plane on this machine.", no_args_is_help=True)
app.add_typer(local_app, name="local")


@local_app.command("up")
def local_up(
    data_dir: Annotated[Path, typer.Option(help="Folder that keeps the state between runs.")] = Path(".batchai"),
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 to serve the API on (0: any free port).")] = 7071,
) -> None:
    """Start the local host: the Batch AI API on 127.0.0.1, state in DATA_DIR. Ctrl-C stops it."""
    from shared.localhost.host import LocalHost

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env(data_dir=data_dir)
    LocalHost(settings, port=port, echo=functools.partial(print, flush=True)).run()


@app.command()
def demo(
    epochs: Annotated[int, typer.Option(help="Epochs of the demo's training.")] = 60,
    output_dir: Annotated[Path, typer.Option(help="Where the job's outputs are downloaded.")] = Path("demo-output"),
) -> None:
    """Run the product's main job on a local 2-node cluster: distributed PyTorch training, its
    stdout shown as it runs, its model downloaded at the end."""
    from shared.demo import run

    run(output_dir=output_dir, epochs=epochs)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
