"""NAB-style evaluation of the anomaly processor, through ``otelml replay``.

    python -m evaluation.run                     # default config and each model alone
    python -m evaluation.run --variants default --details --plot out/nab-plots

Every labelled series becomes a stream of log records (see
:mod:`evaluation.streams`); each variant's config (the default ``anomaly``
processor with ``target: attributes.value``, or one model alone) replays the
whole corpus; the ``otelml.score`` of every record is then scored the NAB
way (:mod:`evaluation.nab`). ``--details`` prints, per file, its raw score,
false positives and where in each window the first detection fell;
``--plot`` draws value, score, threshold and windows per file.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import tempfile
from pathlib import Path

import numpy as np

from evaluation.nab import PROFILES, CorpusScore, LabelledSeries, load_corpus, locate_data, score_corpus
from evaluation.streams import read_scores, write_streams
from otelml.config import Config, parse
from otelml.confmap import expand
from otelml.processors.anomaly.config import DEFAULT_MODELS
from otelml.processors.anomaly.models import MODELS
from otelml.registry import Registry
from otelml.replay import replay


def evaluation_config(processor: dict, signal: str = "logs", processor_id: str = "anomaly") -> dict:
    """A config map whose one pipeline runs ``processor`` (replay needs no real receiver or exporter)."""
    return {
        "receivers": {"otlp": {"protocols": {"grpc": None}}},
        "processors": {processor_id: processor},
        "exporters": {"debug": None},
        "service": {"pipelines": {signal: {"receivers": ["otlp"], "processors": [processor_id], "exporters": ["debug"]}}},
    }


def variants(names: list[str]) -> dict[str, dict]:
    """Processor settings per variant: ``default`` and every model alone (``all``), or those named."""
    wanted = []
    for name in names:
        wanted += ["default", *MODELS] if name == "all" else [name]
    unknown = [n for n in wanted if n != "default" and n not in MODELS]
    if unknown:
        raise SystemExit(f"unknown variant {', '.join(unknown)} (default, all, or one of: {', '.join(MODELS)})")
    settings = {}
    for name in dict.fromkeys(wanted):
        settings[name] = {"target": "attributes.value"} if name == "default" else {"target": "attributes.value", "models": [name]}
    return settings


def replay_scores(processor: dict, streams: Path, workdir: Path, signal: str = "logs",
                  stream_key: str = "service.name") -> dict[str, np.ndarray]:
    """Replay ``streams`` through one processor config; per stream, the records' scores."""
    registry = Registry.default()
    config: Config = parse(expand(evaluation_config(processor, signal)), registry)
    output = workdir / "scored.jsonl"
    with open(output, "wb") as handle:
        asyncio.run(replay(config, registry, streams, handle, progress=False))
    return read_scores(output, key=stream_key)


@dataclasses.dataclass
class VariantResult:
    name: str
    scores: list[np.ndarray]
    by_profile: dict[str, CorpusScore]


def evaluate(corpus: list[LabelledSeries], streams: Path, name: str, processor: dict, workdir: Path) -> VariantResult:
    per_stream = replay_scores(processor, streams, workdir)
    scores = []
    for series in corpus:
        stream = per_stream.get(series.name)
        if stream is None or len(stream) != len(series.values):
            raise RuntimeError(f"{name}: replay returned {0 if stream is None else len(stream)} scores for "
                               f"{series.name}, which has {len(series.values)} rows")
        scores.append(np.nan_to_num(stream, nan=0.0))
    return VariantResult(name, scores, {p: score_corpus(corpus, scores, profile) for p, profile in PROFILES.items()})


def file_details(corpus: list[LabelledSeries], result: VariantResult) -> list[str]:
    """Per file: raw score, false positives, and where each window was first detected (-1: missed)."""
    standard = result.by_profile["standard"]
    lines = [f"{'file':58} {'raw':>7} {'FP':>4}  first detection in each window (0 = start, 1 = end)"]
    for series, scores in zip(corpus, result.scores):
        detected = scores >= standard.threshold
        inside = np.zeros(len(scores), dtype=bool)
        positions = []
        for start, end in series.windows:
            inside[start:end + 1] = True
            hits = np.flatnonzero(detected[start:end + 1])
            positions.append(f"{hits[0] / (end - start + 1):.2f}" if len(hits) else "-1")
        false_positives = int((detected & ~inside)[series.probation:].sum())
        lines.append(f"{series.name:58} {standard.per_file[series.name]:7.3f} {false_positives:4d}  {' '.join(positions)}")
    return lines


def table(results: list[VariantResult]) -> list[str]:
    lines = ["| variant | standard | reward_low_FP_rate | reward_low_FN_rate |", "|---|---|---|---|"]
    for result in results:
        cells = " | ".join(f"{result.by_profile[p].normalised:.1f}" for p in PROFILES)
        lines.append(f"| {result.name} | {cells} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evaluation.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="NAB folder (default: $OTELML_NAB_DATA or ../shared/data/nab-dev)")
    parser.add_argument("--variants", nargs="+", default=["all"], help="default, all, or model names (default: all)")
    parser.add_argument("--details", action="store_true", help="per-file breakdown of each variant")
    parser.add_argument("--plot", type=Path, metavar="DIR", help="draw one PNG per file of the default variant (needs matplotlib)")
    args = parser.parse_args(argv)
    corpus = load_corpus(args.data or locate_data())
    defaults = ", ".join(m.name for m in DEFAULT_MODELS)
    print(f"{len(corpus)} files, {sum(len(s.windows) for s in corpus)} windows; default models: {defaults}", file=sys.stderr)
    results = []
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        streams = workdir / "streams.jsonl"
        write_streams(corpus, streams)
        for name, processor in variants(args.variants).items():
            print(f"replaying {name} ...", file=sys.stderr)
            result = evaluate(corpus, streams, name, processor, workdir)
            results.append(result)
            if args.details:
                print(f"\n{name} (threshold {result.by_profile['standard'].threshold:.4f})")
                print("\n".join(file_details(corpus, result)))
    print("\n".join(table(results)))
    if args.plot:
        from evaluation.plot import plot_corpus
        plot_corpus(corpus, results[0].scores, results[0].by_profile["standard"].threshold, args.plot)
        print(f"plots of {results[0].name} in {args.plot}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
