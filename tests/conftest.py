"""Fixtures shared by every test folder: local stand-in servers started by the test run itself."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

try:  # `python -m pytest` from the repository root (or tests/ made a package)
    from tests.servers import free_port, running_server
except ModuleNotFoundError:  # plain `pytest`: only tests/ itself is put on sys.path
    from servers import free_port, running_server  # type: ignore[no-redef]

_REPO = Path(__file__).resolve().parents[1]
_COSMOSDB_SERVER_CLI = Path(__file__).parent / "servers/node_modules/@vercel/cosmosdb-server/lib/cli.js"
_AZURITE_BLOB_CLI = Path(__file__).parent / "servers/node_modules/azurite/dist/src/blob/main.js"
# Azurite's development account: name and key are public (Azurite's README); tests only.
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "azurite: needs Azurite, the Azure Storage emulator from npm")


@pytest.fixture(scope="session")
def cosmos_server() -> Iterator[str]:
    """Endpoint of an in-memory Cosmos DB test server (@vercel/cosmosdb-server) for the session.

    Plain HTTP: about ten times faster per request here than its self-signed HTTPS; clients must
    then disable endpoint discovery (the account answers with https:// locations).
    """
    if not _COSMOSDB_SERVER_CLI.is_file():
        pytest.fail(f"{_COSMOSDB_SERVER_CLI} is missing: run `make test` (it installs tests/servers with npm)")
    node = shutil.which("node")
    if node is None:
        pytest.fail("`node` is not on PATH: the Cosmos DB test server needs Node.js 20")
    host, port = "127.0.0.1", free_port()
    argv = [node, str(_COSMOSDB_SERVER_CLI), "--host", host, "--port", str(port), "--no-ssl"]
    with running_server(argv, host, port):
        yield f"http://{host}:{port}"


@pytest.fixture(scope="session")
def servicebus_broker() -> Iterator[str]:
    """Connection string of the test AMQP 1.0 broker (tests/servicebus_broker), run for the session.

    A separate process: the broker and the SDK under test are both pure Python, so sharing one
    interpreter (and its GIL) would slow both down, and a wedged broker cannot hang the test run.
    """
    host, port = "127.0.0.1", free_port()
    argv = [sys.executable, "-m", "tests.servicebus_broker", "--host", host, "--port", str(port)]
    with running_server(argv, host, port, cwd=_REPO):
        yield (f"Endpoint=sb://{host}:{port};SharedAccessKeyName=RootManageSharedAccessKey;"
               "SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;")


@dataclass(frozen=True)
class AzuriteServer:
    blob_endpoint: str  # a template with {account}, as Settings.blob_endpoint
    account_name: str = AZURITE_ACCOUNT
    account_key: str = AZURITE_KEY

    def __repr__(self) -> str:
        return f"AzuriteServer(blob_endpoint={self.blob_endpoint!r})"


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzuriteServer]:
    """Azurite's blob service (in memory) for the session, and its development account.

    Node runs Azurite's blob-only entry point directly, so stopping the PID stops the server and no
    queue or table port is opened. It accepts the SDK's newer API versions and sends no telemetry."""
    if not _AZURITE_BLOB_CLI.is_file():
        pytest.fail(f"{_AZURITE_BLOB_CLI} is missing: run `make test` (it installs tests/servers with npm)")
    node = shutil.which("node")
    if node is None:
        pytest.fail("`node` is not on PATH: Azurite needs Node.js 20")
    host, port = "127.0.0.1", free_port()
    workspace = tmp_path_factory.mktemp("azurite")  # its working folder: anything it writes stays there
    argv = [node, str(_AZURITE_BLOB_CLI), "--blobHost", host, "--blobPort", str(port), "--inMemoryPersistence",
            "--skipApiVersionCheck", "--disableTelemetry", "--silent"]
    with running_server(argv, host, port, cwd=workspace):
        yield AzuriteServer(f"http://{host}:{port}/{{account}}")
