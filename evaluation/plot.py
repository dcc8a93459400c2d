"""One picture per file: the value, the score, the threshold and the labelled windows.

Needs matplotlib, from the optional extra: ``pip install -e '.[evaluation]'``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evaluation.nab import LabelledSeries


def plot_corpus(corpus: list[LabelledSeries], scores: list[np.ndarray], threshold: float, folder: Path) -> None:
    try:
        import matplotlib
    except ImportError:
        raise SystemExit("--plot needs matplotlib: pip install -e '.[evaluation]'") from None
    matplotlib.use("Agg")
    from matplotlib import pyplot

    folder.mkdir(parents=True, exist_ok=True)
    for series, score in zip(corpus, scores):
        figure, (top, bottom) = pyplot.subplots(2, 1, sharex=True, figsize=(14, 6))
        rows = np.arange(len(series.values))
        top.plot(rows, series.values, linewidth=0.6)
        top.set_ylabel("value")
        bottom.plot(rows, score, linewidth=0.6, color="tab:orange")
        bottom.axhline(threshold, color="tab:red", linewidth=0.8, linestyle="--", label=f"threshold {threshold:.3f}")
        detections = rows[(score >= threshold) & (rows >= series.probation)]
        bottom.plot(detections, score[detections], "x", color="tab:red", markersize=5)
        bottom.set_ylabel("otelml.score")
        bottom.set_ylim(0, 1)
        for axis in (top, bottom):
            axis.axvspan(0, series.probation, color="grey", alpha=0.15)
            for start, end in series.windows:
                axis.axvspan(start, end, color="tab:green", alpha=0.2)
        bottom.legend(loc="upper left")
        top.set_title(f"{series.name} (grey: probation, green: labelled windows, x: detections)")
        figure.tight_layout()
        figure.savefig(folder / (series.name.replace("/", "__").removesuffix(".csv") + ".png"), dpi=90)
        pyplot.close(figure)
