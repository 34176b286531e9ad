"""One span per invocation of a Functions trigger, and the Functions app's telemetry set up on its
first invocation (providers from the settings, the gauges of shared/gauges.py). Here rather than in
shared/telemetry.py: setting up reads the services, and telemetry stays free of the core."""

from __future__ import annotations

import contextlib
import functools
import inspect
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from shared import gauges, telemetry
from shared.composition import Services, services

F = TypeVar("F", bound=Callable[..., Any])
_lock = threading.Lock()
_gauges_for: list[Services] = []  # the services whose gauges are registered (at most one)


def traced_function(name: str) -> Callable[[F], F]:
    """One span per invocation of a Functions trigger (HTTP, Service Bus or timer). An HTTP request's
    `traceparent` header, or a message's `traceparent` property, is continued. The first invocation
    in a process sets telemetry up from the services' settings (see `_start_control_plane`)."""

    def wrap(function: F) -> F:
        if inspect.iscoroutinefunction(function):
            @functools.wraps(function)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                with _invocation(name, args, kwargs) as current:
                    return _record(current, await function(*args, **kwargs))

            return run_async  # type: ignore[return-value]

        @functools.wraps(function)
        def run(*args: Any, **kwargs: Any) -> Any:
            with _invocation(name, args, kwargs) as current:
                return _record(current, function(*args, **kwargs))

        return run  # type: ignore[return-value]

    return wrap


@contextlib.contextmanager
def _invocation(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Iterator[Span]:  # why: a trigger's own arguments, passed through
    _start_control_plane()
    # Whichever the host passes (the worker's or the local host's request and message classes): duck-typed.
    trigger: Any = next(iter([*args, *kwargs.values()]), None)
    attributes: dict[str, AttributeValue] = {"faas.name": name}
    carrier: Mapping[str, Any] | None = None
    kind = SpanKind.INTERNAL
    if hasattr(trigger, "route_params") and hasattr(trigger, "method"):  # an HttpRequest
        kind, carrier = SpanKind.SERVER, dict(trigger.headers)
        # The path only: a query may hold a signature or a function key.
        attributes |= {"faas.trigger": "http", "http.request.method": trigger.method,
                       "url.path": urlsplit(trigger.url).path}
    elif hasattr(trigger, "application_properties"):  # a ServiceBusMessage
        kind, carrier = SpanKind.CONSUMER, dict(trigger.application_properties or {})
        attributes |= {"faas.trigger": "pubsub", "messaging.message.id": trigger.message_id,
                       "messaging.message.delivery_count": trigger.delivery_count}
    else:
        attributes |= {"faas.trigger": "timer"}
    ctx = telemetry.extract(carrier) if carrier else None
    with telemetry.tracer().start_as_current_span(name, context=ctx, kind=kind,
                                                  attributes=telemetry.clean_attributes(attributes)) as current:
        yield current


def _record(current: Span, result: Any) -> Any:
    """The HTTP status on the invocation's span (an error status from 500 on)."""
    status = getattr(result, "status_code", None)
    if isinstance(status, int):
        current.set_attribute("http.response.status_code", status)
        if status >= 500:
            current.set_status(Status(StatusCode.ERROR))
    return result


def _start_control_plane() -> None:
    """Telemetry of a Functions app, set up lazily on its first invocation (never at import time):
    providers from the settings, and the gauges that read the state store and the queues."""
    if _gauges_for:
        return
    svc = services()
    telemetry.setup(svc.settings, "batchai-functions")
    with _lock:
        if _gauges_for:
            return
        _gauges_for.append(svc)
    gauges.observe(svc)
