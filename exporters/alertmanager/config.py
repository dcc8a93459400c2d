import re

from pydantic import SecretStr

from otelml.configauth import AuthConfig
from otelml.configmodel import Duration, http_url_problem
from otelml.exporterhelper import ExporterHelperConfig, QueueConfig
from otelml.pdata import Signal
from otelml.references import Reference, check_signal, parse_key
from otelml.tlsconfig import ClientTLSConfig

LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# Labels the exporter sets itself.
OWN_LABELS = ("alertname", "severity")


def label_name(text: str) -> str:
    """``text`` as an Alertmanager label or annotation name: other characters become ``_``.

    >>> label_name("otelml.key"), label_name("1st")
    ('otelml_key', '_1st')
    """
    name = re.sub(r"[^a-zA-Z0-9_]", "_", text)
    return name if LABEL_NAME.match(name) else f"_{name}"


class AlertmanagerExporterConfig(ExporterHelperConfig):
    """The collector-contrib alertmanager exporter's settings, plus ``labels``."""

    endpoint: str = "http://localhost:9093"
    # A link to where the alert comes from; empty sends none. (Contrib's default,
    # "opentelemetry-collector", is not a URI and Alertmanager refuses it.)
    generator_url: str = ""
    severity: str = "info"
    severity_attribute: str = ""
    api_version: str = "v2"
    # Contrib's: record attributes copied into labels of the same (sanitised) name.
    event_labels: list[str] = []
    # Label name -> record reference (resource.<attribute>, attributes.<attribute>, log.* fields, body).
    labels: dict[str, str] = {"service": "resource.service.name", "key": "attributes.otelml.key"}
    headers: dict[str, SecretStr] = {}
    tls: ClientTLSConfig = ClientTLSConfig()
    auth: AuthConfig | None = None
    timeout: Duration = 30.0
    # One sender keeps alerts in order, so a resolution never overtakes the alert it resolves.
    sending_queue: QueueConfig = QueueConfig(num_consumers=1)

    def validate_config(self) -> list[str]:
        problems = super().validate_config()
        if (problem := http_url_problem(self.endpoint)) is not None:
            problems.append(f"endpoint: {problem}")
        if self.api_version != "v2":
            problems.append(f"api_version: {self.api_version!r} is not supported; use v2 (Alertmanager removed v1 in 0.27)")
        if self.generator_url and not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", self.generator_url):
            problems.append(f"generator_url: {self.generator_url!r} must be a URL (Alertmanager refuses anything else)")
        if not self.severity:
            problems.append("severity: must not be empty")
        for label, reference in self.labels.items():
            if not LABEL_NAME.match(label):
                problems.append(f"labels::{label}: not a label name (letters, digits and _, not first a digit)")
            elif label in OWN_LABELS:
                problems.append(f"labels::{label}: set by the exporter itself")
            try:
                label_reference(reference)
            except ValueError as error:
                problems.append(f"labels::{label}: {error}")
        return problems

    def label_references(self) -> dict[str, Reference]:
        """Every label read from the records, by label name: ``labels`` and ``event_labels``."""
        references = {label_name(name): label_reference(f"attributes.{name}") for name in self.event_labels}
        references.update({label: label_reference(text) for label, text in self.labels.items()})
        return references


def label_reference(text: str) -> Reference:
    reference = parse_key(text)
    if reference.level == "scope":
        raise ValueError(f'"{text}": scope references are not supported for labels')
    check_signal(reference, Signal.LOGS)
    return reference
