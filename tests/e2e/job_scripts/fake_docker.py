#!/usr/bin/env python3
"""Stands in for the `docker` command on a machine without a container engine: enough of `info`,
`login`, `run --detach`, `exec` and `rm --force` for the agent's use of them. A "container" is a
folder of $FAKE_DOCKER_STATE named after it; `exec` runs the command here, in the working folder
given, with only the variables named by `-e` (and FAKE_CONTAINER, the container's name), as a
container would see them (and the image's PATH: this one's). Every call is appended to
$FAKE_DOCKER_STATE/calls.log (its first two words) and calls.jsonl (its argv, DOCKER_CONFIG and, for
`login`, that folder's mode). The image "missing/image" cannot be pulled.

A private registry is described by $FAKE_DOCKER_STATE/registry.json ({"server", "username",
"sha256" of the password}): `login --password-stdin` to it checks the password and stores it in
$DOCKER_CONFIG/config.json (0600) as Docker does; pulling an image of that server needs it there."""

import base64
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

STATE = Path(os.environ["FAKE_DOCKER_STATE"])
STATE.mkdir(parents=True, exist_ok=True)
args = sys.argv[1:]
with (STATE / "calls.log").open("a") as log:
    log.write(" ".join(args[:2]) + "\n")
CONFIG = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")
call = {"argv": args, "DOCKER_CONFIG": os.environ.get("DOCKER_CONFIG")}
if args[0] == "login" and CONFIG.is_dir():
    call["config_mode"] = oct(CONFIG.stat().st_mode & 0o777)
with (STATE / "calls.jsonl").open("a") as log:
    log.write(json.dumps(call) + "\n")
REGISTRY = json.loads((STATE / "registry.json").read_text()) if (STATE / "registry.json").is_file() else {}


def value_of(flag: str) -> str:
    return args[args.index(flag) + 1]


if args[0] == "info":
    sys.exit(0)
if args[0] == "login":
    password = sys.stdin.read().rstrip("\n")
    server = args[-1] if not args[-1].startswith("-") else "https://index.docker.io/v1/"
    expected = (REGISTRY.get("server"), REGISTRY.get("username"), REGISTRY.get("sha256"))
    if (server, value_of("--username"), hashlib.sha256(password.encode()).hexdigest()) != expected:
        print(f"Error response from daemon: Get \"https://{server}/v2/\": unauthorized: incorrect username or password",
              file=sys.stderr)
        sys.exit(1)
    CONFIG.mkdir(parents=True, exist_ok=True)
    auth = base64.b64encode(f"{value_of('--username')}:{password}".encode()).decode()
    (CONFIG / "config.json").write_text(json.dumps({"auths": {server: {"auth": auth}}}))
    (CONFIG / "config.json").chmod(0o600)
    print("Login Succeeded")
    sys.exit(0)
if args[0] == "run":
    image = args[args.index("--entrypoint") + 2]
    if image == "missing/image":
        print("Unable to find image 'missing/image:latest' locally", file=sys.stderr)
        sys.exit(125)
    if REGISTRY and image.startswith(REGISTRY["server"] + "/"):
        config = CONFIG / "config.json"
        auths = json.loads(config.read_text()).get("auths", {}) if config.is_file() else {}
        if REGISTRY["server"] not in auths:
            print(f"Error response from daemon: pull access denied for {image}", file=sys.stderr)
            sys.exit(125)
    container = STATE / value_of("--name")
    container.mkdir()
    (container / "image").write_text(image)
    print(container.name)
    sys.exit(0)
if args[0] == "exec":
    names, rest, workdir = [], args[1:], None
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
    image_env = {"PATH": os.environ.get("PATH", ""), "FAKE_DOCKER_STATE": str(STATE)}
    env = image_env | {n: os.environ[n] for n in names if n in os.environ} | {"FAKE_CONTAINER": name}
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
