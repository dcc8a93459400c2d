"""Clients of the security tests: the OpenTelemetry SDK exporters, raw TLS handshakes, otelml configs."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import grpc
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otelml.pdata import Signal
from tests.conftest import otlp_to_file_config, read_batches, spans_of
from tests.security.certs import PKI

# Short, so that a refused export (which the SDK retries) fails fast.
SDK_TIMEOUT = 3
TRACES_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def address(otelml, protocol: str) -> str:
    """host:port of an OtelmlProcess's OTLP ``grpc`` or ``http`` receiver."""
    return otelml.grpc_endpoint if protocol == "grpc" else f"127.0.0.1:{otelml.ports['HTTP']}"


def received_span_names(otelml) -> list[str]:
    """Sorted names of the spans an OtelmlProcess of :func:`gateway_config` has written."""
    return sorted(s.name for s in spans_of(read_batches(otelml.workdir / "out.jsonl", Signal.TRACES)))


def send_traces(otelml, request) -> None:
    """One export over plain-text gRPC to an OtelmlProcess; raises grpc.RpcError when refused."""
    with grpc.insecure_channel(otelml.grpc_endpoint) as channel:
        channel.unary_unary(TRACES_METHOD, request_serializer=lambda m: m.SerializeToString())(request, timeout=10)


def make_spans(count: int, service: str = "security-test") -> tuple[ReadableSpan, ...]:
    """Finished SDK spans, ready to hand to an exporter."""
    recorder = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(recorder))
    tracer = provider.get_tracer("security")
    for index in range(count):
        with tracer.start_as_current_span(f"op-{index}"):
            pass
    provider.shutdown()
    return recorder.get_finished_spans()


def sdk_export(
    protocol: str,
    address: str,
    spans,
    *,
    ca: Path | None = None,
    client: tuple[Path, Path] | None = None,
    headers: dict[str, str] | None = None,
    plain: bool = False,
) -> SpanExportResult:
    """Export ``spans`` with the SDK's OTLP exporter over ``grpc`` or ``http``; returns its verdict.

    ``ca`` is the CA to trust, ``client`` a (certificate, key) pair for mutual TLS, ``plain`` no TLS at all.
    """
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        credentials = (
            None
            if plain
            else grpc.ssl_channel_credentials(
                root_certificates=ca.read_bytes() if ca else None,
                private_key=client[1].read_bytes() if client else None,
                certificate_chain=client[0].read_bytes() if client else None,
            )
        )
        exporter = OTLPSpanExporter(
            endpoint=address, insecure=plain, credentials=credentials, headers=headers, timeout=SDK_TIMEOUT
        )
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(
            endpoint=f"{'http' if plain else 'https'}://{address}/v1/traces",
            headers=headers,
            timeout=SDK_TIMEOUT,
            certificate_file=str(ca) if ca else None,
            client_certificate_file=str(client[0]) if client else None,
            client_key_file=str(client[1]) if client else None,
        )
    try:
        return exporter.export(spans)
    finally:
        exporter.shutdown()


def served_certificate(address: tuple[str, int], ca: Path) -> bytes:
    """The DER certificate a TLS server presents (ALPN h2 too, as gRPC clients offer it)."""
    context = ssl.create_default_context(cafile=str(ca))
    context.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(address, timeout=5) as raw, context.wrap_socket(raw, server_hostname=address[0]) as tls:
        return tls.getpeercert(binary_form=True)


def server_tls(pki: PKI, mutual: bool = False, **extra) -> dict:
    tls = {"cert_file": str(pki.server_cert), "key_file": str(pki.server_key), **extra}
    if mutual:
        tls["client_ca_file"] = str(pki.ca.cert_file)
    return tls


def gateway_config(tls: dict | None = None, auth: str | None = None, extensions: dict | None = None) -> dict:
    """OTLP gRPC+HTTP in (with ``tls`` and the ``auth`` authenticator on both), file out."""
    config = otlp_to_file_config()
    for protocol in config["receivers"]["otlp"]["protocols"].values():
        if tls:
            protocol["tls"] = dict(tls)
        if auth:
            protocol["auth"] = {"authenticator": auth}
    config["extensions"].update(extensions or {})
    config["service"]["extensions"] += list(extensions or {})
    return config
