"""The test broker: the product's AMQP server (shared/localhost/amqp) over an in-memory namespace,
plus the ATOM management API on the same port.

One TCP port serves both sides of the namespace, as one connection string names one endpoint: the
server's accept loop hands connections that do not speak AMQP to the ATOM server (atom.py). Every
CBS token is accepted: the tests' clients use a well-known placeholder key.
"""

from __future__ import annotations

import socket
from typing import Any

from shared.localhost.amqp.server import AmqpServer

from .atom import AtomServer
from .store import Namespace


class Broker:
    """The whole test namespace on one port: AMQP (proton) and the ATOM management API (HTTP)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.namespace = Namespace()
        self.host = host
        self._atom: AtomServer | None = None
        self._amqp = AmqpServer(self.namespace, host, port, other=self._serve_http)
        self.port = self._amqp.port
        self._atom = AtomServer(self.namespace, f"{host}:{self.port}")

    @property
    def connection_string(self) -> str:
        """What a client needs: plain AMQP and HTTP (the emulator flag) to this host and port."""
        return (f"Endpoint=sb://{self.host}:{self.port};SharedAccessKeyName=RootManageSharedAccessKey;"
                "SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;")

    def start(self) -> Broker:
        self._amqp.start()
        return self

    def stop(self) -> None:
        try:
            self._amqp.stop()
        finally:
            if self._atom is not None:
                self._atom.server_close()

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve_http(self, sock: socket.socket, peer: Any) -> None:
        assert self._atom is not None
        self._atom.process_request(sock, peer)
