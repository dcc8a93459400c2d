"""In-process services for the reliability tests, with an exporter that keeps what it gets."""

from __future__ import annotations

import asyncio
import contextlib

from otelml.component import Component, ComponentID, Kind
from otelml.config import parse
from otelml.configmodel import ComponentConfig
from otelml.confmap import expand
from otelml.pdata import Batch, Signal, count_items
from otelml.registry import Factory, Registry
from otelml.service import Service


class CaptureConfig(ComponentConfig):
    pass


class CaptureExporter(Component):
    """Keeps every batch; while ``gate`` is clear, ``consume`` waits (a stuck destination)."""

    mutates_data = False

    def __init__(self, settings, config: CaptureConfig):
        self.batches: list[Batch] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.waiting = 0  # consume() calls held at the gate

    async def consume(self, batch: Batch) -> None:
        self.waiting += 1
        try:
            await self.gate.wait()
        finally:
            self.waiting -= 1
        self.batches.append(batch)

    def items(self) -> int:
        return sum(count_items(batch) for batch in self.batches)


CAPTURE = Factory(
    type="capture", kind=Kind.EXPORTER, config_class=CaptureConfig, create=CaptureExporter, signals=frozenset(Signal)
)


def registry_with_capture() -> Registry:
    registry = Registry.default()
    registry.add(CAPTURE)
    return registry


@contextlib.asynccontextmanager
async def running_service(document: dict):
    """A started Service built from ``document`` (``capture`` exporters allowed); shut down on exit."""
    registry = registry_with_capture()
    service = Service(parse(expand(document), registry), registry)
    await service.start()
    try:
        yield service
    finally:
        await service.shutdown()


def receiver_address(service: Service, transport: str, receiver: str = "otlp") -> str:
    host, port = service.graph.receivers[ComponentID.parse(receiver)].addresses[transport]
    return f"{host}:{port}"


def capture(service: Service, exporter: str = "capture") -> CaptureExporter:
    return service.graph.exporters[ComponentID.parse(exporter)]
