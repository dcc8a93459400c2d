"""Speed and memory of the ``drain`` processor alone, on the Loghub samples and on an endless stream of new templates.

    python -m bench.drain                 # records per CPU-second per system, and memory at max_clusters
    python -m bench.drain --data DIR      # another copy of loghub-2k

Speed: each system's 2,000 lines are built into OTLP log batches of 512
records (one service) before timing; a new processor with the default
config then takes them one by one, and ``time.process_time`` counts the
CPU time of ``consume`` alone. The first pass starts from nothing (every
template is new); the second goes on with what the first learned, as a
long-running processor does.

Floods: lines that are each a new template, of three kinds (see
:data:`FLOOD_KINDS`), go through a processor with ``max_clusters`` set, timed
as above: the cost of a line the miner has to search for and not find.

Memory: lines that are each a new template (random words) go through a
processor with ``max_clusters`` set; tracemalloc reports the live memory it
holds after each step, which must stay flat once the limit is reached (the
line cache, :data:`~otelml.processors.drain.drain.CACHE_SIZE` lines, fills
and empties on top of that).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import string
import time
import tracemalloc

from evaluation.logs import SYSTEMS, load_sample, locate_data, log_batches, make_processor


class _Discard:
    mutates_data = False

    async def consume(self, batch) -> None:
        return None


def _timed_consume(processor, batches: list) -> float:
    """CPU seconds ``processor.consume`` takes over ``batches``."""

    async def run() -> float:
        spent = 0.0
        for batch in batches:
            started = time.process_time()
            await processor.consume(batch)
            spent += time.process_time() - started
        return spent

    return asyncio.run(run())


def speed(root, systems: list[str]) -> list[tuple[str, int, float, float]]:
    """Per system: records, records per CPU-second on the first pass and on the second."""
    rows = []
    for system in systems:
        sample = load_sample(root, system)
        processor = make_processor()
        processor.next_consumer = _Discard()
        first = _timed_consume(processor, log_batches(sample.lines, system))
        second = _timed_consume(processor, log_batches(sample.lines, system))
        count = len(sample.lines)
        rows.append((system, count, count / first, count / second))
    return rows


# Kinds of new-template lines: plain random words; every third word a bare variable (``(42)``), which the miner
# tries leaving out; each message after three first words in a row, which the miner checks for naming sources.
FLOOD_KINDS = ("plain", "bare variables", "sources")


def _new_template_lines(count: int, seed: int = 7, kind: str = "plain") -> list[str]:
    """Lines that are each a template of their own: 4 to 16 random words after one of 90 first words.

    The first words and lengths spread the lines over many leaves of the tree (1,170 of them), so
    that ``max_clusters``, not the limit on one leaf, is what bounds the clusters held.
    """
    chooser = random.Random(seed)
    first_words = [a + b for a in "abcdefghij" for b in "abcdefghi"]
    lines: list[str] = []
    while len(lines) < count:
        words = ["".join(chooser.choices(string.ascii_lowercase, k=6)) for _ in range(chooser.randint(3, 15))]
        if kind == "bare variables":
            words[2::3] = [f"({chooser.randint(1, 999)})" for _ in words[2::3]]
        for first in chooser.sample(first_words, 3 if kind == "sources" else 1):
            lines.append(" ".join([first, *words]))
    return lines[:count]


def memory(max_clusters: int, steps: int, lines_per_step: int) -> list[tuple[int, int, float]]:
    """(lines so far, clusters held, MiB held by the processor) after each step of new templates."""
    processor = make_processor({"max_clusters": max_clusters})
    processor.next_consumer = _Discard()
    gc.collect()
    tracemalloc.start()
    baseline = tracemalloc.get_traced_memory()[0]
    rows = []
    for step in range(1, steps + 1):
        lines = _new_template_lines(lines_per_step, seed=step)
        batches = log_batches(lines, "bench")
        asyncio.run(_consume_all(processor, batches))
        del batches, lines
        gc.collect()
        rows.append((step * lines_per_step, len(processor.miner), (tracemalloc.get_traced_memory()[0] - baseline) / 2**20))
    tracemalloc.stop()
    return rows


def flood(max_clusters: int, lines: int) -> list[tuple[str, float]]:
    """Per kind of new-template lines: records per CPU-second through a processor with ``max_clusters``."""
    rows = []
    for kind in FLOOD_KINDS:
        processor = make_processor({"max_clusters": max_clusters})
        processor.next_consumer = _Discard()
        rows.append((kind, lines / _timed_consume(processor, log_batches(_new_template_lines(lines, kind=kind), "bench"))))
    return rows


async def _consume_all(processor, batches: list) -> None:
    for batch in batches:
        await processor.consume(batch)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="the loghub-2k folder (default: $OTELML_LOGHUB_DATA, else ../shared/data/loghub-2k)")
    parser.add_argument("--max-clusters", type=int, default=10000)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--lines-per-step", type=int, default=10000)
    arguments = parser.parse_args(argv)
    rows = speed(locate_data(arguments.data), list(SYSTEMS))
    print("| system | records | records per CPU-second, first pass | second pass |")
    print("|---|---|---|---|")
    for system, count, first, second in rows:
        print(f"| {system} | {count} | {first:,.0f} | {second:,.0f} |")
    total = sum(count for _, count, _, _ in rows)
    first_all = total / sum(count / first for _, count, first, _ in rows)
    second_all = total / sum(count / second for _, count, _, second in rows)
    print(f"| **all** | {total} | **{first_all:,.0f}** | **{second_all:,.0f}** |")
    print()
    print(f"| {arguments.lines_per_step:,} new-template lines (max_clusters {arguments.max_clusters}) | records per CPU-second |")
    print("|---|---|")
    for kind, rate in flood(arguments.max_clusters, arguments.lines_per_step):
        print(f"| {kind} | {rate:,.0f} |")
    print()
    print(f"| new-template lines | clusters held (max_clusters {arguments.max_clusters}) | MiB held |")
    print("|---|---|---|")
    for lines, clusters, mebibytes in memory(arguments.max_clusters, arguments.steps, arguments.lines_per_step):
        print(f"| {lines:,} | {clusters:,} | {mebibytes:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
