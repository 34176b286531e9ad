"""Fixtures of the contract suites that need a server of their own: the Service Bus test broker."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

try:  # `python -m pytest` from the repository root
    from tests.servers import free_port, running_server
except ModuleNotFoundError:  # plain `pytest`: only tests/ itself is on sys.path
    from servers import free_port, running_server  # type: ignore[no-redef]

_REPO = Path(__file__).resolve().parents[2]


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


@pytest.fixture
def servicebus_messaging(servicebus_broker: str) -> Iterator[object]:
    """A Service Bus adapter on the session's test broker, closed after the test."""
    from shared.adapters.azure.servicebus_messaging import ServiceBusMessaging

    adapter = ServiceBusMessaging(servicebus_broker)
    yield adapter
    adapter.close()

