"""The local host's own entry point, `python -m shared.localhost up|down`: `batchai local up` and
`local down` hand over to it (exec), so the command-line client never imports the server, and the
server runs without the client's packages. Its supervisor starts its instances with it too."""

from __future__ import annotations

import argparse
import functools
import os
from pathlib import Path

from shared import logs
from shared.settings import Settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m shared.localhost", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="Serve the API on 127.0.0.1 until Ctrl-C (see `batchai local up --help`).")
    up.add_argument("--data-dir", type=Path, default=Path(".batchai"))
    up.add_argument("--port", type=int, default=7071)
    up.add_argument("--list-functions", action="store_true")
    up.add_argument("--workers", type=int, default=None)
    up.add_argument("--instance", type=int, default=None)  # started by the supervisor
    up.add_argument("--listen-fd", type=int, default=None)
    down = commands.add_parser("down", help="Stop the host of DATA_DIR and its nodes.")
    down.add_argument("--data-dir", type=Path, default=Path(".batchai"))
    args = parser.parse_args(argv)
    settings = Settings.from_env(data_dir=args.data_dir)
    echo = functools.partial(print, flush=True)
    if args.command == "down":
        from shared.localhost.instances import local_down

        local_down(settings, echo)
        return
    from shared.localhost.host import LocalHost

    logs.configure(settings)
    count = 1 if args.instance is not None else args.workers or os.cpu_count() or 1
    LocalHost(settings, host=settings.host_address, port=args.port, echo=echo, list_functions=args.list_functions,
              workers=count, instance=args.instance, listen_fd=args.listen_fd).run()


if __name__ == "__main__":
    main()
