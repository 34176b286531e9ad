"""`python -m node_bootstrap --node-dir DIR`: run the node agent for the node described in
DIR/bootstrap.json, until the control plane removes the node or SIGTERM."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from node_bootstrap.agent import Agent, Bootstrap


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="node_bootstrap", description=__doc__)
    parser.add_argument("--node-dir", required=True, type=Path, help="the node's own folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request would fill the node's log
    Agent(Bootstrap.load(args.node_dir.resolve())).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
