"""`python -m node_bootstrap --node-dir DIR`: run the node agent for the node described in
DIR/bootstrap.json, until the control plane removes the node or SIGTERM."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from node_bootstrap.agent import Agent, Bootstrap
from shared import gc_tuning, logs
from shared.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="node_bootstrap", description=__doc__)
    parser.add_argument("--node-dir", required=True, type=Path, help="the node's own folder")
    args = parser.parse_args(argv)
    logs.configure(Settings.from_env(), level=logging.INFO)  # BATCHAI_LOG_FORMAT, where the VM sets it
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request would fill the node's log
    agent = Agent(Bootstrap.load(args.node_dir.resolve()))
    gc_tuning.settle_after_start()
    agent.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
