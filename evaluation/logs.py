"""Log template mining on Loghub's 2,000-line samples, with one config for every system.

    python -m evaluation.logs                  # default config, per system, and leave-one-system-out
    python -m evaluation.logs --data DIR       # every sample in another folder (another copy, other systems)

Each system's lines (the ``Content`` column) go, as the bodies of OTLP log
records of one service, through the ``drain`` processor with its default
config. Two groupings are scored the Loghub way (:func:`grouping_accuracy`):
the templates the lines belong to once the whole sample has been read (the
definition of the published figures), and the template id each record
carried when it left the processor (what a user downstream sees).

Leave-one-system-out checks that the default generalises: for each system,
the setting of :data:`GRID` with the best mean on the seven others is chosen
and scored on the held-out one.

Every sample goes, after the ``drain`` processor, through each of the two log
detectors of ``config/demo.yaml`` on templates: the novelty detector
(``anomaly/logs``) and the rate of each template (``anomaly/templates``).
Where a sample labels its alert lines (BGL's ``Label`` column),
:func:`detector_flags` counts how many alert lines and alert categories a
detector flags (``otelml.anomaly``) against normal lines; in the samples
without labels, the lines it flags are counted as the cost of the detector on
logs of healthy systems.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import csv
import dataclasses
import os
import sys
from collections.abc import Hashable, Sequence
from pathlib import Path

import yaml
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from otelml import conventions
from otelml.component import ComponentID, CreateSettings, Kind
from otelml.pdata import Signal
from otelml.processors.anomaly.config import AnomalyConfig
from otelml.processors.anomaly.processor import AnomalyProcessor
from otelml.processors.drain.config import DrainConfig
from otelml.processors.drain.processor import DrainProcessor
from otelml.telemetry import Telemetry

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_ENV = "OTELML_LOGHUB_DATA"
SYSTEMS = ("HDFS", "Hadoop", "Spark", "Zookeeper", "BGL", "HPC", "Windows", "Apache")
# Drain with per-system settings and regular expressions (Zhu et al., ICSE-SEIP 2019), as quoted in the data's README.
PUBLISHED_DRAIN = {
    "HDFS": 0.998,
    "Hadoop": 0.948,
    "Spark": 0.920,
    "Zookeeper": 0.967,
    "BGL": 0.963,
    "HPC": 0.887,
    "Windows": 0.997,
    "Apache": 1.000,
}
# What leave-one-system-out chooses from.
GRID = [
    {"merge_threshold": threshold, "tree_depth": depth}
    for threshold in (0.75, 0.8, 0.85, 0.88, 0.9, 0.92, 0.95)
    for depth in (4, 5)
]
BATCH_SIZE = 512


@dataclasses.dataclass
class LogSample:
    """One system's lines with their ground truth: event id and, for BGL, the alert label (``-``: normal).

    ``times`` (seconds since the epoch) and ``levels`` are the lines' own where the sample gives them
    (BGL), else empty.
    """

    system: str
    lines: list[str]
    events: list[str]
    labels: list[str]
    times: list[float] = dataclasses.field(default_factory=list)
    levels: list[str] = dataclasses.field(default_factory=list)


def grouping_accuracy(truth: Sequence[Hashable], predicted: Sequence[Hashable]) -> float:
    """Loghub's grouping accuracy: the share of lines whose predicted group holds exactly the lines of their true group.

    >>> grouping_accuracy(["a", "a", "b", "c"], [1, 1, 2, 2])
    0.5
    >>> grouping_accuracy(["a", "a", "b"], ["x", "y", "z"])
    0.3333333333333333
    """
    true_groups: dict[Hashable, set[int]] = collections.defaultdict(set)
    found_groups: dict[Hashable, set[int]] = collections.defaultdict(set)
    for line, (event, group) in enumerate(zip(truth, predicted, strict=True)):
        true_groups[event].add(line)
        found_groups[group].add(line)
    right = sum(len(lines) for lines in found_groups.values() if true_groups[truth[next(iter(lines))]] == lines)
    return right / len(truth)


def locate_data(explicit: str | None = None) -> Path:
    """The loghub-2k folder: ``--data``, ``$OTELML_LOGHUB_DATA``, else ``../shared/data/loghub-2k`` beside the repo."""
    chosen = explicit or os.environ.get(DATA_ENV)
    path = Path(chosen) if chosen else REPO_ROOT.parent / "shared" / "data" / "loghub-2k"
    if not any(path.glob("*/*_2k.log_structured.csv")):
        raise FileNotFoundError(f"no loghub-2k data at {path} (set {DATA_ENV} or --data to the folder holding HDFS/, BGL/, ...)")
    return path


def found_systems(root: Path) -> list[str]:
    """The systems with a sample in ``root``: the dev systems first, in :data:`SYSTEMS` order, then the others."""
    present = {path.parent.name for path in root.glob("*/*_2k.log_structured.csv")}
    return [system for system in SYSTEMS if system in present] + sorted(present - set(SYSTEMS))


def load_sample(root: Path, system: str) -> LogSample:
    """One system's sample. Loghub's systems differ in columns: times and levels are read where the sample has them."""
    with open(root / system / f"{system}_2k.log_structured.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    try:
        times = [float(row["Timestamp"]) for row in rows] if "Timestamp" in rows[0] else []
    except ValueError:
        times = []
    return LogSample(
        system,
        [row["Content"] for row in rows],
        [row["EventId"] for row in rows],
        [row.get("Label", "-") for row in rows],
        times,
        [row["Level"] for row in rows] if times and "Level" in rows[0] else [],
    )


def log_batches(
    lines: Sequence[str], service: str, size: int = BATCH_SIZE, times: Sequence[float] = (), levels: Sequence[str] = ()
) -> list[ExportLogsServiceRequest]:
    """``lines`` as the bodies of log records of one service, ``size`` records a batch.

    Records take ``times`` (seconds) and ``levels`` (as severity text) when given, else are one second apart.
    """
    batches = []
    for start in range(0, len(lines), size):
        batch = ExportLogsServiceRequest()
        resource_logs = batch.resource_logs.add()
        resource_logs.resource.attributes.add(key="service.name").value.string_value = service
        records = resource_logs.scope_logs.add().log_records
        for number, line in enumerate(lines[start : start + size], start):
            seconds = times[number] if times else 1_700_000_000 + number
            record = records.add(time_unix_nano=int(seconds * 10**9), severity_text=levels[number] if levels else "")
            record.body.string_value = line
        batches.append(batch)
    return batches


class _Keep:
    mutates_data = False

    def __init__(self):
        self.batches = []

    async def consume(self, batch) -> None:
        self.batches.append(batch)


def make_processor(settings: dict | None = None) -> DrainProcessor:
    config = DrainConfig.model_validate(settings or {})
    return DrainProcessor(CreateSettings(ComponentID("drain"), Kind.PROCESSOR, Telemetry()), config, Signal.LOGS, _Keep())


@dataclasses.dataclass
class LabelFlags:
    """What a detector flagged in a labelled sample: lines and categories."""

    alert_lines: int
    alerts_flagged: int
    categories: int
    categories_flagged: int
    normal_lines: int
    normals_flagged: int


# The detectors of config/demo.yaml that read templates, as they are there: the novelty of a line's
# template, and the rate of each template.
_DEMO = yaml.safe_load((REPO_ROOT / "config" / "demo.yaml").read_text(encoding="utf-8"))["processors"]
NOVELTY, TEMPLATE_RATE = _DEMO["anomaly/logs"], _DEMO["anomaly/templates"]


def detector_flags(sample: LogSample, settings: dict = NOVELTY) -> LabelFlags:
    """Run ``sample`` (with its own times and levels) through drain and an anomaly processor with ``settings``; count the flags by label."""
    drain = make_processor()
    anomaly = AnomalyProcessor(
        CreateSettings(ComponentID("anomaly", "novelty"), Kind.PROCESSOR, Telemetry()),
        AnomalyConfig.model_validate(settings),
        Signal.LOGS,
        _Keep(),
    )
    drain.next_consumer = anomaly

    async def run() -> None:
        for batch in log_batches(sample.lines, sample.system, times=sample.times, levels=sample.levels):
            await drain.consume(batch)

    asyncio.run(run())
    flags = [
        any(kv.key == conventions.ANOMALY and kv.value.bool_value for kv in record.attributes)
        for batch in anomaly.next_consumer.batches
        for record in batch.resource_logs[0].scope_logs[0].log_records
    ]
    alerts = [(label, flagged) for label, flagged in zip(sample.labels, flags, strict=True) if label != "-"]
    normals = [flagged for label, flagged in zip(sample.labels, flags) if label == "-"]
    categories = {label for label, _ in alerts}
    return LabelFlags(
        len(alerts),
        sum(flagged for _, flagged in alerts),
        len(categories),
        len({label for label, flagged in alerts if flagged}),
        len(normals),
        sum(normals),
    )


def annotated_ids(processor: DrainProcessor, sample: LogSample) -> list[str]:
    """The template id each record of ``sample`` carries after the processor (as a user downstream sees it)."""

    async def run() -> None:
        for batch in log_batches(sample.lines, sample.system):
            await processor.consume(batch)

    asyncio.run(run())
    ids = []
    for batch in processor.next_consumer.batches:
        for record in batch.resource_logs[0].scope_logs[0].log_records:
            ids.append(next((kv.value.string_value for kv in record.attributes if kv.key == conventions.TEMPLATE_ID), ""))
    return ids


def final_ids(processor: DrainProcessor, sample: LogSample) -> list[str]:
    """The template each line belongs to once the whole sample is read (the published figures' definition)."""
    key = (sample.system,)
    clusters = [processor.miner.add(line, key) for line in sample.lines]
    return [cluster.current().template_id if cluster is not None else "" for cluster in clusters]


def score(samples: list[LogSample], settings: dict | None = None) -> dict[str, tuple[float, float]]:
    """Per system: (grouping accuracy once read, grouping accuracy as annotated)."""
    return {
        sample.system: (
            grouping_accuracy(sample.events, final_ids(make_processor(settings), sample)),
            grouping_accuracy(sample.events, annotated_ids(make_processor(settings), sample)),
        )
        for sample in samples
    }


def leave_one_out(samples: list[LogSample]) -> dict[str, tuple[float, dict]]:
    """Per held-out system: its score with the :data:`GRID` setting that is best on the others, and that setting."""
    table = [
        (
            settings,
            {sample.system: grouping_accuracy(sample.events, final_ids(make_processor(settings), sample)) for sample in samples},
        )
        for settings in GRID
    ]
    held_out = {}
    for sample in samples:
        chosen, scores = max(table, key=lambda entry: sum(a for s, a in entry[1].items() if s != sample.system))
        held_out[sample.system] = (scores[sample.system], chosen)
    return held_out


def _published(*systems: str) -> str:
    """The published per-system-tuned Drain figure of ``systems`` (their mean), or "n/a" when one has none."""
    figures = [PUBLISHED_DRAIN[system] for system in systems if system in PUBLISHED_DRAIN]
    return f"{sum(figures) / len(figures):.3f}" if len(figures) == len(systems) else "n/a"


def report(samples: list[LogSample]) -> str:
    defaults = score(samples)
    held_out = leave_one_out(samples)
    lines = [
        "| system | default config | as annotated online | leave-one-out (held out) | chosen on the others "
        "| Drain, tuned per system (published) |",
        "|---|---|---|---|---|---|",
    ]
    for sample in samples:
        final, online = defaults[sample.system]
        accuracy, chosen = held_out[sample.system]
        setting = ", ".join(f"{name} {value}" for name, value in chosen.items())
        lines.append(
            f"| {sample.system} | {final:.3f} | {online:.3f} | {accuracy:.3f} | {setting} | {_published(sample.system)} |"
        )
    count = len(samples)
    lines.append(
        f"| **mean** | **{sum(f for f, _ in defaults.values()) / count:.3f}** "
        f"| {sum(o for _, o in defaults.values()) / count:.3f} "
        f"| **{sum(a for a, _ in held_out.values()) / count:.3f}** | "
        f"| {_published(*(sample.system for sample in samples))} |"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help=f"the loghub-2k folder (default: ${DATA_ENV}, else ../shared/data/loghub-2k)")
    parser.add_argument("--systems", help="comma-separated systems to score (default: every sample in the folder)")
    arguments = parser.parse_args(argv)
    root = locate_data(arguments.data)
    systems = arguments.systems.split(",") if arguments.systems else found_systems(root)
    samples = [load_sample(root, system) for system in systems]
    print(report(samples))
    for name, settings in (("novelty detector", NOVELTY), ("template rate detector", TEMPLATE_RATE)):
        _report_detector(samples, name, settings)
    return 0


def _report_detector(samples: list[LogSample], name: str, settings: dict) -> None:
    flags_by_system = {sample.system: detector_flags(sample, settings) for sample in samples}
    print(f"\nLines the {name} (drain, then anomaly {settings}) flags per system:")
    print("| system | lines | flagged | share flagged |\n|---|---|---|---|")
    for system, flags in flags_by_system.items():
        lines, flagged = flags.alert_lines + flags.normal_lines, flags.alerts_flagged + flags.normals_flagged
        print(f"| {system} | {lines} | {flagged} | {flagged / lines:.1%} |")
    for sample in samples:
        if all(label == "-" for label in sample.labels):
            continue
        flags = flags_by_system[sample.system]
        print(f"\n{sample.system}, by label, the {name}:")
        print("| | lines | flagged | share flagged |\n|---|---|---|---|")
        print(f"| alert lines | {flags.alert_lines} | {flags.alerts_flagged} | {flags.alerts_flagged / flags.alert_lines:.1%} |")
        print(
            f"| alert categories | {flags.categories} | {flags.categories_flagged} | "
            f"{flags.categories_flagged / flags.categories:.0%} |"
        )
        print(
            f"| normal lines | {flags.normal_lines} | {flags.normals_flagged} | "
            f"{flags.normals_flagged / flags.normal_lines:.1%} |"
        )
        print(f"\n{sample.system}, the {name} at other thresholds (the default: {_threshold(settings)}):")
        print("| threshold | alert lines flagged | alert categories flagged | normal lines flagged |\n|---|---|---|---|")
        for threshold in SWEEP:
            swept = detector_flags(sample, {**settings, "threshold": threshold})
            print(f"| {threshold} | {swept.alerts_flagged} | {swept.categories_flagged} | {swept.normals_flagged} |")


# Thresholds each detector is also run at on a labelled sample: does any of them separate its alerts?
SWEEP = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def _threshold(settings: dict) -> float:
    return AnomalyConfig.model_validate(settings).threshold.static


if __name__ == "__main__":
    sys.exit(main())
