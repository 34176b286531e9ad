"""`batchai ui`: open the web page (served by the service at <endpoint>/ui/) signed in.

The token travels in the URL's fragment (`#token=...`), which browsers never send to a server; the
page keeps it in the tab's sessionStorage and removes it from the address bar. What this command
prints never holds the token."""

from __future__ import annotations

import os
import webbrowser
from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode

import typer

from shared.cli.common import UserError, console, session


def ui(no_browser: Annotated[bool, typer.Option("--no-browser", help="Only print the page's URL and how to sign "
                                                                      "in.")] = False) -> None:
    """Open the web page that shows workspaces, clusters, jobs and their logs, signed in with the
    token in force (a local host's, BATCHAI_TOKEN or the config file's)."""
    config = session().config()
    if not config.endpoint:
        raise UserError("No endpoint: start `batchai local up` in this folder, set BATCHAI_ENDPOINT, "
                        "or run `batchai configure --endpoint URL`.")
    url = config.endpoint.rstrip("/") + "/ui/"
    if config.token and not no_browser:
        fragment = urlencode({"token": config.token, "subscription": config.subscription})
        if webbrowser.open(f"{url}#{fragment}"):
            console.print(f"Opened {url} in the browser, signed in.", markup=False)
            return
    console.print(url, markup=False, soft_wrap=True)
    console.print(f"Sign in there with {_token_hint(config.sources.get('token'))}; subscription "
                  f"{config.subscription}.", markup=False, soft_wrap=True)


def _token_hint(source: str | None) -> str:
    local = Path(os.environ.get("BATCHAI_DATA_DIR") or ".batchai") / "token"
    if source == "local host":
        return f"the local host's token: paste the content of {local}"
    if source is not None:
        return f"the token given by the {source} (BATCHAI_TOKEN, or `batchai configure`)"
    return f"a bearer token for the service (locally, the content of {local})"
