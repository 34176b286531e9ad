"""Where the client finds its service and its defaults.

Each setting comes from the first of: a command-line flag, an environment variable
(`BATCHAI_ENDPOINT`, `BATCHAI_SUBSCRIPTION`, `BATCHAI_RESOURCE_GROUP`, `BATCHAI_WORKSPACE`,
`BATCHAI_LOCATION`, `BATCHAI_TOKEN`, `BATCHAI_SERVICEBUS`), the config file `batchai configure` writes
(INI, section `[defaults]`; `BATCHAI_CONFIG_FILE` moves it), and last a local host started in the
current folder (its `.batchai/endpoint`, `.batchai/token` and `.batchai/servicebus` files, or those in
`$BATCHAI_DATA_DIR`). So against a local host started in the same folder nothing needs configuring.
`servicebus` is the connection string of the namespace whose queues take requests by message.
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Mapping
from pathlib import Path

import typer
from pydantic import BaseModel

LOCAL_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
SECTION = "defaults"
# setting name → environment variable
ENVIRONMENT = {"endpoint": "BATCHAI_ENDPOINT", "subscription": "BATCHAI_SUBSCRIPTION",
               "resource_group": "BATCHAI_RESOURCE_GROUP", "workspace": "BATCHAI_WORKSPACE",
               "location": "BATCHAI_LOCATION", "token": "BATCHAI_TOKEN", "servicebus": "BATCHAI_SERVICEBUS"}


class ClientConfig(BaseModel):
    """What a client needs to reach the service, and the defaults of its commands."""

    endpoint: str | None = None
    subscription: str = LOCAL_SUBSCRIPTION
    resource_group: str | None = None
    workspace: str | None = None
    location: str = "local"
    token: str | None = None
    servicebus: str | None = None
    # where each given setting came from ("flag", "environment", the file's path, "local host");
    # a setting left at its default is not in it
    sources: dict[str, str] = {}


def config_file(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    given = env.get("BATCHAI_CONFIG_FILE")
    return Path(given) if given else Path(typer.get_app_dir("batchai")) / "config"


def read_file(path: Path) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None)  # values are taken as written ('%' in URLs, tokens)
    parser.read(path, encoding="utf-8")
    return {k: v for k, v in parser[SECTION].items() if k in ENVIRONMENT and v} if parser.has_section(SECTION) else {}


def write_file(path: Path, values: Mapping[str, str | None]) -> dict[str, str]:
    """Merge `values` into the file (an empty string removes a setting); returns what it holds now."""
    current = read_file(path)
    for key, value in values.items():
        if value is None:
            continue
        if value == "":
            current.pop(key, None)
        else:
            current[key] = value
    parser = configparser.ConfigParser(interpolation=None)
    parser[SECTION] = current
    path.parent.mkdir(parents=True, exist_ok=True)
    # Private from the first byte: the file may hold a token.
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as out:
        parser.write(out)
    path.chmod(0o600)
    return current


def local_host(cwd: Path, env: Mapping[str, str]) -> dict[str, str]:
    """The endpoint, owner token and Service Bus door of a local host whose data folder is
    `$BATCHAI_DATA_DIR` or `./.batchai` (what it wrote there), or nothing."""
    data_dir = Path(env["BATCHAI_DATA_DIR"]) if env.get("BATCHAI_DATA_DIR") else cwd / ".batchai"
    found = {}
    for key, name in (("endpoint", "endpoint"), ("token", "token"), ("servicebus", "servicebus")):
        try:
            value = (data_dir / name).read_text().strip()
        except OSError:
            continue
        if value:
            found[key] = value
    return found if "endpoint" in found else {}


def resolve(flags: Mapping[str, str | None] | None = None, *, env: Mapping[str, str] | None = None,
            cwd: Path | None = None) -> ClientConfig:
    """The settings in force: flags, then environment, then the config file, then a local host."""
    env = os.environ if env is None else env
    path = config_file(env)
    layers: list[tuple[str, Mapping[str, str | None]]] = [
        ("flag", flags or {}),
        ("environment", {key: env.get(var) for key, var in ENVIRONMENT.items()}),
        (str(path), read_file(path)),
    ]
    values: dict[str, str] = {}
    sources: dict[str, str] = {}
    for source, layer in layers:
        for key, value in layer.items():
            if value and key not in values:
                values[key], sources[key] = value, source
    here = local_host(cwd or Path.cwd(), env)
    # The local host in this folder, with its token and door unless given; when the endpoint was
    # given and is this host's, only what is missing of the door.
    given = "endpoint" in values
    same_host = given and values["endpoint"].rstrip("/") == here.get("endpoint", "").rstrip("/")
    for key, value in here.items():
        if key not in values and (not given or (same_host and key == "servicebus")):
            values[key], sources[key] = value, "local host"
    return ClientConfig(**values, sources=sources)
