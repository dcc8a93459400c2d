"""Synthetic trace and log streams with injected incidents, scored through ``otelml replay``.

    python -m evaluation.synthetic

Thirty-six hours of telemetry with a daily rhythm, and on the second
morning one incident per scenario: a latency spike, a latency level shift,
a slow latency drift, a burst of fast-failing (error) spans, a drop in a
service's log volume, a scan from one client address, a burst of ERROR
logs, and a burst of a known message (tenfold, for twenty seconds, of a
message a release began to log ten minutes before); and one scenario
injects nothing, an hour of a busy service's messages (two of them twelve
times a second), where every record flagged is a false alarm. Each scenario runs
through the processor settings a user would pick for it (see
:data:`SCENARIOS`). Every key is one NAB "file" (keys without
an incident have no window); windows are placed NAB's way, centred on the
incident start. Besides the NAB scores, the table shows, at the
processor's own threshold, whether and how fast each incident was flagged
and how many other records were.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import random
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from evaluation.nab import PROFILES, LabelledSeries, score_corpus
from evaluation.run import evaluation_config
from otelml.config import parse
from otelml.confmap import expand
from otelml.conventions import ANOMALY, PREDICTED, SCORE
from otelml.pdata import Signal, from_json, to_json
from otelml.processors.anomaly.extract import BatchReader
from otelml.references import DEFAULT_KEYS, DEFAULT_TARGETS, parse_key, parse_target
from otelml.registry import Registry
from otelml.replay import replay

START = 1_767_225_600.0  # 2026-01-01T00:00:00Z
HOURS = 36
INCIDENT = START + 30 * 3600  # 06:00 on the second day
RECORDS_PER_BATCH = 500
NAB_WINDOW_SHARE = 0.1


def daily(when: float, swing: float) -> float:
    """1 at night, 1 + swing at 15:00 UTC."""
    return 1.0 + swing * max(0.0, math.sin(math.pi * ((when - START) % 86400 / 86400 * 2 - 0.75)))


@dataclasses.dataclass
class Record:
    when: float
    key: str
    value: float
    error: bool = False
    attributes: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Scenario:
    """One kind of incident: how its records are made, and the processor settings that watch it."""

    name: str
    signal: Signal
    processor: dict
    incident_key: str | None  # None: nothing injected, every flag is a false one
    records: Callable[[random.Random], list[Record]]


def arrivals(rng: random.Random, rate: Callable[[float], float], start: float = START, end: float = START + HOURS * 3600):
    """Poisson arrival times with a time-varying rate (thinning)."""
    peak = max(rate(start + step * 600) for step in range(int((end - start) / 600) + 1)) * 1.2
    when = start
    while True:
        when += rng.expovariate(peak)
        if when >= end:
            return
        if rng.random() < rate(when) / peak:
            yield when


def latency_stream(key: str, change: Callable[[float], float], error: Callable[[float], bool] = lambda when: False):
    def make(rng: random.Random) -> list[Record]:
        return [
            Record(when, key, 40.0 * daily(when, 0.5) * change(when) * rng.lognormvariate(0, 0.25), error(when))
            for when in arrivals(rng, lambda when: 0.05 * daily(when, 1.0))
        ]

    return make


def spike(when: float) -> float:
    return 10.0 if INCIDENT <= when < INCIDENT + 600 else 1.0


def shift(when: float) -> float:
    return 3.0 if when >= INCIDENT else 1.0


def drift(when: float) -> float:
    return math.exp(min(max(when - INCIDENT, 0.0), 6 * 3600) / (6 * 3600) * math.log(5.0))


def failing(when: float) -> bool:
    return INCIDENT <= when < INCIDENT + 1800


def traffic_drop(rng: random.Random) -> list[Record]:
    def normal(when: float) -> float:
        return 0.2 * daily(when, 1.0) * (0.15 if INCIDENT <= when < INCIDENT + 3600 else 1.0)

    return [Record(when, "ingest", 9.0) for when in arrivals(rng, normal)]


def scan(rng: random.Random) -> list[Record]:
    records = []
    for client in range(1, 6):
        address = f"10.0.0.{client}"
        records += [
            Record(when, address, 9.0, attributes={"url.path": "/api/items"})
            for when in arrivals(rng, lambda when: 0.05 * daily(when, 1.0))
        ]
    records += [Record(INCIDENT + n * 0.05, "10.0.0.3", 13.0, attributes={"url.path": f"/admin/{n}"}) for n in range(2400)]
    return records


def error_logs(rng: random.Random) -> list[Record]:
    def severity(when: float) -> float:
        if INCIDENT <= when < INCIDENT + 600:
            return 17.0 if rng.random() < 0.7 else 9.0
        return 13.0 if rng.random() < 0.02 else 9.0

    return [Record(when, "billing", severity(when)) for when in arrivals(rng, lambda when: 0.1 * daily(when, 1.0))]


def message_burst(rng: random.Random) -> list[Record]:
    """Three messages of one service. One is new, from a release ten minutes before the incident, and logged
    about once a second; in the incident it comes ten times as often for twenty seconds."""

    def pool(when: float) -> float:
        return 10.0 if INCIDENT <= when < INCIDENT + 20 else 1.0

    released = INCIDENT - 600
    records = [
        Record(when, "billing", 9.0, attributes={"log.record.template.id": "pool"})
        for when in arrivals(rng, pool, start=released, end=INCIDENT + 3600)
    ]
    for template in ("served", "cache"):
        records += [
            Record(when, "billing", 9.0, attributes={"log.record.template.id": template})
            for when in arrivals(rng, lambda when: 0.1 * daily(when, 1.0))
        ]
    return records


def steady_messages(rng: random.Random) -> list[Record]:
    """An hour of a busy service's messages, nothing injected: two logged twelve times a second, one 1.5 times."""
    hour = INCIDENT - 3600
    return [
        Record(when, "shop", 9.0, attributes={"log.record.template.id": template})
        for template, rate in (("lookup", 12.0), ("prepare", 12.0), ("refund", 1.5))
        for when in arrivals(rng, lambda when, rate=rate: rate, start=hour, end=INCIDENT)
    ]


TEMPLATE_RATES = {
    "key": ["resource.service.name", "attributes.log.record.template.id"],
    "target": "rate",
    "models": ["seasonal_profile", "ewm_mean", "level_shift", "range", "burst"],
}

SCENARIOS = [
    Scenario("latency spike", Signal.TRACES, {}, "checkout GET /cart", latency_stream("checkout GET /cart", spike)),
    Scenario("level shift", Signal.TRACES, {}, "payments POST /charge", latency_stream("payments POST /charge", shift)),
    # A latency creeping up over hours is what an SLO limit is for: predicted before it is crossed.
    Scenario(
        "slow drift",
        Signal.TRACES,
        {"trend": {"limit": {"above": "150ms"}}},
        "search GET /search",
        latency_stream("search GET /search", drift),
    ),
    Scenario(
        "error burst (fast failures)",
        Signal.TRACES,
        {},
        "auth POST /login",
        latency_stream("auth POST /login", lambda when: 0.1 if failing(when) else 1.0, failing),
    ),
    # A service's log volume, which should be steady: the rate's defaults and lull, which sees a drop.
    Scenario(
        "traffic drop",
        Signal.LOGS,
        {"target": "rate", "models": ["seasonal_profile", "ewm_mean", "level_shift", "range", "lull"]},
        "ingest",
        traffic_drop,
    ),
    Scenario("scan from one client", Signal.LOGS, {"key": ["attributes.client.address"], "target": "rate"}, "10.0.0.3", scan),
    Scenario("error log burst", Signal.LOGS, {}, "billing", error_logs),
    Scenario("burst of a known message", Signal.LOGS, TEMPLATE_RATES, "billing pool", message_burst),
    Scenario("busy steady messages (nothing injected)", Signal.LOGS, TEMPLATE_RATES, None, steady_messages),
]


def to_batches(signal: Signal, records: list[Record]) -> list:
    """Time-ordered batches; for traces the key is ``service span-name``, for logs the service or client."""
    batches = []
    for first in range(0, len(records), RECORDS_PER_BATCH):
        if signal is Signal.TRACES:
            request = ExportTraceServiceRequest()
            for number, record in enumerate(records[first : first + RECORDS_PER_BATCH]):
                service, name = record.key.split(" ", 1)
                resource = request.resource_spans.add()
                resource.resource.attributes.add(key="service.name").value.string_value = service
                span = resource.scope_spans.add().spans.add(name=name)
                span.trace_id = (first + number + 1).to_bytes(16, "big")
                span.span_id = (first + number + 1).to_bytes(8, "big")
                span.end_time_unix_nano = int(record.when * 1e9)
                span.start_time_unix_nano = span.end_time_unix_nano - int(record.value * 1e6)
                span.status.code = 2 if record.error else 0
        else:
            request = ExportLogsServiceRequest()
            for record in records[first : first + RECORDS_PER_BATCH]:
                resource = request.resource_logs.add()
                client = record.key.startswith("10.")
                resource.resource.attributes.add(key="service.name").value.string_value = "gateway" if client else record.key
                log = resource.scope_logs.add().log_records.add(
                    time_unix_nano=int(record.when * 1e9), severity_number=int(record.value)
                )
                if client:
                    log.attributes.add(key="client.address").value.string_value = record.key
                for name, value in record.attributes.items():
                    log.attributes.add(key=name).value.string_value = value
        batches.append(request)
    return batches


@dataclasses.dataclass
class KeyResult:
    scenario: str
    key: str
    times: np.ndarray
    scores: np.ndarray
    anomalies: np.ndarray
    predicted: np.ndarray
    incident: bool

    def labelled(self) -> LabelledSeries:
        windows = []
        if self.incident:
            centre = int(np.searchsorted(self.times, INCIDENT))
            half = int(NAB_WINDOW_SHARE * len(self.times) / 2)
            windows = [(max(centre - half, 0), min(centre + half, len(self.times) - 1))]
        return LabelledSeries(f"{self.scenario}: {self.key}", self.times, self.scores, windows)


def run_scenario(scenario: Scenario, workdir: Path, seed: int) -> list[KeyResult]:
    records = sorted(scenario.records(random.Random(seed)), key=lambda r: r.when)
    recording = workdir / "recording.jsonl"
    recording.write_bytes(b"".join(to_json(batch) + b"\n" for batch in to_batches(scenario.signal, records)))
    registry = Registry.default()
    config = parse(expand(evaluation_config(scenario.processor, scenario.signal.value)), registry)
    scored = workdir / "scored.jsonl"
    with open(scored, "wb") as output:
        asyncio.run(replay(config, registry, recording, output, progress=False))
    key_refs = [parse_key(text) for text in scenario.processor.get("key", DEFAULT_KEYS[scenario.signal])]
    target = parse_target(scenario.processor.get("target", DEFAULT_TARGETS[scenario.signal]))
    reader = BatchReader(scenario.signal, key_refs, target)
    per_key: dict[str, list[tuple]] = {}
    for line in scored.read_bytes().splitlines():
        columns = reader.read(from_json(line, scenario.signal))
        for key_id, record, when in zip(columns.key_ids.tolist(), columns.records, columns.times):
            key = columns.keys[key_id]
            values = {kv.key: kv.value for kv in record.attributes}
            if SCORE not in values:
                continue  # passed on unscored (e.g. a key's first record with target rate)
            per_key.setdefault(" ".join(key), []).append(
                (when, values[SCORE].double_value, values[ANOMALY].bool_value, values[PREDICTED].bool_value)
            )
    results = []
    for key, rows in per_key.items():
        rows.sort(key=lambda row: row[0])
        columns = list(zip(*rows))
        results.append(
            KeyResult(
                scenario.name,
                key,
                np.asarray(columns[0]),
                np.asarray(columns[1]),
                np.asarray(columns[2], dtype=bool),
                np.asarray(columns[3], dtype=bool),
                key == scenario.incident_key,
            )
        )
    return results


def incident_line(results: list[KeyResult]) -> str:
    """Scenario, first flag after the incident start (anomaly or predicted incident), false flags."""
    incident = next((r for r in results if r.incident), None)
    delay = anomaly_delay = "        -"
    if incident is not None:
        after = incident.times >= INCIDENT
        flagged = after & (incident.anomalies | incident.predicted)
        delay = f"{incident.times[flagged][0] - INCIDENT:8.0f}s" if flagged.any() else "   missed"
        first_anomaly = after & incident.anomalies
        anomaly_delay = f"{incident.times[first_anomaly][0] - INCIDENT:8.0f}s" if first_anomaly.any() else "        -"
    total = sum(len(r.times) for r in results)
    labelled = [r.labelled() for r in results]
    false_flags = 0
    for result, series in zip(results, labelled):
        outside = np.ones(len(result.times), dtype=bool)
        for start, end in series.windows:
            outside[start : end + 1] = False
        false_flags += int((result.anomalies & outside)[100:].sum())
    return f"| {results[0].scenario} | {len(results)} | {total} | {delay} | {anomaly_delay} | {false_flags} |"


def main() -> int:
    results: list[KeyResult] = []
    lines = ["| scenario | keys | records | first flag | first anomaly | other records flagged |", "|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as folder:
        for number, scenario in enumerate(SCENARIOS):
            print(f"replaying {scenario.name} ...", file=sys.stderr)
            scenario_results = run_scenario(scenario, Path(folder), seed=number)
            lines.append(incident_line(scenario_results))
            results += scenario_results
    corpus = [r.labelled() for r in results]
    scores = [r.scores for r in results]
    print("\n".join(lines))
    nab = {name: score_corpus(corpus, scores, profile).normalised for name, profile in PROFILES.items()}
    print("\nNAB-style score over all keys: " + ", ".join(f"{name} {value:.1f}" for name, value in nab.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
