"""Start and stop local stand-in servers (Cosmos DB, Azurite...) for the test run.

Servers are started as direct child processes and stopped by PID: killing a wrapper such as
``npx`` would leave the real server running, so callers pass the real executable.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from shared.localhost.instances import die_with_parent


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it; tiny race until the server binds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Block until host:port accepts a TCP connection; fail early if ``proc`` exits meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before listening on {host}:{port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:.0f} s") from None
            time.sleep(0.05)


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """Terminate the process by its PID, then kill it if it has not exited within ``timeout``."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


@contextlib.contextmanager
def running_server(argv: Sequence[str], host: str, port: int, *, cwd: str | Path | None = None,
                   env: dict[str, str] | None = None, start_timeout: float = 30.0
                   ) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``argv`` until the block ends; yields once ``host:port`` accepts connections.

    Output goes to a temporary file (a pipe nobody reads could fill up and block the server),
    and is included in the error if the server does not come up.
    """
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(list(argv), cwd=cwd, env={**os.environ, **(env or {})},
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                preexec_fn=die_with_parent)  # a run that crashes never reaches `finally`
        try:
            try:
                wait_for_port(host, port, start_timeout, proc)
            except (RuntimeError, TimeoutError) as exc:
                log.seek(0)
                output = log.read().decode(errors="replace")[-4000:]
                raise RuntimeError(f"{' '.join(argv)}: {exc}\n--- output ---\n{output}") from exc
            yield proc
        finally:
            stop_process(proc)
