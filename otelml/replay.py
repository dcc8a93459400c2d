"""``otelml replay``: run a config's processors over recorded telemetry, as fast as possible.

The input is what the ``file`` exporter writes in ``json`` format: one OTLP
JSON object (an ``Export*ServiceRequest``) per line, optionally zstd
compressed. Each line goes, as one batch, through the processors of every
pipeline of its signal that a receiver feeds (or only those named with
``--pipeline``), in order; what comes out is written as OTLP JSON lines to
``--output``. Exporters, receivers and connectors are not run. Processors
that keep per-key state (the ``anomaly`` processor) then print a summary
per key.

Since the anomaly processor uses record timestamps only, a replay gives the
same scores as the live run that recorded the data.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import io
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

import zstandard
from tqdm import tqdm

from otelml.component import Component, ComponentID, Kind
from otelml.config import Config, Pipeline
from otelml.consumer import Consumer
from otelml.graph import build_chain
from otelml.keysummary import KeySummarySource
from otelml.pdata import Batch, Signal, from_json, to_json
from otelml.registry import Registry
from otelml.telemetry import Telemetry

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
SIGNAL_OF_FIELD = {"resourceSpans": Signal.TRACES, "resourceLogs": Signal.LOGS, "resourceMetrics": Signal.METRICS}


def add_replay_command(subparsers) -> argparse.ArgumentParser:
    """Register ``replay`` on the CLI's subcommands; the CLI adds its config options (``--config``, ``--set``)."""
    parser = subparsers.add_parser("replay", help="run the configured processors over a recorded OTLP JSON lines file")
    parser.add_argument("--input", required=True, type=Path, help="OTLP JSON lines written by the file exporter (.zst too)")
    parser.add_argument("--output", type=Path, help="write the processed batches here as OTLP JSON lines")
    parser.add_argument(
        "--pipeline",
        action="append",
        dest="pipelines",
        metavar="ID",
        help="replay through this pipeline only (e.g. traces/anomaly); repeatable",
    )
    parser.add_argument("--top", type=int, default=20, help="keys to list per processor, highest score first (default 20)")
    return parser


class _Host:
    """Replay runs no extensions; its components are the processors it replays."""

    def __init__(self, components: list[Component]):
        self._components = components

    def get_extension(self, component_id: ComponentID):
        return None

    def components(self) -> list[Component]:
        return list(self._components)

    def healthy(self) -> bool:
        return True

    def partition_owners(self, receiver_id: ComponentID, signal: Signal) -> list:
        return []  # replay has no receivers


class _Writer:
    """The end of every replayed pipeline: writes batches as OTLP JSON lines."""

    mutates_data = False

    def __init__(self, output: IO[bytes] | None):
        self.output = output
        self.batches = 0

    async def consume(self, batch: Batch) -> None:
        self.batches += 1
        if self.output is not None:
            self.output.write(to_json(batch) + b"\n")


@dataclasses.dataclass
class ReplayChain:
    """One replayed pipeline: its processors, first to last, and the telemetry they count into."""

    pipeline: Pipeline
    entry: Consumer
    processors: list[Component]
    telemetry: Telemetry

    def records_in(self, position: int) -> int:
        """Items that reached the processor at ``position``, counted as the service counts them."""
        return int(
            self.telemetry.value(
                "otelcol_processor_incoming_items_total",
                processor=str(self.pipeline.processors[position]),
                otel_signal=self.pipeline.id.signal.value,
            )
        )


def replay_pipelines(config: Config, names: list[str] | None) -> list[Pipeline]:
    """Pipelines fed by a receiver (not by a connector), or those named."""
    connectors = config.components[Kind.CONNECTOR]
    if names:
        by_name = {str(p.id): p for p in config.pipelines.values()}
        unknown = [name for name in names if name not in by_name]
        if unknown:
            raise ValueError(f"unknown pipeline {', '.join(unknown)} (configured: {', '.join(sorted(by_name))})")
        return [by_name[name] for name in names]
    return [p for p in config.pipelines.values() if any(r not in connectors for r in p.receivers)]


def build_chains(
    config: Config, registry: Registry, telemetry: Telemetry, pipelines: list[Pipeline], sink: Consumer
) -> list[ReplayChain]:
    """Each pipeline's processors in front of ``sink``, built and counted as the service builds them."""
    return [ReplayChain(pipeline, *build_chain(config, registry, telemetry, pipeline, sink), telemetry) for pipeline in pipelines]


def read_lines(path: Path) -> Iterator[tuple[bytes, int]]:
    """Lines of ``path`` with the bytes of the file read so far; zstd frames are decompressed."""
    with open(path, "rb") as raw:
        compressed = raw.read(4) == ZSTD_MAGIC
        raw.seek(0)
        stream = (
            io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)) if compressed else raw
        )
        for line in stream:
            if line.strip():
                yield line, raw.tell()


def signal_of_line(line: bytes, number: int) -> tuple[Signal, dict]:
    try:
        document = json.loads(line)
    except ValueError as error:
        raise ValueError(f"line {number}: invalid JSON: {error}") from None
    fields = [SIGNAL_OF_FIELD[field] for field in document if field in SIGNAL_OF_FIELD] if isinstance(document, dict) else []
    if len(fields) != 1:
        raise ValueError(f"line {number}: not an OTLP traces, logs or metrics request")
    return fields[0], document


async def replay_batches(
    config: Config, registry: Registry, batches: Iterable[Batch], sink: Consumer, pipelines: list[str] | None = None
) -> list[ReplayChain]:
    """Run ``batches`` through the chains of the replayed pipelines into ``sink``; returns the chains.

    The one way batches are replayed: :func:`replay` feeds it from a file,
    the evaluation harness from memory.
    """
    telemetry = Telemetry()
    chains = build_chains(config, registry, telemetry, replay_pipelines(config, pipelines), sink)
    by_signal: dict[Signal, list[ReplayChain]] = {}
    for chain in chains:
        by_signal.setdefault(chain.pipeline.id.signal, []).append(chain)
    host = _Host([processor for chain in chains for processor in chain.processors])
    started = []
    try:
        for chain in chains:
            for processor in reversed(chain.processors):
                await processor.start(host)
                started.append(processor)
        for batch in batches:
            targets = by_signal.get(Signal.of(batch), [])
            for index, chain in enumerate(targets):
                # Every chain but the last gets its own copy: processors change batches in place.
                if index < len(targets) - 1:
                    copy = type(batch)()
                    copy.CopyFrom(batch)
                    await chain.entry.consume(copy)
                else:
                    await chain.entry.consume(batch)
    finally:
        # Upstream first, so that what a processor still holds drains downstream.
        for processor in reversed(started):
            await processor.shutdown()
    return chains


async def replay(
    config: Config,
    registry: Registry,
    input_path: Path,
    output: IO[bytes] | None,
    pipelines: list[str] | None = None,
    progress: bool = True,
) -> tuple[list[ReplayChain], int]:
    """Run every line of ``input_path`` through the chains; returns them and the lines read."""
    lines = 0

    def batches() -> Iterator[Batch]:
        nonlocal lines
        with tqdm(
            total=input_path.stat().st_size, unit="B", unit_scale=True, desc="replay", disable=not progress, file=sys.stderr
        ) as bar:
            for lines, (line, position) in enumerate(read_lines(input_path), start=1):
                signal, document = signal_of_line(line, lines)
                yield from_json(document, signal)
                bar.update(position - bar.n)

    chains = await replay_batches(config, registry, batches(), _Writer(output), pipelines)
    return chains, lines


def print_summary(chains: list[ReplayChain], lines: int, top: int, out: IO[str] | None = None) -> None:
    out = out or sys.stdout
    print(f"replayed {lines} batches", file=out)
    for chain in chains:
        for position, processor in enumerate(chain.processors):
            if not isinstance(processor, KeySummarySource):
                continue
            rows = sorted(processor.key_summaries(), key=lambda row: row[1].max_score, reverse=True)
            anomalies = sum(state.anomalies for _, state in rows)
            incidents = sum(state.incidents for _, state in rows)
            print(
                f"\n{chain.pipeline.id} / {chain.pipeline.processors[position]}: {len(rows)} keys, "
                f"{chain.records_in(position)} records, {anomalies} anomalies, {incidents} predicted incidents",
                file=out,
            )
            print(f"  {'records':>9} {'anomalies':>9} {'incidents':>9} {'max score':>9}  key", file=out)
            for description, state in rows[:top]:
                print(
                    f"  {state.count:>9} {state.anomalies:>9} {state.incidents:>9} {state.max_score:>9.3f}  {description}",
                    file=out,
                )
            if len(rows) > top:
                print(f"  ... {len(rows) - top} more keys (--top to list them)", file=out)


def run_replay(config: Config, registry: Registry, args: argparse.Namespace) -> int:
    """The ``replay`` command; returns the exit code."""
    output = open(args.output, "wb") if args.output else None
    try:
        chains, lines = asyncio.run(replay(config, registry, args.input, output, args.pipelines))
    except (OSError, ValueError) as error:
        print(f"otelml replay: {error}", file=sys.stderr)
        return 1
    finally:
        if output is not None:
            output.close()
    print_summary(chains, lines, args.top)
    return 0
