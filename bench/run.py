"""Run every system under the same load, one after another, and report figures and ratios.

``python -m bench [--quick] [--json FILE] [--systems a,b]``; see bench/README.md for how to read it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import statistics
import sys
import time
from pathlib import Path

from bench import kafka
from bench.ceiling import measure_ceiling
from bench.load import Workload, drive
from bench.sink import Sink
from bench.systems import System
from otelml.processors.anomaly.config import DEFAULT_MODELS

RATE_FRACTIONS = (0.25, 0.5, 0.75)


def default_systems() -> dict[str, System]:
    return {
        "otelml": System("otelml", "otelml"),
        "otelml-anomaly": System("otelml-anomaly", "otelml", processors=[{"batch": {}}, {"anomaly": {}}]),
        # The default models plus one of River's own regressors (run per key through the adapter): a forecaster
        # that reads no features, and a linear regression on the features.
        "otelml-anomaly-river": System(
            "otelml-anomaly-river",
            "otelml",
            processors=[{"batch": {}}, {"anomaly": {"models": [*(model.name for model in DEFAULT_MODELS), "holt_winters"]}}],
        ),
        "otelml-anomaly-river-features": System(
            "otelml-anomaly-river-features",
            "otelml",
            processors=[{"batch": {}}, {"anomaly": {"models": [*(model.name for model in DEFAULT_MODELS), "linear_regression"]}}],
        ),
        "otelml-kafka": System("otelml-kafka", "otelml", kafka_brokers="(started by the run)"),
        "rotel": System("rotel", "rotel"),
        "rotel-river": System("rotel-river", "rotel", rotel_processor=Path(__file__).parent / "rotel_river_processor.py"),
    }


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure_throughput(system: System, workload: Workload, seconds: float, streams: int) -> dict:
    running = system.start(sink_port=None)
    try:
        await drive(running.endpoint, workload, min(1.0, seconds), streams)  # warm-up, not counted
        cpu_before = running.cpu()
        result = await drive(running.endpoint, workload, seconds, streams)
        await asyncio.sleep(0.5)  # let it finish what it acknowledged
        cpu = running.cpu() - cpu_before
        return {
            "system": system.name,
            "spans_per_second": result.spans_per_second,
            "spans_per_cpu_second": result.spans / cpu if cpu else 0.0,
            "cpu_seconds": cpu,
            "spans": result.spans,
            "errors": result.errors,
            "peak_rss_mib": running.peak_rss(),
            "requests_per_second": result.requests / result.seconds,
        }
    finally:
        running.stop()


async def measure_latency(system: System, workload: Workload, requests_per_second: float, seconds: float, streams: int) -> dict:
    latency_system = System(system.name, system.kind, system.processors, system.rotel_processor, batch_timeout="20ms")
    sink = await Sink().start()
    running = latency_system.start(sink_port=sink.port)
    try:
        await drive(running.endpoint, workload, min(1.0, seconds), streams)
        result = await drive(running.endpoint, workload, seconds, streams, rate=requests_per_second)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(sink.arrivals) < len(result.send_times):
            await asyncio.sleep(0.1)
    finally:
        running.stop()
        await sink.stop()
    latencies = [(sink.arrivals[n] - sent) / 1e6 for n, sent in result.send_times.items() if n in sink.arrivals]
    return {
        "rate_rps": requests_per_second,
        "sent": len(result.send_times),
        "seen": len(latencies),
        "p50_ms": percentile(latencies, 0.5),
        "p99_ms": percentile(latencies, 0.99),
        "p999_ms": percentile(latencies, 0.999),
        "mean_ms": statistics.fmean(latencies) if latencies else float("nan"),
    }


async def run(names: list[str], seconds: float, latency_seconds: float, fractions, streams: int, scale_messages: int) -> dict:
    workload = Workload.build()
    systems = default_systems()
    results = {
        "workload": {
            "spans_per_request": workload.spans_per_request,
            "services": 50,
            "operations": 20,
            "attributes_per_span": 10,
            "streams": streams,
        },
        "systems": {},
    }
    needs_kafka = "otelml-kafka" in names
    with kafka.tansu() if needs_kafka else contextlib.nullcontext() as brokers:
        if needs_kafka:
            systems["otelml-kafka"].kafka_brokers = brokers
        for name in names:
            print(f"measuring {name} ...", file=sys.stderr)
            if name == "ceiling":
                results["systems"]["ceiling"] = measure_ceiling(workload, seconds)
            elif name == "scale":
                results["scale"] = await kafka.measure_scale(workload, scale_messages)
            elif name == "takeover":
                results["takeover"] = [await kafka.measure_takeover(how) for how in (signal.SIGKILL, signal.SIGTERM)]
            else:
                system = systems[name]
                figures = await measure_throughput(system, workload, seconds, streams)
                # Latency is measured receive -> export through an OTLP sink, so not for the Kafka exporter.
                if system.kafka_brokers is None:
                    figures["latency"] = [
                        await measure_latency(system, workload, f * figures["requests_per_second"], latency_seconds, streams)
                        for f in fractions
                    ]
                results["systems"][name] = figures
    results["ratios"] = ratios(results["systems"])
    return results


def ratios(systems: dict) -> dict:
    def ratio(a: str, b: str) -> float | None:
        if a in systems and b in systems and systems[b]["spans_per_cpu_second"]:
            return systems[a]["spans_per_cpu_second"] / systems[b]["spans_per_cpu_second"]
        return None

    pairs = {
        "otelml/rotel": ("otelml", "rotel"),
        "otelml/ceiling": ("otelml", "ceiling"),
        "otelml-anomaly/rotel-river": ("otelml-anomaly", "rotel-river"),
    }
    return {label: value for label, (a, b) in pairs.items() if (value := ratio(a, b)) is not None}


def markdown(results: dict) -> str:
    lines = [
        "| system | spans/s | spans per CPU-s | peak RSS MiB | latency p50 / p99 / p99.9 ms at 25% · 50% · 75% of max |",
        "|---|---:|---:|---:|---|",
    ]
    for name, figures in results["systems"].items():
        latency = " · ".join(
            f"{run['p50_ms']:.1f} / {run['p99_ms']:.1f} / {run['p999_ms']:.1f}" for run in figures.get("latency", [])
        )
        rss = f"{figures['peak_rss_mib']:.0f}" if "peak_rss_mib" in figures else "–"
        lines.append(
            f"| {name} | {figures['spans_per_second']:,.0f} | {figures['spans_per_cpu_second']:,.0f} | {rss} | {latency or '–'} |"
        )
    lines.append("")
    lines += [f"- {label} (spans per CPU-second): **{value:.2f}x**" for label, value in results["ratios"].items()]
    if "scale" in results:
        runs = results["scale"]["runs"]
        lines.append(
            f"- gateways sharing a topic's {kafka.PARTITIONS} partitions (kafka -> anomaly -> file, state in a changelog), "
            f"on {results['scale']['cores']} cores that also run the broker and the producer: "
            + ", ".join(
                f"{run['instances']}{'' if run['changelog'] else ' without changelog'}: {run['spans_per_second']:,.0f} spans/s "
                f"(**{run['speedup']:.2f}x**), {run['spans'] / run['cpu_seconds']:,.0f} spans per CPU-s"
                for run in runs
            )
        )
    for takeover in results.get("takeover", []):
        lines.append(
            f"- {takeover['stop']} of one of two gateways: its {takeover['moved_partitions']} partitions scored again, "
            f"models warm, after **{takeover['seconds']:.1f} s** (session timeout {takeover['session_timeout']})"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs, one latency point, no scale run (under a minute)")
    parser.add_argument(
        "--systems",
        default=None,
        help="comma-separated subset of: " + ", ".join([*default_systems(), "ceiling", "scale", "takeover"]),
    )
    parser.add_argument("--json", type=Path, default=Path("bench/results/latest.json"))
    parser.add_argument("--seconds", type=float, default=None, help="seconds of load per throughput run")
    parser.add_argument("--streams", type=int, default=4, help="concurrent gRPC streams")
    args = parser.parse_args(argv)
    # The quick mode leaves out the gateway scale and takeover runs: a consumer group alone takes seconds to settle.
    everything = [*default_systems(), "ceiling"] + ([] if args.quick else ["scale", "takeover"])
    names = args.systems.split(",") if args.systems else everything
    seconds = args.seconds or (2.0 if args.quick else 10.0)
    fractions = (0.5,) if args.quick else RATE_FRACTIONS
    scale_messages = 150 if args.quick else 600
    results = asyncio.run(run(names, seconds, seconds if args.quick else 8.0, fractions, args.streams, scale_messages))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print(markdown(results))
    return 0
