"""Settings of the ``prometheus`` exporter, named as the collector-contrib prometheusexporter's."""

from __future__ import annotations

import fnmatch
from typing import Literal

from otelml.configmodel import ComponentConfig, Duration, Endpoint
from otelml.tlsconfig import ServerTLSConfig

# Resource attributes that become the ``job`` and ``instance`` labels.
SERVICE_ATTRIBUTES = ("service.name", "service.namespace", "service.instance.id")

TranslationStrategy = Literal[
    "UnderscoreEscapingWithSuffixes", "UnderscoreEscapingWithoutSuffixes", "NoUTF8EscapingWithSuffixes", "NoTranslation"
]


class ResourceToTelemetryConfig(ComponentConfig):
    """Deprecated in contrib in favour of ``resource_constant_labels``; both work here."""

    enabled: bool = False
    exclude_service_attributes: bool = False


class ResourceConstantLabelsConfig(ComponentConfig):
    """Wildcard patterns of resource attribute keys to copy onto every metric as labels."""

    included: list[str] = []
    excluded: list[str] = []

    def selects(self, key: str) -> bool:
        """Whether resource attribute ``key`` becomes a label.

        >>> ResourceConstantLabelsConfig(included=["k8s.*"], excluded=["k8s.pod.uid"]).selects("k8s.pod.name")
        True
        >>> ResourceConstantLabelsConfig(excluded=["host.*"]).selects("host.name")
        False
        """
        if any(fnmatch.fnmatchcase(key, pattern) for pattern in self.excluded):
            return False
        if not self.included:
            return bool(self.excluded)
        return any(fnmatch.fnmatchcase(key, pattern) for pattern in self.included)


class PrometheusExporterConfig(ComponentConfig):
    # Settings contrib has that this exporter does not take, with what to do instead.
    unsupported_keys = {
        "sending_queue": "the exporter is scraped, so nothing is queued: remove it",
        "cors": "the scrape endpoint serves Prometheus servers, not browsers: remove it",
        "auth": "put an authenticating proxy in front of the scrape endpoint",
        "include_metadata": "the scrape endpoint receives no telemetry: remove it",
        "max_request_body_size": "the scrape endpoint receives no request bodies: remove it",
        "response_headers": "set response headers in a proxy in front of the scrape endpoint",
    }

    endpoint: Endpoint
    tls: ServerTLSConfig | None = None
    namespace: str = ""
    const_labels: dict[str, str] = {}
    send_timestamps: bool = False
    metric_expiration: Duration = 300.0
    resource_to_telemetry_conversion: ResourceToTelemetryConfig = ResourceToTelemetryConfig()
    resource_constant_labels: ResourceConstantLabelsConfig | None = None
    enable_open_metrics: bool = False
    without_scope_info: bool = False
    add_metric_suffixes: bool = True
    translation_strategy: TranslationStrategy | None = None

    def validate_config(self) -> list[str]:
        problems = []
        if self.metric_expiration <= 0:
            problems.append("metric_expiration: must be positive")
        if self.translation_strategy in ("NoUTF8EscapingWithSuffixes", "NoTranslation"):
            problems.append(
                f"translation_strategy: {self.translation_strategy} is not supported "
                "(it needs UTF-8 metric names; use UnderscoreEscapingWithSuffixes or UnderscoreEscapingWithoutSuffixes)"
            )
        return problems

    @property
    def suffixes(self) -> bool:
        """Whether unit and type suffixes are added (``translation_strategy`` wins over ``add_metric_suffixes``)."""
        if self.translation_strategy is not None:
            return self.translation_strategy.endswith("WithSuffixes")
        return self.add_metric_suffixes

    def resource_label(self, key: str) -> bool:
        """Whether resource attribute ``key`` is copied onto every metric as a label."""
        if self.resource_constant_labels is not None:
            return self.resource_constant_labels.selects(key)
        conversion = self.resource_to_telemetry_conversion
        if not conversion.enabled:
            return False
        return not (conversion.exclude_service_attributes and key in SERVICE_ATTRIBUTES)
