"""The service's own telemetry: declared metrics served by Prometheus, and logs.

Every internal metric is declared once as a :class:`Metric` (name, kind, unit,
labels, description, level), as the collector declares them in a component's
``metadata.yaml``: the core's in :data:`CORE_METRICS` below, each component's
in the ``metadata.py`` of its folder, listed by its factory. Components get the
metric objects from :meth:`Telemetry.metric`; the README tables of internal
metrics are rendered from the same declarations (:func:`metrics_table`) and a
test checks that they match.

Each :class:`~otelml.service.Service` has its own metric registry, so that
several services can run in one process (as tests do).
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import sys
from typing import Any, Literal

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from otelml import process
from otelml.pdata import Signal

# The collector serves no *_created series beside its counters; prometheus_client adds one to each unless told not to.
prometheus_client.disable_created_metrics()

_CLASSES = {"counter": Counter, "gauge": Gauge}


class Level(enum.IntEnum):
    """``service::telemetry::metrics::level``: how much internal telemetry is recorded.

    As in the collector, ``basic`` is for the core's metrics only, ``normal``
    (the default) adds components' own, and ``detailed`` adds per-key or
    otherwise high-cardinality series.

    >>> Level.parse("detailed") > Level.NORMAL
    True
    """

    NONE = 0
    BASIC = 1
    NORMAL = 2
    DETAILED = 3

    @classmethod
    def parse(cls, text: str) -> Level:
        return cls[text.upper()]


@dataclasses.dataclass(frozen=True)
class Metric:
    """The declaration of one internal metric.

    ``unit`` is UCUM with the OpenTelemetry ``{annotation}`` form for counts
    (``{spans}``, ``{batches}``); Prometheus serves counters with a ``_total``
    suffix. ``level`` is the lowest :class:`Level` that records the metric.

    >>> Metric("otelml_example_items", "counter", "{items}", ("processor",), "Items seen.").exposed_name
    'otelml_example_items_total'
    """

    name: str
    kind: Literal["counter", "gauge"]
    unit: str
    labels: tuple[str, ...]
    description: str
    level: Level = Level.NORMAL

    @property
    def exposed_name(self) -> str:
        """The name of its samples on ``/metrics``."""
        return f"{self.name}_total" if self.kind == "counter" else self.name


def per_signal(
    name: str, kind: Literal["counter", "gauge"], labels: tuple[str, ...], description: str, level: Level = Level.NORMAL
) -> dict[Signal, Metric]:
    """One metric per signal, as the collector names them: ``{items}`` in ``name`` becomes ``spans``,
    ``log_records`` or ``metric_points``.

    >>> per_signal("otelcol_receiver_accepted_{items}", "counter", ("receiver",), "Accepted.")[Signal.LOGS].name
    'otelcol_receiver_accepted_log_records'
    """
    return {
        signal: Metric(name.format(items=signal.item_name), kind, f"{{{signal.item_name}}}", labels, description, level)
        for signal in Signal
    }


RECEIVER_ACCEPTED = per_signal(
    "otelcol_receiver_accepted_{items}",
    "counter",
    ("receiver", "transport"),
    "Items accepted by the receiver and pushed into the pipeline.",
    Level.BASIC,
)
RECEIVER_REFUSED = per_signal(
    "otelcol_receiver_refused_{items}",
    "counter",
    ("receiver", "transport"),
    "Items that could not be pushed into the pipeline.",
    Level.BASIC,
)
RECEIVER_REPAIRED = per_signal(
    "otelml_receiver_repaired_{items}",
    "counter",
    ("receiver", "transport"),
    "Items accepted with invalid UTF-8 replaced by U+FFFD.",
    Level.BASIC,
)
RECEIVER_FAILED_REQUESTS = Metric(
    "otelml_receiver_failed_requests",
    "counter",
    "{requests}",
    ("receiver", "transport", "reason"),
    "Requests a receiver rejected before decoding any item, by reason.",
    Level.BASIC,
)
PROCESSOR_INCOMING = Metric(
    "otelcol_processor_incoming_items",
    "counter",
    "{items}",
    ("processor", "otel_signal"),
    "Items passed to the processor.",
    Level.BASIC,
)
PROCESSOR_OUTGOING = Metric(
    "otelcol_processor_outgoing_items",
    "counter",
    "{items}",
    ("processor", "otel_signal"),
    "Items emitted by the processor.",
    Level.BASIC,
)
EXPORTER_SENT = per_signal(
    "otelcol_exporter_sent_{items}", "counter", ("exporter",), "Items successfully sent to the destination.", Level.BASIC
)
EXPORTER_SEND_FAILED = per_signal(
    "otelcol_exporter_send_failed_{items}", "counter", ("exporter",), "Items the exporter failed to send.", Level.BASIC
)
EXPORTER_ENQUEUE_FAILED = per_signal(
    "otelcol_exporter_enqueue_failed_{items}",
    "counter",
    ("exporter",),
    "Items that could not be added to the sending queue.",
    Level.BASIC,
)
EXPORTER_QUEUE_SIZE = Metric(
    "otelcol_exporter_queue_size",
    "gauge",
    "{batches}",
    ("exporter", "data_type"),
    "Current size of the sending queue.",
    Level.BASIC,
)
EXPORTER_QUEUE_CAPACITY = Metric(
    "otelcol_exporter_queue_capacity",
    "gauge",
    "{batches}",
    ("exporter", "data_type"),
    "Capacity of the sending queue.",
    Level.BASIC,
)
DROPPED_ITEMS = Metric(
    "otelml_dropped_items",
    "counter",
    "{items}",
    ("component", "otel_signal", "reason"),
    "Items given up for good, by component, signal and reason.",
    Level.BASIC,
)

CORE_METRICS = (
    *RECEIVER_ACCEPTED.values(),
    *RECEIVER_REFUSED.values(),
    *RECEIVER_REPAIRED.values(),
    RECEIVER_FAILED_REQUESTS,
    PROCESSOR_INCOMING,
    PROCESSOR_OUTGOING,
    *EXPORTER_SENT.values(),
    *EXPORTER_SEND_FAILED.values(),
    *EXPORTER_ENQUEUE_FAILED.values(),
    EXPORTER_QUEUE_SIZE,
    EXPORTER_QUEUE_CAPACITY,
    DROPPED_ITEMS,
)
"""The metrics of the receiver, processor and exporter helpers, listed in the main README."""

# The collector's process metrics, read at each scrape. Its Go runtime's heap statistics
# (otelcol_process_runtime_heap_alloc_bytes, _total_alloc_bytes, _total_sys_memory_bytes) have no Python
# equivalent: Python's small objects live in its own arenas, outside malloc's accounting, and their exact
# size is only known to tracemalloc, which slows every allocation. The RSS covers them all.
PROCESS_UPTIME = Metric("otelcol_process_uptime", "counter", "s", (), "Uptime of the process.", Level.BASIC)
PROCESS_CPU_SECONDS = Metric(
    "otelcol_process_cpu_seconds", "counter", "s", (), "Total CPU user and system time in seconds.", Level.BASIC
)
PROCESS_MEMORY_RSS = Metric(
    "otelcol_process_memory_rss", "gauge", "By", (), "Total physical memory (resident set size).", Level.BASIC
)
PROCESS_METRICS = (PROCESS_UPTIME, PROCESS_CPU_SECONDS, PROCESS_MEMORY_RSS)
"""The process's own metrics, served beside :data:`CORE_METRICS` and listed in the main README."""


class _ProcessCollector:
    """Serves :data:`PROCESS_METRICS` with values read when scraped (a prometheus_client collector)."""

    _READINGS = {
        PROCESS_UPTIME: process.uptime_seconds,
        PROCESS_CPU_SECONDS: process.cpu_seconds,
        PROCESS_MEMORY_RSS: process.resident_bytes,
    }
    _FAMILIES = {"counter": CounterMetricFamily, "gauge": GaugeMetricFamily}

    def collect(self):
        for metric, read in self._READINGS.items():
            yield self._FAMILIES[metric.kind](metric.name, metric.description, value=read(), unit="")

    def describe(self):
        # Named without reading /proc, so that registering stays cheap and checks the names.
        for metric in PROCESS_METRICS:
            yield self._FAMILIES[metric.kind](metric.name, metric.description, unit="")


class _Unrecorded:
    """Stands in for a metric that the configured level leaves out: takes every update, keeps nothing."""

    def labels(self, *values: str, **named: str) -> _Unrecorded:
        return self

    def inc(self, amount: float = 1) -> None:
        return None

    def dec(self, amount: float = 1) -> None:
        return None

    def set(self, value: float) -> None:
        return None

    def remove(self, *values: str) -> None:
        return None


UNRECORDED = _Unrecorded()


class Telemetry:
    """The metric objects of one service, made from their declarations at its ``level``.

    >>> telemetry = Telemetry(Level.BASIC)
    >>> telemetry.metric(DROPPED_ITEMS).labels("batch", "traces", "shutdown").inc(3)
    >>> telemetry.value("otelml_dropped_items_total", component="batch", otel_signal="traces", reason="shutdown")
    3.0
    >>> telemetry.metric(Metric("otelml_example_items", "counter", "{items}", (), "Left out at basic.")) is UNRECORDED
    True
    """

    def __init__(self, level: Level = Level.NORMAL):
        self.level = level
        self.registry = CollectorRegistry(auto_describe=True)
        self._declared: dict[str, tuple[Metric, Counter | Gauge | _Unrecorded]] = {}
        # The core's metrics are on /metrics from the start, before anything has counted into them.
        for metric in CORE_METRICS:
            self.metric(metric)
        if level >= Level.BASIC:
            self.registry.register(_ProcessCollector())

    def metric(self, declaration: Metric) -> Any:
        """The metric object of ``declaration``, made on first use; :data:`UNRECORDED` above the level.

        Raises ``ValueError`` when another declaration already has the name:
        one name, one meaning.
        """
        known = self._declared.get(declaration.name)
        if known is not None:
            if known[0] != declaration:
                raise ValueError(f"metric {declaration.name} is declared twice, differently: {known[0]} and {declaration}")
            return known[1]
        if declaration.level > self.level:
            made: Counter | Gauge | _Unrecorded = UNRECORDED
        else:
            made = _CLASSES[declaration.kind](
                declaration.name, declaration.description, declaration.labels, registry=self.registry
            )
        self._declared[declaration.name] = (declaration, made)
        return made

    # The helpers' metrics, by what happened.
    def receiver_accepted(self, receiver: str, transport: str, signal: Signal, count: int) -> None:
        self.metric(RECEIVER_ACCEPTED[signal]).labels(receiver, transport).inc(count)

    def receiver_refused(self, receiver: str, transport: str, signal: Signal, count: int) -> None:
        self.metric(RECEIVER_REFUSED[signal]).labels(receiver, transport).inc(count)

    def receiver_repaired(self, receiver: str, transport: str, signal: Signal, count: int) -> None:
        self.metric(RECEIVER_REPAIRED[signal]).labels(receiver, transport).inc(count)

    def receiver_bad_request(self, receiver: str, transport: str, reason: str) -> None:
        self.metric(RECEIVER_FAILED_REQUESTS).labels(receiver, transport, reason).inc()

    def exporter_sent(self, exporter: str, signal: Signal, count: int) -> None:
        self.metric(EXPORTER_SENT[signal]).labels(exporter).inc(count)

    def exporter_send_failed(self, exporter: str, signal: Signal, count: int) -> None:
        self.metric(EXPORTER_SEND_FAILED[signal]).labels(exporter).inc(count)

    def exporter_enqueue_failed(self, exporter: str, signal: Signal, count: int) -> None:
        self.metric(EXPORTER_ENQUEUE_FAILED[signal]).labels(exporter).inc(count)

    def drop(self, component: str, signal: Signal, count: int, reason: str) -> None:
        self.metric(DROPPED_ITEMS).labels(component, signal.value, reason).inc(count)

    def value(self, name: str, **labels: str) -> float:
        """The current value of one sample, 0 when absent (for tests and summaries)."""
        return self.registry.get_sample_value(name, labels) or 0.0


def metrics_table(metrics: tuple[Metric, ...]) -> str:
    """The Markdown table of ``metrics`` that a README lists them in.

    >>> print(metrics_table((DROPPED_ITEMS,)))
    | metric | kind | unit | labels | level | description |
    |---|---|---|---|---|---|
    | `otelml_dropped_items` | counter | `{items}` | `component`, `otel_signal`, `reason` | basic | Items given up for good, by component, signal and reason. |
    """
    rows = ["| metric | kind | unit | labels | level | description |", "|---|---|---|---|---|---|"]
    for metric in metrics:
        labels = ", ".join(f"`{label}`" for label in metric.labels)
        rows.append(
            f"| `{metric.name}` | {metric.kind} | `{metric.unit}` | {labels} | {metric.level.name.lower()} | {metric.description} |"
        )
    return "\n".join(rows)


class _CurrentStderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a line is written, not to the one it was made with
    (which a test, or a daemon wrapper, may have closed since)."""

    @property  # type: ignore[override]
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        return None


class _ComponentFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "component"):
            # otelml's own lines without a component are the service's; a library's name it (aiokafka.conn).
            record.component = "service" if record.name.split(".")[0] == "otelml" else record.name
        return True


def configure_logging(level: str = "info") -> None:
    """One line per event on stderr, naming the component it concerns.

    Libraries' warnings and errors (aiokafka, paho, ...) come out in the same
    form, named by their logger, rather than bare from Python's last resort.
    """
    handler = _CurrentStderr()
    handler.set_name("otelml")
    handler.addFilter(_ComponentFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-5s %(component)s: %(message)s"))
    logger = logging.getLogger("otelml")
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False
    # The root logger keeps its level (warnings and up) and any other handler it has (a test's capture).
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if h.get_name() != "otelml"] + [handler]
