"""Telemetry (shared/telemetry.py, functions/tracing.py): the trace context through plain dicts and
environments, one span per function invocation, and no secret in any span's attributes. Spans go to the SDK's in-memory
exporter; nothing is exported anywhere."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import azure.functions as func
import pytest
from azure.functions.servicebus import ServiceBusMessage
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from functions import tracing
from shared import telemetry

SECRET = "s3cret-" + "value-that-must-not-leak"


@pytest.fixture(scope="module")
def exporter() -> InMemorySpanExporter:
    """The process's SDK provider (installed once: OpenTelemetry allows one), exporting to memory."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return memory


@pytest.fixture
def spans(exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    monkeypatch.setattr(tracing, "_start_control_plane", lambda: None)  # no services, no setup
    exporter.clear()
    yield exporter
    exporter.clear()


def test_inject_and_extract_round_trip(spans: InMemorySpanExporter) -> None:
    assert telemetry.inject() == {}  # no current span: nothing to carry
    with telemetry.span("create") as created:
        carrier = telemetry.inject()
    ctx = created.get_span_context()
    assert carrier["traceparent"].startswith(f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-")  # W3C: flags last
    extracted = trace.get_current_span(telemetry.extract({"ignored": 1, **carrier})).get_span_context()
    assert (extracted.trace_id, extracted.span_id, extracted.is_remote) == (ctx.trace_id, ctx.span_id, True)


def test_a_span_continues_the_trace_of_its_parent_dict_and_links_the_current_one(
        spans: InMemorySpanExporter) -> None:
    with telemetry.span("create") as created:
        carrier = telemetry.inject()
    with telemetry.span("invocation") as invocation:
        with telemetry.span("dispatch", parent=carrier, link_current=True):
            pass
        with telemetry.span("no parent to continue", parent={"traceparent": "garbage"}):
            pass
    finished = {s.name: s for s in spans.get_finished_spans()}
    dispatch = finished["dispatch"]
    assert dispatch.context.trace_id == created.get_span_context().trace_id
    assert dispatch.parent.span_id == created.get_span_context().span_id
    assert [link.context.span_id for link in dispatch.links] == [invocation.get_span_context().span_id]
    assert finished["no parent to continue"].parent.span_id == invocation.get_span_context().span_id


def test_the_environment_carries_the_current_span_as_traceparent(spans: InMemorySpanExporter) -> None:
    assert telemetry.environment() == {}
    with telemetry.span("launch") as launch:
        env = telemetry.environment()
    ctx = launch.get_span_context()
    assert list(env) == ["TRACEPARENT"]
    assert env["TRACEPARENT"].startswith(f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-")


def test_a_traced_http_function_makes_one_server_span_without_secrets(spans: InMemorySpanExporter) -> None:
    @tracing.traced_function("Jobs_Create")
    def create(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("{}", status_code=201)

    with telemetry.span("client") as client:
        incoming = telemetry.inject()
    request = func.HttpRequest(
        method="PUT", url=f"http://127.0.0.1:7071/subscriptions/s/jobs/j?api-version=2018-05-01&code={SECRET}",
        headers={"Authorization": f"Bearer {SECRET}", "x-functions-key": SECRET, **incoming},
        body=json.dumps({"properties": {"secrets": [{"name": "K", "value": SECRET}]}}).encode(), route_params={})
    assert create(request).status_code == 201
    (span,) = [s for s in spans.get_finished_spans() if s.name == "Jobs_Create"]
    assert span.kind == trace.SpanKind.SERVER
    assert span.parent.span_id == client.get_span_context().span_id  # an incoming traceparent is continued
    assert span.attributes["url.path"] == "/subscriptions/s/jobs/j"
    assert span.attributes["http.response.status_code"] == 201
    assert span.attributes["faas.trigger"] == "http"
    assert all(SECRET not in str(value) for value in span.attributes.values())
    assert create.__name__ == "create" and create.__wrapped__ is not None  # the Functions indexer's view


def test_a_traced_queue_function_continues_the_message_trace(spans: InMemorySpanExporter) -> None:
    seen: list[trace.SpanContext] = []

    @tracing.traced_function("ClusterWork")
    def work(msg: ServiceBusMessage) -> None:
        seen.append(trace.get_current_span().get_span_context())

    with telemetry.span("create") as created:
        properties = telemetry.inject()
    work(msg=ServiceBusMessage(body=b"{}", message_id="m1", application_properties=properties,
                               user_properties=properties))
    (span,) = [s for s in spans.get_finished_spans() if s.name == "ClusterWork"]
    assert span.kind == trace.SpanKind.CONSUMER
    assert span.context.trace_id == created.get_span_context().trace_id
    assert seen[0].span_id == span.context.span_id  # the function runs inside its span


def test_a_traced_async_function_and_a_timer(spans: InMemorySpanExporter) -> None:
    import asyncio

    from azure.functions.timer import TimerRequest

    @tracing.traced_function("Agent_Assignment")
    async def poll(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(status_code=503)

    @tracing.traced_function("ReconcileClusters")
    def tick(timer: TimerRequest) -> None:
        pass

    request = func.HttpRequest(method="GET", url="http://127.0.0.1/agent/assignment", body=b"", headers={})
    assert asyncio.run(poll(request)).status_code == 503
    tick(TimerRequest(past_due=False))
    finished = {s.name: s for s in spans.get_finished_spans()}
    assert finished["Agent_Assignment"].status.status_code == trace.StatusCode.ERROR
    assert finished["ReconcileClusters"].attributes["faas.trigger"] == "timer"
    assert finished["ReconcileClusters"].parent is None


def test_the_file_exporter_writes_one_json_line_per_span(tmp_path: Path) -> None:
    provider = TracerProvider()  # not the global one: this test only exercises the exporter
    path = tmp_path / "svc-1.jsonl"
    provider.add_span_processor(SimpleSpanProcessor(telemetry.JsonLinesSpanExporter(path)))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("parent") as parent, tracer.start_as_current_span("child",
                                                                                        attributes={"n": 1}):
        pass
    records = {r["name"]: r for r in map(json.loads, path.read_text().splitlines())}
    assert records["child"]["parent_span_id"] == f"{parent.get_span_context().span_id:016x}"
    assert records["parent"]["parent_span_id"] is None
    assert records["child"]["trace_id"] == records["parent"]["trace_id"]
    assert records["child"]["attributes"] == {"n": 1}


def test_configure_refuses_an_unknown_exporter_and_none_installs_nothing() -> None:
    with pytest.raises(ValueError):
        telemetry.configure("zipkin", "test")
    before = trace.get_tracer_provider()
    telemetry.configure("none", "test")
    assert trace.get_tracer_provider() is before


def test_the_azure_monitor_exporter_is_a_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    """BATCHAI_OTEL_EXPORTER=azuremonitor: Application Insights through the Azure Monitor exporter,
    imported only when chosen; its connection string from otel_endpoint."""
    from azure.monitor.opentelemetry.exporter import AzureMonitorMetricExporter, AzureMonitorTraceExporter

    monkeypatch.setenv("APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL", "true")  # the exporter's own reports
    connection = "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=https://127.0.0.1:1/"
    spans, metric_exporter, _ = telemetry._exporters("azuremonitor", "batchai", connection, Path("unused"))
    assert isinstance(spans, AzureMonitorTraceExporter) and isinstance(metric_exporter, AzureMonitorMetricExporter)
    assert "azuremonitor" in telemetry.EXPORTERS


def test_an_exporter_that_is_not_installed_exports_nothing_and_stops_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A VM's agent told `azuremonitor` without the extra installed keeps running, exporting nothing."""
    def missing(*args: object) -> None:
        raise ImportError("No module named 'azure.monitor'")

    monkeypatch.setattr(telemetry, "_install", missing)
    monkeypatch.setattr(telemetry, "_configured", None)
    telemetry.configure("azuremonitor", "batchai-agent")
    assert telemetry._configured is None
