"""NAB-style evaluation of the anomaly processor, replayed as ``otelml replay`` replays.

    python -m evaluation.run                     # default config and each model alone
    python -m evaluation.run --variants default --details --plot out/nab-plots
    python -m evaluation.run --cross-validate    # how the defaults were chosen, and the held-out score

Every labelled series becomes a stream of log records (see
:mod:`evaluation.streams`); each variant's config (the default ``anomaly``
processor with ``target: attributes.value``, or one model alone) replays the
whole corpus through the pipeline ``otelml replay`` builds (in memory, not
through files). What the processor alerts on is then scored the NAB way
(:mod:`evaluation.nab`): the score of each record that opens an incident,
0 for the others (``--every-record`` scores every record's own score
instead, as a detector that alerts on every flagged record would be).
``--details`` prints, per file, its raw score, false positives and where in
each window the first detection fell; ``--plot`` draws value, score,
threshold and windows per file.

``--cross-validate`` chooses among :data:`CANDIDATES` the way settings must
be chosen so that a figure means something on data nobody looked at: the
files are split into folds that each mix the categories; for each fold the
candidate with the best score on the *other* folds scores the fold's files;
those held-out scores are pooled and scored together. It also does the same
leaving one category out at a time. The default config is the one this
procedure favours, and the pooled held-out figure is the one to quote.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from pathlib import Path

import numpy as np

from evaluation.nab import PROFILES, CorpusScore, LabelledSeries, load_corpus, locate_data, score_corpus
from evaluation.streams import corpus_batches
from otelml.config import Config, parse
from otelml.confmap import expand
from otelml.conventions import INCIDENT_OPEN, SCORE, SERVICE_NAME
from otelml.pdata import scopes
from otelml.processors.anomaly.config import DEFAULT_MODELS
from otelml.processors.anomaly.models import MODELS, TARGET_ONLY
from otelml.registry import Registry
from otelml.replay import replay_batches

FOLDS = 5
# What --cross-validate chooses among: the shipped defaults ({}) and nearby settings of the parts that matter
# most. Residual scales that do not clip at all are not a candidate: one wild value would blind a key.
CANDIDATES: list[dict] = [
    {},
    {"threshold": 0.6},
    {"threshold": 0.7},
    {"residuals": {"clip": 5}},
    {"residuals": {"clip": 20}},
    {"calibration": {"quantile": 0.998}},
    {"calibration": {"enabled": False}},
    {"incident": {"quiet_records": 30}},
    {"models": ["seasonal_profile", "ewm_mean", "level_shift", "range"]},
    {"models": ["seasonal_profile", "ewm_mean", "range", "autoregression"]},
    {"models": ["seasonal_profile", "ewm_mean", "level_shift", "autoregression"]},
    {"models": ["seasonal_profile", "ewm_mean", {"name": "level_shift", "params": {"fast": 0.1}}, "range", "autoregression"]},
    {"models": ["seasonal_profile", "ewm_mean", "level_shift", "range", {"name": "autoregression", "params": {"lags": 4}}]},
]
# Scored beside the candidates but not chosen among: River's own regressors instead of autoregression (which
# is River's linear regression on the key's past), each beyond the speed or size a default must keep
# (>= 90,000 spans per CPU-second through a whole otelml, <= 4 KB of state per key; see bench/README.md).
ALTERNATIVES: list[dict] = [
    {"models": ["seasonal_profile", "ewm_mean", "level_shift", "range", "linear_regression"]},
    {"models": ["seasonal_profile", "ewm_mean", "level_shift", "range", "holt_winters"]},
    {"models": ["seasonal_profile", "ewm_mean", "level_shift", "range", "hoeffding_tree_regressor"]},
]


def evaluation_config(processor: dict, signal: str = "logs", processor_id: str = "anomaly") -> dict:
    """A config map whose one pipeline runs ``processor`` (replay needs no real receiver or exporter).

    Keys never expire (``state.ttl: 0``): the series come from different
    years, and idle expiry by record time would drop all but the newest.
    """
    return {
        "receivers": {"otlp": {"protocols": {"grpc": None}}},
        "processors": {processor_id: {"state": {"ttl": 0}, **processor}},
        "exporters": {"debug": None},
        "service": {"pipelines": {signal: {"receivers": ["otlp"], "processors": [processor_id], "exporters": ["debug"]}}},
    }


def variants(names: list[str]) -> dict[str, dict]:
    """Processor settings per variant: ``default`` and every model alone (``all``), or those named."""
    wanted = []
    for name in names:
        wanted += ["default", *(model for model in MODELS if model not in TARGET_ONLY)] if name == "all" else [name]
    unknown = [n for n in wanted if n != "default" and n not in MODELS]
    if unknown:
        raise SystemExit(f"unknown variant {', '.join(unknown)} (default, all, or one of: {', '.join(MODELS)})")
    settings = {}
    for name in dict.fromkeys(wanted):
        settings[name] = {"target": "attributes.value"} if name == "default" else {"target": "attributes.value", "models": [name]}
    return settings


class _Scores:
    """The end of the replayed pipeline: per stream (resource ``service.name``), each record's score and opening flag."""

    mutates_data = False

    def __init__(self):
        self.scores: dict[str, list[float]] = {}
        self.opens: dict[str, list[bool]] = {}

    async def consume(self, batch) -> None:
        for resource, _, records in scopes(batch):
            name = next((kv.value.string_value for kv in resource.resource.attributes if kv.key == SERVICE_NAME), "")
            scores, opens = self.scores.setdefault(name, []), self.opens.setdefault(name, [])
            for record in records:
                found = {kv.key: kv.value for kv in record.attributes if kv.key in (SCORE, INCIDENT_OPEN)}
                scores.append(found[SCORE].double_value if SCORE in found else np.nan)
                opens.append(INCIDENT_OPEN in found and found[INCIDENT_OPEN].bool_value)


def replay_scores(processor: dict, corpus: list[LabelledSeries], every_record: bool = False) -> dict[str, np.ndarray]:
    """Replay the corpus through one processor config, as ``otelml replay`` does (in memory); per stream, the scores.

    What the processor alerts on (the score of incident openings, 0 elsewhere), or with ``every_record``
    every record's own score.
    """
    registry = Registry.default()
    config: Config = parse(expand(evaluation_config(processor)), registry)
    sink = _Scores()
    asyncio.run(replay_batches(config, registry, corpus_batches(corpus), sink))
    if every_record:
        return {name: np.asarray(values) for name, values in sink.scores.items()}
    return {name: np.where(sink.opens[name], np.nan_to_num(values), 0.0) for name, values in sink.scores.items()}


@dataclasses.dataclass
class VariantResult:
    name: str
    scores: list[np.ndarray]
    by_profile: dict[str, CorpusScore]


def evaluate(corpus: list[LabelledSeries], name: str, processor: dict, every_record: bool = False) -> VariantResult:
    per_stream = replay_scores(processor, corpus, every_record)
    scores = []
    for series in corpus:
        stream = per_stream.get(series.name)
        if stream is None or len(stream) != len(series.values):
            raise RuntimeError(
                f"{name}: replay returned {0 if stream is None else len(stream)} scores for "
                f"{series.name}, which has {len(series.values)} rows"
            )
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
            inside[start : end + 1] = True
            hits = np.flatnonzero(detected[start : end + 1])
            positions.append(f"{hits[0] / (end - start + 1):.2f}" if len(hits) else "-1")
        false_positives = int((detected & ~inside)[series.probation :].sum())
        lines.append(f"{series.name:58} {standard.per_file[series.name]:7.3f} {false_positives:4d}  {' '.join(positions)}")
    return lines


def table(results: list[VariantResult]) -> list[str]:
    lines = ["| variant | standard | reward_low_FP_rate | reward_low_FN_rate |", "|---|---|---|---|"]
    for result in results:
        cells = " | ".join(f"{result.by_profile[p].normalised:.1f}" for p in PROFILES)
        lines.append(f"| {result.name} | {cells} |")
    return lines


def category(series: LabelledSeries) -> str:
    return series.name.split("/")[0]


def mixed_folds(corpus: list[LabelledSeries], folds: int = FOLDS) -> list[list[int]]:
    """File indices in ``folds`` folds, each category's files dealt round the folds in turn.

    >>> toy = [LabelledSeries(f"{group}/{n}.csv", np.arange(3), np.zeros(3), []) for group in "ab" for n in range(3)]
    >>> mixed_folds(toy, 3)
    [[0, 3], [1, 4], [2, 5]]
    """
    assigned = [[] for _ in range(folds)]
    dealt = 0
    for group in sorted({category(series) for series in corpus}):
        for index, series in enumerate(corpus):
            if category(series) == group:
                assigned[dealt % folds].append(index)
                dealt += 1
    return [sorted(fold) for fold in assigned]


def category_folds(corpus: list[LabelledSeries]) -> list[list[int]]:
    """One fold per category."""
    groups = sorted({category(series) for series in corpus})
    return [[i for i, series in enumerate(corpus) if category(series) == group] for group in groups]


@dataclasses.dataclass
class CrossValidation:
    """Which candidate each fold chose (on the other folds), and the NAB score of the pooled held-out scores."""

    chosen: list[int]
    held_out: CorpusScore


def cross_validate(
    corpus: list[LabelledSeries], candidate_scores: list[list[np.ndarray]], folds: list[list[int]], profile: str = "standard"
) -> CrossValidation:
    """Choose per fold on the other folds, score the fold with its choice, and score the pooled held-out scores.

    ``candidate_scores[c][i]`` are candidate ``c``'s scores of file ``i``.

    >>> files = [LabelledSeries(f"g/{i}.csv", np.arange(100), np.zeros(100), [(50, 59)]) for i in range(4)]
    >>> early, late = np.zeros(100), np.zeros(100)
    >>> early[50], late[58] = 1.0, 1.0
    >>> result = cross_validate(files, [[late] * 4, [early] * 4], [[0, 1], [2, 3]])
    >>> result.chosen, round(result.held_out.normalised, 1)
    ([1, 1], 100.0)
    """
    weights = PROFILES[profile]
    pooled: list[np.ndarray | None] = [None] * len(corpus)
    chosen = []
    for held in folds:
        train = [i for i in range(len(corpus)) if i not in held]
        train_files = [corpus[i] for i in train]
        on_train = [score_corpus(train_files, [scores[i] for i in train], weights).normalised for scores in candidate_scores]
        best = int(np.argmax(on_train))
        chosen.append(best)
        for i in held:
            pooled[i] = candidate_scores[best][i]
    return CrossValidation(chosen, score_corpus(corpus, pooled, weights))


def run_cross_validation(corpus: list[LabelledSeries]) -> list[str]:
    """Replay every candidate and alternative, cross-validate the candidates two ways, and the report lines."""
    results = []
    for number, candidate in enumerate(CANDIDATES + ALTERNATIVES):
        print(f"replaying candidate {number} {candidate or '(defaults)'} ...", file=sys.stderr)
        results.append(evaluate(corpus, str(number), {"target": "attributes.value", **candidate}))
    scores = [result.scores for result in results[: len(CANDIDATES)]]
    lines = ["| candidate | settings (on top of the defaults) | standard, all files |", "|---|---|---|"]
    lines += [
        f"| {n if n < len(CANDIDATES) else '(alternative)'} | `{candidate or 'defaults'}` | "
        f"{result.by_profile['standard'].normalised:.1f} |"
        for n, (candidate, result) in enumerate(zip(CANDIDATES + ALTERNATIVES, results))
    ]
    lines.append("")
    for label, folds in (
        ("5 folds mixing the categories", mixed_folds(corpus)),
        ("one category left out at a time", category_folds(corpus)),
    ):
        outcome = cross_validate(corpus, scores, folds)
        lines.append(
            f"{label}: candidate chosen per fold {outcome.chosen}; "
            f"pooled held-out standard score **{outcome.held_out.normalised:.1f}**"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evaluation.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="NAB folder (default: $OTELML_NAB_DATA or ../shared/data/nab-dev)")
    parser.add_argument("--variants", nargs="+", default=["all"], help="default, all, or model names (default: all)")
    parser.add_argument("--details", action="store_true", help="per-file breakdown of each variant")
    parser.add_argument("--every-record", action="store_true", help="score every record's score, not only incident openings")
    parser.add_argument("--cross-validate", action="store_true", help="choose among the candidate settings by cross-validation")
    parser.add_argument("--plot", type=Path, metavar="DIR", help="draw one PNG per file of the first variant (needs matplotlib)")
    args = parser.parse_args(argv)
    corpus = load_corpus(args.data or locate_data())
    defaults = ", ".join(m.name for m in DEFAULT_MODELS)
    print(f"{len(corpus)} files, {sum(len(s.windows) for s in corpus)} windows; default models: {defaults}", file=sys.stderr)
    if args.cross_validate:
        print("\n".join(run_cross_validation(corpus)))
        return 0
    results = []
    for name, processor in variants(args.variants).items():
        print(f"replaying {name} ...", file=sys.stderr)
        result = evaluate(corpus, name, processor, args.every_record)
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
