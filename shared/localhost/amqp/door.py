"""The local host's "AMQP door": its request queues, reachable with the azure-servicebus SDK.

`ServiceBusDoor` serves `PortNamespace` (the exposed queues of the host's Messaging port) with the
AMQP server on 127.0.0.1, behind Service Bus's shared access signatures. The key is made at the
first start and kept in `<data-dir>/servicebus.key` (mode 0600), like the owner token; once the door
listens, the connection string that holds it is written to `<data-dir>/servicebus` (mode 0600),
and removed when the door stops.
"""

from __future__ import annotations

import os
from pathlib import Path

from shared.auth import local_token
from shared.localhost.amqp.port_namespace import PortNamespace
from shared.localhost.amqp.sas import KEY_NAME, SasAuthorizer, connection_string
from shared.localhost.amqp.server import AmqpServer
from shared.ports.messaging import Messaging

KEY_FILE = "servicebus.key"
CONNECTION_FILE = "servicebus"


class ServiceBusDoor:
    """Serves the host's door queues to Service Bus clients until stopped (binds at construction)."""

    def __init__(self, messaging: Messaging, data_dir: Path, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.data_dir = data_dir
        key = local_token.ensure(data_dir / KEY_FILE)
        self.namespace = PortNamespace(messaging)
        self._server = AmqpServer(self.namespace, host, port, authorize=SasAuthorizer(key, KEY_NAME))
        self.host = host
        self.port = self._server.port
        self.connection_string = connection_string(host, self.port, key, KEY_NAME)

    @property
    def endpoint(self) -> str:
        return f"sb://{self.host}:{self.port}"

    @property
    def connection_file(self) -> Path:
        return self.data_dir / CONNECTION_FILE

    def start(self) -> ServiceBusDoor:
        self._server.start()
        _write_private(self.connection_file, self.connection_string + "\n")
        return self

    def stop(self) -> None:
        self.connection_file.unlink(missing_ok=True)
        self._server.stop()

    def __enter__(self) -> ServiceBusDoor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _write_private(path: Path, text: str) -> None:
    """Replace path's content with text, readable by its owner only from the first byte on."""
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
        out.write(text)
    os.replace(partial, path)
