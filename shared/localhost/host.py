"""`batchai local up`: the FunctionApp on 127.0.0.1 with embedded state, until Ctrl-C."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path

import uvicorn

from shared import gc_tuning, lanes, leases, telemetry, watchdog
from shared.adapters.local.sqlite_messaging import SqliteMessaging
from shared.auth import local_token
from shared.composition import Services, build_services, use_services
from shared.localhost.amqp.door import ServiceBusDoor
from shared.localhost.data_folder import FolderInUse, claim_for_host, make_private
from shared.localhost.functions_index import IndexedFunction, index, load_app
from shared.localhost.http_server import FunctionsHttpApp
from shared.localhost.instances import READY_LINE, PeerWakeups, Supervisor, singleton_timer
from shared.localhost.queue_pump import QueuePump
from shared.localhost.router import Router
from shared.localhost.timers import resolve_schedule, run_timer
from shared.settings import Settings

log = logging.getLogger(__name__)


class LocalHost:
    def __init__(self, settings: Settings, *, host: str = "127.0.0.1", port: int = 7071,
                 app_module: str = "function_app", echo: Callable[[str], None] = print,
                 list_functions: bool = False, workers: int = 1, instance: int | None = None,
                 listen_fd: int | None = None) -> None:
        self.settings = settings
        self.workers = workers  # > 1: a supervisor of that many instances (shared/localhost/instances.py)
        self.instance = instance  # set: one instance of a supervisor's, serving on its socket listen_fd
        self.listen_fd = listen_fd
        self.host = host
        self.port = port
        self.app_module = app_module
        self.echo = echo
        self.list_functions = list_functions
        self.endpoint = ""
        self.door: ServiceBusDoor | None = None

    def run(self) -> None:
        """Serve until interrupted; state stays in the data folder for the next start."""
        make_private(self.settings.data_dir)  # first: everything after is born private
        if self.instance is None:  # the deployment's own start and stop: one host per folder
            try:
                claim_for_host(self.settings.data_dir)
            except FolderInUse as refused:
                self.echo(str(refused))
                raise SystemExit(1) from None
        if self.workers > 1:
            self._supervise()
            return
        telemetry.setup(self.settings, "batchai-localhost")
        local_token.ensure(self.settings.token_path)  # the owner's token, for the CLI in this folder
        svc = build_services(self.settings)
        use_services(svc)
        alone = self.instance is None  # the only host: the deployment's start and stop are its own
        if alone:
            leases.clear_all(svc.store)  # this host is the only one: leases of an earlier run are void
            watchdog.resume_all(svc)  # nobody could heartbeat while it was down: fresh graces
            create_static_entities(svc)
        functions = index(load_app(self.app_module))
        peers = None
        if not alone:  # one invocation per timer period across the instances; wake-ups reach them all
            functions = [singleton_timer(f, svc.store, svc.clock, self.settings) if f.trigger_type == "timerTrigger" else f
                         for f in functions]
            peers = PeerWakeups(svc.wakeups, self.settings.data_dir, svc.messaging).start()
        pump = QueuePump(svc.messaging, functions, clock=svc.clock)
        pump.start()
        gc_tuning.settle_after_start()
        try:
            self.door = self._open_door(svc) if alone else None
            asyncio.run(self._serve(svc, functions))
        except KeyboardInterrupt:
            pass  # uvicorn re-raises the Ctrl-C it handled; the shutdown was already clean
        finally:
            pump.stop()
            if self.door is not None:
                self.door.stop()  # before the queues close under it
            if alone:
                self._stop_deployment(svc)
            if peers is not None:
                peers.close()
            use_services(None)
            svc.close()
        if alone:
            self.echo("Batch AI local host stopped")

    def _stop_deployment(self, svc: Services) -> None:
        """A clean stop of the last host takes the local nodes with it, and its endpoint."""
        stop_nodes = getattr(svc.pool, "stop_all", None)
        if stop_nodes is not None:
            stop_nodes()
        self._endpoint_file.unlink(missing_ok=True)

    def _supervise(self) -> None:
        """`--workers N`: this process supervises N instances (shared/localhost/instances.py)."""
        functions = index(load_app(self.app_module))

        def ready(endpoint: str, svc: Services) -> None:
            self.door = self._open_door(svc)
            self._announce(endpoint, functions)

        def finish(svc: Services) -> None:
            if self.door is not None:
                self.door.stop()
            self._stop_deployment(svc)
            svc.close()

        Supervisor(self.settings, workers=self.workers, host=self.host, port=self.port, echo=self.echo,
                   on_ready=ready).run(create_static_entities, finish)
        self.echo("Batch AI local host stopped")

    def _open_door(self, svc: Services) -> ServiceBusDoor | None:
        """The embedded queues' AMQP door, for Service Bus clients (with Service Bus itself, clients go there)."""
        if not isinstance(svc.messaging, SqliteMessaging):
            return None
        return ServiceBusDoor(svc.messaging, self.settings.data_dir, port=self.settings.amqp_port).start()

    @property
    def _endpoint_file(self) -> Path:
        return self.settings.endpoint_file

    async def _serve(self, svc: Services, functions: list[IndexedFunction]) -> None:
        # Handshakes take at most their slots; one thread more answers the creates beyond them (429) at once.
        app = FunctionsHttpApp(Router(functions), self.settings.max_request_bytes, self.settings.http_threads,
                               waiting_threads=self.settings.webhook_handshake_concurrency + 1)
        config = uvicorn.Config(app, host=self.host, port=self.port, log_level="warning", access_log=False,
                                log_config=None,  # our own logging (shared/logs.py): its format, its redaction
                                lifespan="off", http="httptools", loop="asyncio", timeout_graceful_shutdown=5)
        server = uvicorn.Server(config)
        timers = [asyncio.create_task(run_timer(f, svc.clock, self.settings)) for f in functions if f.trigger_type == "timerTrigger"]
        announce = asyncio.create_task(self._announce_when_ready(server, functions))
        closing = asyncio.create_task(self._end_waits_on_exit(server, svc))
        # An instance accepts on its supervisor's socket (the kernel spreads connections over instances).
        sockets = None if self.listen_fd is None else [socket.socket(fileno=self.listen_fd)]
        try:
            await server.serve(sockets=sockets)
        finally:
            for task in (*timers, announce, closing):
                task.cancel()
            app.close()

    @staticmethod
    async def _end_waits_on_exit(server: uvicorn.Server, svc: Services) -> None:
        """Long-polls answer at once when the host stops, so the graceful shutdown is quick."""
        while not server.should_exit:
            await asyncio.sleep(0.05)
        svc.wakeups.close()

    async def _announce_when_ready(self, server: uvicorn.Server, functions: list[IndexedFunction]) -> None:
        while not server.started:
            await asyncio.sleep(0.02)
        if self.instance is not None:  # the supervisor announces the deployment
            self.echo(READY_LINE.format(instance=self.instance) + f" (pid {os.getpid()})")
            return
        port = server.servers[0].sockets[0].getsockname()[1] if server.servers else self.port
        self._announce(f"http://{self.host}:{port}", functions)

    def _announce(self, endpoint: str, functions: list[IndexedFunction]) -> None:
        self.endpoint = endpoint
        if self.list_functions:
            self.echo("Functions:")
            for f in functions:
                if f.trigger_type == "httpTrigger":
                    self.echo(f"  {f.name}: [{','.join(f.methods)}] {self.endpoint}/{f.route}")
                else:
                    detail = (resolve_schedule(f.schedule, self.settings) if f.schedule
                              else f.queue_name or f.topic_name or "")
                    self.echo(f"  {f.name}: {f.trigger_type} {detail}")
        self._endpoint_file.write_text(self.endpoint + "\n")
        self.echo(f"Batch AI local host ready at {self.endpoint} (state in {self.settings.data_dir})")
        if self.door is not None:
            self.echo(f"Service Bus door at {self.door.endpoint}")
            self.echo(f"  Service Bus clients: the connection string is in {self.door.connection_file}")
        for line in banner(self.settings.data_dir, len([f for f in functions if f.trigger_type == "httpTrigger"]),
                           self.endpoint):
            self.echo(line)


def create_static_entities(svc: Services) -> None:
    """The queues and topics of the whole deployment (infra/main.bicep makes them on Azure)."""
    for queue, options in lanes.STATIC_QUEUES.items():
        svc.messaging.create_queue(queue, options)
    for topic, (options, subscriptions) in lanes.STATIC_TOPICS.items():
        svc.messaging.create_topic(topic, options)
        for name, sub_options in subscriptions.items():
            svc.messaging.create_subscription(topic, name, sub_options)


def banner(data_dir: Path, routes: int, endpoint: str) -> list[str]:
    """What to try next, shown once the host serves."""
    here = data_dir.resolve() == (Path.cwd() / ".batchai").resolve()
    where = "in this folder" if here else f"after `export BATCHAI_DATA_DIR={data_dir.resolve()}`"
    return [
        f"  {routes} HTTP routes; Ctrl-C stops the host and its nodes, state stays for the next start.",
        f"  Try, in another terminal {where}:",
        "    batchai workspace create -g demo -n ws",
        "    batchai cluster create -g demo -w ws -n cpu --target 2",
        "    batchai cluster show -g demo -w ws -n cpu",
        "  then experiments and jobs: `batchai job --help`, or the README's walkthrough.",
        f"  Web page: {endpoint}/ui/ (`batchai ui` opens it signed in; or paste the token of {data_dir / 'token'})",
    ]
