"""The service's own telemetry: Prometheus metrics with the collector's names, and logs.

Each :class:`~otelml.service.Service` has its own metric registry, so that
several services can run in one process (as tests do).
"""

from __future__ import annotations

import logging
import sys

from prometheus_client import CollectorRegistry, Counter, Gauge

from otelml.pdata import Signal

_SIGNALS = tuple(Signal)


class Telemetry:
    """Counters and gauges named as the collector names them.

    Counter names get Prometheus' ``_total`` suffix on the wire, e.g.
    ``otelcol_receiver_accepted_spans_total``, as the collector's do.
    """

    def __init__(self):
        self.registry = CollectorRegistry(auto_describe=True)
        self._custom: dict[str, Counter | Gauge] = {}
        receiver_labels = ["receiver", "transport"]
        self._receiver_accepted = self._per_signal("otelcol_receiver_accepted_{}", "Items accepted by the receiver and pushed into the pipeline.", receiver_labels)
        self._receiver_refused = self._per_signal("otelcol_receiver_refused_{}", "Items that could not be pushed into the pipeline.", receiver_labels)
        self._exporter_sent = self._per_signal("otelcol_exporter_sent_{}", "Items successfully sent to the destination.", ["exporter"])
        self._exporter_send_failed = self._per_signal("otelcol_exporter_send_failed_{}", "Items the exporter failed to send.", ["exporter"])
        self._exporter_enqueue_failed = self._per_signal("otelcol_exporter_enqueue_failed_{}", "Items that could not be added to the sending queue.", ["exporter"])
        self.bad_requests = Counter("otelml_receiver_failed_requests", "Requests a receiver rejected before decoding any item, by reason.", ["receiver", "transport", "reason"], registry=self.registry)
        self.dropped = Counter("otelml_dropped_items", "Items given up for good, by component, signal and reason.", ["component", "otel_signal", "reason"], registry=self.registry)
        self.queue_size = Gauge("otelcol_exporter_queue_size", "Current size of the sending queue (batches).", ["exporter", "data_type"], registry=self.registry)
        self.queue_capacity = Gauge("otelcol_exporter_queue_capacity", "Capacity of the sending queue (batches).", ["exporter", "data_type"], registry=self.registry)
        self.processor_incoming = Counter("otelcol_processor_incoming_items", "Items passed to the processor.", ["processor", "otel_signal"], registry=self.registry)
        self.processor_outgoing = Counter("otelcol_processor_outgoing_items", "Items emitted by the processor.", ["processor", "otel_signal"], registry=self.registry)

    def _per_signal(self, template: str, documentation: str, labels: list[str]) -> dict[Signal, Counter]:
        return {s: Counter(template.format(s.item_name), documentation, labels, registry=self.registry) for s in _SIGNALS}

    def receiver_accepted(self, receiver: str, transport: str, signal: Signal, count: int) -> None:
        self._receiver_accepted[signal].labels(receiver, transport).inc(count)

    def receiver_refused(self, receiver: str, transport: str, signal: Signal, count: int) -> None:
        self._receiver_refused[signal].labels(receiver, transport).inc(count)

    def receiver_bad_request(self, receiver: str, transport: str, reason: str) -> None:
        self.bad_requests.labels(receiver, transport, reason).inc()

    def exporter_sent(self, exporter: str, signal: Signal, count: int) -> None:
        self._exporter_sent[signal].labels(exporter).inc(count)

    def exporter_send_failed(self, exporter: str, signal: Signal, count: int) -> None:
        self._exporter_send_failed[signal].labels(exporter).inc(count)

    def exporter_enqueue_failed(self, exporter: str, signal: Signal, count: int) -> None:
        self._exporter_enqueue_failed[signal].labels(exporter).inc(count)

    def drop(self, component: str, signal: Signal, count: int, reason: str) -> None:
        self.dropped.labels(component, signal.value, reason).inc(count)

    def counter(self, name: str, documentation: str, labels: list[str]) -> Counter:
        """A component-specific counter, created once per service."""
        if name not in self._custom:
            self._custom[name] = Counter(name, documentation, labels, registry=self.registry)
        return self._custom[name]

    def gauge(self, name: str, documentation: str, labels: list[str]) -> Gauge:
        """A component-specific gauge, created once per service."""
        if name not in self._custom:
            self._custom[name] = Gauge(name, documentation, labels, registry=self.registry)
        return self._custom[name]

    def value(self, name: str, **labels: str) -> float:
        """The current value of one sample, 0 when absent (for tests and summaries)."""
        return self.registry.get_sample_value(name, labels) or 0.0


class _ComponentFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "component"):
            record.component = "service"
        return True


def configure_logging(level: str = "info") -> None:
    """One line per event on stderr, naming the component it concerns."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_ComponentFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-5s %(component)s: %(message)s"))
    logger = logging.getLogger("otelml")
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False
