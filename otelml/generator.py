"""A telemetry generator built on the OpenTelemetry SDK: realistic traces, logs
and metrics from several services, with occasional injected incidents.

Every ``incident_every`` seconds one service misbehaves for
``incident_length`` seconds, taking turns through: a latency spike (its
spans slow down gradually to ~4x over the first three quarters of the
incident, as a degradation builds up, then the service saturates and they
take ~30x longer), an error burst (errors and ERROR logs; it starts with a
crash message never seen before, and a known message, otherwise in one
request of twenty, comes with every failure), and a scan (many requests
from one client address to paths that do not exist).
Spans carry synthetic start and end times, so a generator does not need to
wait for the durations it reports.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import random
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

from otelml.component import Kind

# Lines name the generator, as the service's name their component.
log = logging.LoggerAdapter(logging.getLogger("otelml.generator"), {"component": "generator"})

# service -> (operations, median duration in ms)
SERVICES = {
    "frontend": (["GET /", "GET /product", "POST /cart", "POST /checkout"], 40.0),
    "checkout": (["PlaceOrder", "PrepareOrder"], 25.0),
    "payment": (["Charge", "Refund"], 60.0),
    "inventory": (["Reserve", "Lookup"], 8.0),
    "auth": (["VerifyToken", "Login"], 5.0),
}
INCIDENT_KINDS = ("latency_spike", "error_burst", "scan")


class Providers:
    """One tracer, logger and meter provider per service (each has its own resource)."""

    def __init__(self, endpoint: str, protocol: str, metric_interval: float):
        self.providers: list[Any] = []
        self.services = {}
        for service in SERVICES:
            resource = Resource.create({"service.name": service, "service.namespace": "shop", "deployment.environment": "demo"})
            span_exporter, log_exporter, metric_exporter = _exporters(endpoint, protocol)
            tracer_provider = TracerProvider(resource=resource)
            tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter, schedule_delay_millis=500))
            logger_provider = LoggerProvider(resource=resource)
            logger_provider.add_log_record_processor(BatchLogRecordProcessor(log_exporter, schedule_delay_millis=500))
            meter_provider = MeterProvider(
                resource=resource,
                metric_readers=[
                    PeriodicExportingMetricReader(metric_exporter, export_interval_millis=int(metric_interval * 1000))
                ],
            )
            meter = meter_provider.get_meter("otelml.generator")
            self.services[service] = (
                tracer_provider.get_tracer("otelml.generator"),
                logger_provider.get_logger("otelml.generator"),
                meter.create_counter("requests", unit="1", description="requests served"),
                meter.create_histogram("request.duration", unit="ms", description="request duration"),
            )
            self.providers += [tracer_provider, logger_provider, meter_provider]

    def shutdown(self) -> None:
        for provider in self.providers:
            provider.force_flush()
        for provider in self.providers:
            provider.shutdown()


def _exporters(endpoint: str, protocol: str):
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return (
            OTLPSpanExporter(endpoint, insecure=True),
            OTLPLogExporter(endpoint, insecure=True),
            OTLPMetricExporter(endpoint, insecure=True),
        )
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HTTPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HTTPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HTTPSpanExporter

    base = endpoint if endpoint.startswith("http") else f"http://{endpoint}"
    return (HTTPSpanExporter(f"{base}/v1/traces"), HTTPLogExporter(f"{base}/v1/logs"), HTTPMetricExporter(f"{base}/v1/metrics"))


class Generator:
    """Emits ``rate`` traces per second until stopped or ``duration`` passes."""

    def __init__(
        self,
        endpoint: str,
        protocol: str = "grpc",
        rate: float = 50.0,
        duration: float = 60.0,
        incident_every: float = 20.0,
        incident_length: float = 5.0,
        seed: int | None = None,
    ):
        self.endpoint = endpoint
        self.protocol = protocol
        self.rate = rate
        self.duration = duration
        self.incident_every = incident_every
        self.incident_length = incident_length
        self.random = random.Random(seed)
        self.stop_event = threading.Event()
        self.traces_sent = 0
        self.incidents: list[tuple[float, str, str]] = []
        # Whether the running error burst has logged its crash (a message never seen before) yet.
        self.crash_logged = False

    def run(self) -> None:
        providers = Providers(self.endpoint, self.protocol, metric_interval=5.0)
        start = time.monotonic()
        kinds = itertools.cycle(INCIDENT_KINDS)
        next_incident = start + self.incident_every
        incident: tuple[str, str] | None = None
        incident_starts = incident_ends = 0.0
        try:
            while not self.stop_event.is_set() and time.monotonic() - start < self.duration:
                now = time.monotonic()
                if incident is None and self.incident_every > 0 and now >= next_incident:
                    incident = (next(kinds), self.random.choice(list(SERVICES)[1:]))
                    incident_starts, incident_ends = now, now + self.incident_length
                    self.crash_logged = False
                    self.incidents.append((now - start, *incident))
                    log.info("injecting incident: %s in %s for %.0fs", incident[0], incident[1], self.incident_length)
                elif incident is not None and now >= incident_ends:
                    incident = None
                    next_incident = now + self.incident_every
                progress = (now - incident_starts) / self.incident_length if incident else 0.0
                self._trace(providers, incident and (*incident, progress))
                self.traces_sent += 1
                self.stop_event.wait(max(0.0, start + self.traces_sent / self.rate - time.monotonic()))
        finally:
            providers.shutdown()

    def _trace(self, providers: Providers, incident: tuple[str, str, float] | None) -> None:
        """One request: frontend -> checkout/auth -> payment/inventory, as nested spans."""
        end_ns = time.time_ns()
        client = f"10.0.{self.random.randint(0, 3)}.{self.random.randint(1, 254)}"
        path = self.random.choice(SERVICES["frontend"][0])
        if incident and incident[0] == "scan":
            client, path = "203.0.113.66", f"GET /admin/{self.random.randint(0, 10**6):x}"
        chain = ["frontend", self.random.choice(["checkout", "auth"]), self.random.choice(["payment", "inventory"])]
        self._span(providers, chain, 0, path, end_ns, None, client, incident)

    def _span(self, providers, chain, depth, operation, end_ns, parent, client, incident) -> int:
        service = chain[depth]
        tracer, logger, requests, durations = providers.services[service]
        operations, median_ms = SERVICES[service]
        name = operation if depth == 0 else self.random.choice(operations)
        duration_ms = median_ms * self.random.lognormvariate(0.0, 0.35)
        failing = False
        if incident and incident[1] == service:
            duration_ms *= _slowdown(incident[2]) if incident[0] == "latency_spike" else 1.0
            failing = incident[0] == "error_burst" and self.random.random() < 0.6
        if incident and incident[0] == "scan" and depth == 0:
            failing = True
        start_ns = end_ns - int(duration_ms * 1e6)
        span = tracer.start_span(
            name,
            context=parent,
            kind=SpanKind.SERVER,
            start_time=start_ns,
            attributes={"client.address": client, "http.route": name},
        )
        if depth + 1 < len(chain):
            child_end = end_ns - int(duration_ms * 1e6 * 0.1)
            self._span(providers, chain, depth + 1, None, child_end, set_span_in_context(span), client, incident)
        context = span.get_span_context()
        if failing:
            span.set_status(Status(StatusCode.ERROR, "request failed"))
        severity, text = (
            (SeverityNumber.ERROR, f"{name} failed for {client}")
            if failing
            else (SeverityNumber.INFO, f"{name} served in {duration_ms:.1f} ms")
        )
        logs = [(severity, text)]
        # A known message (1 request in 20) that an error burst makes the failing service's every other line.
        if (failing and incident[0] == "error_burst") or self.random.random() < 0.05:
            in_use = 20 if failing else self.random.randint(2, 12)
            logs.append((SeverityNumber.INFO, f"connection pool: {in_use} of 20 connections in use"))
        # An error burst starts with a message never seen before: the crash that caused it.
        if failing and incident[0] == "error_burst" and not self.crash_logged:
            self.crash_logged = True
            logs.append((SeverityNumber.ERROR, f"worker {self.random.randint(1, 64)} crashed: segmentation fault (core dumped)"))
        for severity, text in logs:
            logger.emit(
                LogRecord(
                    timestamp=end_ns,
                    trace_id=context.trace_id,
                    span_id=context.span_id,
                    trace_flags=context.trace_flags,
                    severity_text=severity.name,
                    severity_number=severity,
                    body=text,
                    attributes={"client.address": client, "duration_ms": round(duration_ms, 3)},
                )
            )
        requests.add(1, {"operation": name, "error": failing})
        durations.record(duration_ms, {"operation": name})
        span.end(end_time=end_ns)
        return end_ns


def _slowdown(progress: float) -> float:
    """How much slower a latency spike's spans are, ``progress`` (0-1) into the incident: creeping, then saturated.

    Saturation, not a mere doubling, ends it: a build-up teaches a key's models
    part of the change before the spike (records below the threshold are
    learned), and a young key most (see the anomaly processor's README).

    >>> _slowdown(0.0), _slowdown(0.5), _slowdown(0.8)
    (1.0, 3.0, 30.0)
    """
    return 1.0 + 4.0 * progress if progress < 0.75 else 30.0


def add_generate_command(commands) -> None:
    parser = commands.add_parser("generate", help="send realistic telemetry with injected incidents to an OTLP endpoint")
    parser.add_argument("--endpoint", default="localhost:4317", help="OTLP endpoint (host:port; http://host:port for HTTP)")
    parser.add_argument("--protocol", choices=["grpc", "http/protobuf"], default="grpc")
    parser.add_argument("--rate", type=float, default=50.0, help="traces per second (each has 3 spans and 3 logs)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds to run")
    parser.add_argument("--incident-every", type=float, default=20.0, help="seconds between incidents (0: none)")
    parser.add_argument("--incident-length", type=float, default=5.0, help="seconds an incident lasts")
    parser.add_argument("--seed", type=int, default=None)


def run_generator(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-5s generator: %(message)s")
    generator = Generator(
        args.endpoint, args.protocol, args.rate, args.duration, args.incident_every, args.incident_length, args.seed
    )
    generator.run()
    log.info("sent %d traces, %d incidents", generator.traces_sent, len(generator.incidents))
    return 0


async def run_demo(config, registry, args) -> int:
    """Run the service with the generator feeding its first OTLP gRPC receiver (and a local Alertmanager, when installed)."""
    alertmanager = _local_alertmanager(config)
    try:
        return await _demo(config, registry, args, alertmanager)
    finally:
        if alertmanager is not None:
            alertmanager.stop()
            shutil.rmtree(alertmanager.folder, ignore_errors=True)


async def _demo(config, registry, args, alertmanager) -> int:
    from otelml.extensions.zpages.extension import ZPages
    from otelml.service import Service

    service = Service(config, registry)
    await service.start()
    try:
        endpoint = next(
            f"{host}:{port}"
            for receiver in service.graph.receivers.values()
            for transport, (host, port) in getattr(receiver, "addresses", {}).items()
            if transport == "grpc"
        )
    except StopIteration:
        await service.shutdown()
        log.error("the demo config needs an otlp receiver with the grpc protocol")
        return 1
    for extension in service.graph.extensions.values():
        if isinstance(extension, ZPages):
            print(f"demo: live page of the anomalies on {extension.url}", flush=True)
    generator = Generator(
        endpoint, rate=args.rate, duration=args.duration, incident_every=min(20.0, args.duration / 3), incident_length=5.0
    )
    try:
        await asyncio.to_thread(generator.run)
    finally:
        await service.shutdown()
    telemetry = service.telemetry
    spans = telemetry.value("otelcol_receiver_accepted_spans_total", receiver="otlp", transport="grpc")
    logs = telemetry.value("otelcol_receiver_accepted_log_records_total", receiver="otlp", transport="grpc")
    anomalies = sum(telemetry.value("otelml_anomaly_anomalies_total", processor=str(p)) for p in _anomaly_processors(config))
    incidents = sum(
        telemetry.value("otelml_anomaly_predicted_incidents_total", processor=str(p)) for p in _anomaly_processors(config)
    )
    alerts = {
        event: sum(
            telemetry.value("otelml_anomaly_alerts_total", connector=str(c), kind=kind, event=event)
            for c in config.components[Kind.CONNECTOR]
            if c.type == "anomaly_alerts"
            for kind in ("anomaly", "predicted_incident")
        )
        for event in ("open", "update", "resolve")
    }
    held = f", {len(alertmanager.alerts())} still active in Alertmanager" if alertmanager is not None else ""
    print(
        f"demo: {generator.traces_sent} traces sent; otelml accepted {spans:.0f} spans and {logs:.0f} log records; "
        f"{anomalies:.0f} flagged as anomalies, {incidents:.0f} as predicted incidents; "
        f"alerts: {alerts['open']:.0f} opened, {alerts['update']:.0f} updated, {alerts['resolve']:.0f} resolved{held}; "
        f"incidents injected: {', '.join(f'{k} in {s} at {t:.0f}s' for t, k, s in generator.incidents) or 'none'}"
    )
    return 0


def _local_alertmanager(config):
    """A local Alertmanager taking the demo's alerts when one is installed; None (and a line saying why) otherwise."""
    from otelml.exporters.alertmanager.local import LocalAlertmanager, find_binary, send_alerts_to

    if find_binary() is None:
        log.info(
            "no Alertmanager installed (Debian: apt-get install prometheus-alertmanager): alerts go to the console and their file only"
        )
        return None
    try:
        alertmanager = LocalAlertmanager(Path(tempfile.mkdtemp(prefix="otelml-demo-alertmanager-"))).start()
    except RuntimeError as error:
        log.warning("Alertmanager did not start, alerts go to the console and their file only: %s", error)
        return None
    pipelines = send_alerts_to(config, alertmanager.url)
    if not pipelines:
        log.info("no pipeline takes the alerts of an anomaly_alerts connector: nothing for Alertmanager")
        alertmanager.stop()
        return None
    log.info("alerts of %s also go to a local Alertmanager: %s/#/alerts", ", ".join(pipelines), alertmanager.url)
    return alertmanager


def _anomaly_processors(config):
    return [i for i in config.components[Kind.PROCESSOR] if i.type == "anomaly"]
