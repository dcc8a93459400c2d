"""The ``forward`` connector: passes data unchanged from one pipeline into others of the same signal.

Use it to fan one pipeline out into several with different processors,
or to merge pipelines, as with the collector's forward connector.
"""

from otelml.component import Component, Kind
from otelml.configmodel import ComponentConfig
from otelml.pdata import Batch, Signal
from otelml.registry import Factory


class ForwardConfig(ComponentConfig):
    pass


class ForwardConnector(Component):
    def __init__(self, settings, config: ForwardConfig, consumers):
        self.consumers = consumers
        self.mutates_data = any(c.mutates_data for c in consumers.values())

    async def consume(self, batch: Batch) -> None:
        await self.consumers[Signal.of(batch)].consume(batch)


factory = Factory(
    type="forward",
    kind=Kind.CONNECTOR,
    config_class=ForwardConfig,
    create=ForwardConnector,
    connects=frozenset((s, s) for s in Signal),
    stability="beta",
)
