"""Throughput and memory of the ``anomaly`` processor on pre-built span batches.

    python -m bench.anomaly_speed                       # default models, 1000 keys
    python -m bench.anomaly_speed --profile             # and where the time goes (needs pyinstrument)

Batches come from :mod:`otelml.synthetic` (services x operations keys, ~10
attributes per span), are built and parsed before timing, and go through
``AnomalyProcessor.process`` one by one; CPU time is measured with
``time.process_time`` over the scoring only, with the garbage collector
and the allocator tuned before the first batch as the service tunes them
once everything has started (:func:`otelml.service.tune_memory`). The
first pass warms every key up; the timed passes continue the same streams
(later record times). State per key is measured with tracemalloc (live
Python memory of the key store) and as the size of a checkpoint.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

from otelml.component import ComponentID, CreateSettings, Kind
from otelml.pdata import Signal
from otelml.processors.anomaly.config import AnomalyConfig
from otelml.processors.anomaly.processor import AnomalyProcessor
from otelml.service import tune_memory
from otelml.synthetic import BASE_TIME_NS, make_trace_request
from otelml.telemetry import Telemetry

SPACING_NS = 1_000_000


class _Discard:
    mutates_data = False

    async def consume(self, batch) -> None:
        return None


def make_batches(count: int, spans: int, services: int, operations: int, first: int) -> list:
    return [
        make_trace_request(
            spans=spans,
            services=services,
            operations=operations,
            seed=first + n,
            anomaly_rate=0.001,
            start_ns=BASE_TIME_NS + (first + n) * spans * SPACING_NS,
            spacing_ns=SPACING_NS,
        )
        for n in range(count)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.anomaly_speed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=20, help="timed batches (default 20)")
    parser.add_argument("--spans", type=int, default=8192, help="spans per batch (default 8192)")
    parser.add_argument("--services", type=int, default=50)
    parser.add_argument("--operations", type=int, default=20)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=YAML",
        help="processor setting, e.g. --set 'models=[linear_regression]'",
    )
    parser.add_argument("--profile", action="store_true", help="profile the timed passes with pyinstrument")
    args = parser.parse_args(argv)
    import yaml

    settings = {key: yaml.safe_load(value) for key, value in (item.split("=", 1) for item in args.set)}
    config = AnomalyConfig.model_validate(settings)
    processor = AnomalyProcessor(
        CreateSettings(ComponentID("anomaly"), Kind.PROCESSOR, Telemetry()), config, Signal.TRACES, _Discard()
    )
    keys = args.services * args.operations
    warmup = make_batches(max(1, 4 * keys // args.spans), args.spans, args.services, args.operations, first=0)
    timed = make_batches(args.batches, args.spans, args.services, args.operations, first=len(warmup))

    # As in the service once it has started.
    tune_memory()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for batch in warmup:
        processor.process(batch)
    del batch
    state_bytes = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    live_keys = len(processor.store.keys)

    profiler = None
    if args.profile:
        from pyinstrument import Profiler

        profiler = Profiler()
        profiler.start()
    started = time.process_time()
    for batch in timed:
        processor.process(batch)
    elapsed = time.process_time() - started
    if profiler:
        profiler.stop()

    spans = args.batches * args.spans
    processor.store.signing_key = b"bench-only-signing-key"
    checkpoint = len(processor.store.dump(processor.fingerprint))
    models = ", ".join(model.id for model in processor.engine.models)
    print(f"models: {models}; {args.batches} batches x {args.spans} spans, {live_keys} keys")
    print(f"throughput: {spans / elapsed:,.0f} spans per CPU-second ({elapsed * 1e6 / spans:.2f} us per span)")
    print(f"state per key: {state_bytes / live_keys:,.0f} bytes in memory, {checkpoint / live_keys:,.0f} bytes in a checkpoint")
    if profiler:
        print(profiler.output_text(unicode=False, color=False, show_all=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
