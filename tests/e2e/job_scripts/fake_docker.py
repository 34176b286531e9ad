#!/usr/bin/env python3
"""Stands in for the `docker` command on a machine without a container engine: enough of `info`,
`login`, `run --detach`, `exec` and `rm --force` for the agent's use of them. A "container" is a
folder of $FAKE_DOCKER_STATE named after it; `exec` runs the command here, in the working folder
given, with only the variables named by `-e` (and FAKE_CONTAINER, the container's name), as a
container would see them. Every call is appended to $FAKE_DOCKER_STATE/calls.log. The image
"missing/image" cannot be pulled."""

import os
import subprocess
import sys
from pathlib import Path

STATE = Path(os.environ["FAKE_DOCKER_STATE"])
STATE.mkdir(parents=True, exist_ok=True)
args = sys.argv[1:]
with (STATE / "calls.log").open("a") as log:
    log.write(" ".join(args[:2]) + "\n")


def value_of(flag: str) -> str:
    return args[args.index(flag) + 1]


if args[0] == "info":
    sys.exit(0)
if args[0] == "login":
    sys.stdin.read()
    sys.exit(0)
if args[0] == "run":
    image = args[args.index("--entrypoint") + 2]
    if image == "missing/image":
        print("Unable to find image 'missing/image:latest' locally", file=sys.stderr)
        sys.exit(125)
    container = STATE / value_of("--name")
    container.mkdir()
    (container / "image").write_text(image)
    print(container.name)
    sys.exit(0)
if args[0] == "exec":
    names, rest = [], args[1:]
    while rest[0] in ("-e", "-w"):
        if rest[0] == "-e":
            names.append(rest[1])
        else:
            workdir = rest[1]
        rest = rest[2:]
    name, command = rest[0], rest[1:]
    if not (STATE / name).is_dir():
        print(f"Error response from daemon: No such container: {name}", file=sys.stderr)
        sys.exit(1)
    env = {n: os.environ[n] for n in names if n in os.environ} | {"FAKE_CONTAINER": name}
    sys.exit(subprocess.run(command, cwd=workdir, env=env).returncode)
if args[0] == "rm":
    for name in args[2:]:
        if not (STATE / name).is_dir():
            print(f"Error response from daemon: No such container: {name}", file=sys.stderr)
            sys.exit(1)
        (STATE / name / "image").unlink()
        (STATE / name).rmdir()
    sys.exit(0)
print(f"fake docker: {args[0]} is not faked", file=sys.stderr)
sys.exit(2)
