"""OpenTelemetry traces and metrics: one connected trace per job, from the create call to the job's
processes, and the scheduler's figures (meter "batchai").

The trace context travels as W3C `traceparent` in plain dicts: stored on the job document, in the
application properties of lane and work messages, in the agent's assignment, and in the job's
environment as `TRACEPARENT`. `Settings.otel_exporter` picks where spans and metrics go: `none`
(nothing is installed; the API's no-op providers cost next to nothing), `console`, `otlp` (OTLP over
HTTP to `otel_endpoint`), `azuremonitor` (Application Insights through the Azure Monitor OpenTelemetry
exporter, the optional extra `azuremonitor`: `otel_endpoint` is the connection string, or the exporter
reads APPLICATIONINSIGHTS_CONNECTION_STRING) or `file` (JSON lines under `<data_dir>/telemetry/`, what
the tests read).

Nothing here does I/O at import time; `setup` (or `configure`) runs once per process. Span
attributes are ids, names, counts and codes only: never a request's query or body, a command line,
an environment or a credential.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.trace import Link, Span, SpanKind
from opentelemetry.util.types import AttributeValue
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExportResult

    from shared.settings import Settings

log = logging.getLogger(__name__)
NAME = "batchai"  # the tracer's and the meter's
ENVIRONMENT_VARIABLE = "TRACEPARENT"  # what a job's processes see
EXPORTERS = ("none", "console", "otlp", "azuremonitor", "file")
_PROPAGATOR = TraceContextTextMapPropagator()
_lock = threading.Lock()
_configured: str | None = None  # the exporter this process set up, once


# -- setup ----------------------------------------------------------------------------------------------
def setup(settings: Settings, service_name: str) -> None:
    """Providers for this process from its settings (the control plane's processes)."""
    configure(settings.otel_exporter, service_name, endpoint=settings.otel_endpoint,
              directory=settings.data_dir.resolve() / "telemetry")


def configure(exporter: str, service_name: str, *, endpoint: str = "", directory: Path | None = None,
              attributes: Mapping[str, str] | None = None) -> None:
    """Install the tracer and meter providers once per process; later calls change nothing.
    `none` installs nothing, so that tracing costs only the API's no-op calls."""
    global _configured
    if exporter not in EXPORTERS:
        raise ValueError(f"unknown telemetry exporter {exporter!r}; one of {', '.join(EXPORTERS)}")
    with _lock:
        if _configured is not None or exporter == "none":
            return
        try:
            _install(exporter, service_name, endpoint, directory or Path("telemetry"), dict(attributes or {}))
        except ImportError as missing:  # an optional exporter not installed here (a VM's agent, say)
            log.warning("telemetry: the %s exporter is not installed (%s); nothing is exported", exporter, missing)
            return
        _configured = exporter
    log.info("telemetry: %s exporter for %s", exporter, service_name)


def _install(exporter: str, service_name: str, endpoint: str, directory: Path, attributes: dict[str, str]) -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    resource = Resource.create({"service.name": service_name, **attributes})
    spans, metric_exporter, interval_ms = _exporters(exporter, service_name, endpoint, directory)
    tracer_provider = TracerProvider(resource=resource)
    # A file is written as each span ends: a process that is killed loses nothing it finished.
    processor = SimpleSpanProcessor(spans) if exporter == "file" else BatchSpanProcessor(spans)
    tracer_provider.add_span_processor(processor)
    trace.set_tracer_provider(tracer_provider)
    reader = PeriodicExportingMetricReader(metric_exporter, export_interval_millis=interval_ms)
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))


def _exporters(exporter: str, service_name: str, endpoint: str, directory: Path) -> tuple[Any, Any, int]:
    """(span exporter, metric exporter, metric export interval in ms) for the chosen exporter."""
    from opentelemetry.sdk.metrics.export import ConsoleMetricExporter
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    if exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        base = endpoint.rstrip("/")  # empty: the exporter's own default or OTEL_EXPORTER_OTLP_* variables
        return (OTLPSpanExporter(endpoint=f"{base}/v1/traces" if base else None),
                OTLPMetricExporter(endpoint=f"{base}/v1/metrics" if base else None), 60_000)
    if exporter == "azuremonitor":
        from azure.monitor.opentelemetry.exporter import AzureMonitorMetricExporter, AzureMonitorTraceExporter

        options = {"connection_string": endpoint} if endpoint else {}
        return AzureMonitorTraceExporter(**options), AzureMonitorMetricExporter(**options), 60_000
    if exporter == "file":
        name = f"{service_name}-{os.getpid()}.jsonl"
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "metrics").mkdir(exist_ok=True)
        out = (directory / "metrics" / name).open("a", encoding="utf-8")
        return (JsonLinesSpanExporter(directory / name),
                ConsoleMetricExporter(out=out, formatter=lambda data: data.to_json(indent=None) + "\n"), 5_000)
    return ConsoleSpanExporter(), ConsoleMetricExporter(), 60_000


class JsonLinesSpanExporter:
    """One JSON line per finished span, appended to a file of its own per process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        from opentelemetry.sdk.trace.export import SpanExportResult

        lines = "".join(json.dumps(span_record(s), separators=(",", ":")) + "\n" for s in spans)
        with self._lock, self.path.open("a", encoding="utf-8") as out:
            out.write(lines)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Nothing is held open."""

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def span_record(span: ReadableSpan) -> dict[str, Any]:  # why: one JSON line of the file exporter
    """A span as a plain dict: hex ids, its parent's span id (None for a root), its attributes."""
    ctx = span.get_span_context()
    assert ctx is not None  # an SDK span always has one
    parent = span.parent
    return {
        "name": span.name, "kind": span.kind.name,
        "trace_id": trace.format_trace_id(ctx.trace_id), "span_id": trace.format_span_id(ctx.span_id),
        "parent_span_id": trace.format_span_id(parent.span_id) if parent is not None else None,
        "service": span.resource.attributes.get("service.name"),
        "start": span.start_time, "end": span.end_time, "status": span.status.status_code.name,
        "attributes": dict(span.attributes or {}),
        "links": [{"trace_id": trace.format_trace_id(k.context.trace_id),
                   "span_id": trace.format_span_id(k.context.span_id)} for k in span.links],
    }


# -- trace context in plain dicts ------------------------------------------------------------------------
def inject() -> dict[str, str]:
    """The current trace context as W3C fields (`traceparent`, maybe `tracestate`); empty without one."""
    out: dict[str, str] = {}
    _PROPAGATOR.inject(out)
    return out


def extract(carrier: Mapping[str, Any] | None) -> otel_context.Context:
    """The trace context held in a dict (message properties, a stored field); other keys are ignored."""
    fields = {k.lower(): str(v) for k, v in (carrier or {}).items() if isinstance(k, str)}
    return _PROPAGATOR.extract(fields)


def environment() -> dict[str, str]:
    """The current trace context as a process's environment (`TRACEPARENT`, W3C format)."""
    fields = inject()
    env = {ENVIRONMENT_VARIABLE: fields["traceparent"]} if "traceparent" in fields else {}
    if "tracestate" in fields:
        env["TRACESTATE"] = fields["tracestate"]
    return env


# -- spans -----------------------------------------------------------------------------------------------
def tracer() -> trace.Tracer:
    return trace.get_tracer(NAME)


@contextlib.contextmanager
def span(name: str, *, parent: Mapping[str, Any] | None = None, attributes: Mapping[str, Any] | None = None,
         kind: SpanKind = SpanKind.INTERNAL, link_current: bool = False) -> Iterator[Span]:
    """A span made current for the block. With `parent` (a dict holding a trace context) it
    continues that trace instead of the current one; `link_current` then links the current span,
    so that the work that did it (a queue message's invocation) can still be found."""
    links: list[Link] = []
    ctx = extract(parent) if parent else None
    if ctx is not None and not trace.get_current_span(ctx).get_span_context().is_valid:
        ctx = None  # nothing to continue: the current trace goes on
    current = trace.get_current_span().get_span_context()
    if ctx is not None and link_current and current.is_valid \
            and current.trace_id != trace.get_current_span(ctx).get_span_context().trace_id:
        links.append(Link(current))
    with tracer().start_as_current_span(name, context=ctx, kind=kind, attributes=clean_attributes(attributes),
                                        links=links) as current_span:
        yield current_span


def clean_attributes(attributes: Mapping[str, object] | None) -> dict[str, AttributeValue]:
    """Attributes OpenTelemetry accepts (None dropped, other types as text)."""
    out: dict[str, AttributeValue] = {}
    for key, value in (attributes or {}).items():
        if value is None:
            continue
        out[key] = value if isinstance(value, str | bool | int | float) else str(value)
    return out


# -- metrics ---------------------------------------------------------------------------------------------
def meter() -> metrics.Meter:
    return metrics.get_meter(NAME)


@dataclasses.dataclass(frozen=True)
class _Instruments:
    queue_wait: metrics.Histogram
    submit_to_start: metrics.Histogram
    failures: metrics.Counter
    events: metrics.Counter


@functools.cache
def _instruments() -> _Instruments:
    """Made on first use; before `configure` they are the API's proxies, which follow the provider."""
    m = meter()
    return _Instruments(
        queue_wait=m.create_histogram("batchai.job.queue_wait", unit="s",
                                      description="How long a job attempt waited in its lane (queued to running)."),
        submit_to_start=m.create_histogram("batchai.job.submit_to_start", unit="s",
                                           description="From a job's creation to its first start."),
        failures=m.create_counter("batchai.failures.detected", unit="{failure}",
                                  description="Failures the watchdog detected, by reason."),
        events=m.create_counter("batchai.events.delivered", unit="{event}",
                                description="Webhook deliveries of job events, by outcome."),
    )


def record_start(queued_seconds: float, submitted_seconds: float | None, attributes: Mapping[str, object]) -> None:
    """A job attempt started: its wait in the lane, and for a first attempt the time since its creation."""
    _instruments().queue_wait.record(max(queued_seconds, 0.0), clean_attributes(attributes))
    if submitted_seconds is not None:
        _instruments().submit_to_start.record(max(submitted_seconds, 0.0), clean_attributes(attributes))


def count_failure(reason: str) -> None:
    _instruments().failures.add(1, {"reason": reason})


def count_delivery(outcome: str) -> None:
    _instruments().events.add(1, {"outcome": outcome})
