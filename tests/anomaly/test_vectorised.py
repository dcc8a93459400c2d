"""The vectorised scorer (built-in models, rank by rank) gives the per-record scorer's scores."""

from __future__ import annotations

import pytest

from otelml.pdata import Signal
from otelml.processors.anomaly.scorer import RecordScorer
from otelml.processors.anomaly.vectorised import VectorScorer
from otelml.synthetic import BASE_TIME_NS, make_trace_request
from tests.anomaly.support import START, logs, make_processor, records_of

SETTINGS = [
    {},
    {"warmup": 5, "verbose": True, "combine": "mean", "trend": {"window": 8, "horizon": "20s"}, "alerts": True},
    {"warmup": 5, "combine": "weighted", "learn_from_anomalies": True,
     "models": [{"name": "seasonal_profile", "params": {"period": "week", "alpha": 0.3}, "weight": 3},
                {"name": "ewm_mean", "params": {"alpha": 0.05}}]},
    {"warmup": 5, "combine": "vote", "threshold": 0.3, "verbose": True},
    {"warmup": 3, "state": {"max_keys": 5, "ttl": "3s"}},
]


def scored(batch) -> list[dict]:
    return [{kv.key: getattr(kv.value, kv.value.WhichOneof("value")) for kv in record.attributes if kv.key.startswith("otelml.")}
            for record in records_of(batch)]


def trace_stream() -> list:
    # Uneven batches with skewed keys, so ranks run from 1 to dozens of records per key; 1% slow spans.
    return [make_trace_request(spans=size, services=4, operations=3, seed=number, anomaly_rate=0.01,
                               start_ns=BASE_TIME_NS + number * 10**9, spacing_ns=10**9 // size)
            for number, size in enumerate([1, 7, 300, 40, 900, 3, 600, 250])]


async def same_scores(signal: Signal, make_stream, **settings) -> int:
    fast, general = make_processor(signal, **settings), make_processor(signal, per_record=True, **settings)
    assert isinstance(fast.scorer, VectorScorer) and isinstance(general.scorer, RecordScorer)
    records = 0
    for one, other in zip(make_stream(), make_stream()):
        await fast.consume(one)
        await general.consume(other)
        expected = scored(other)
        assert scored(one) == [{key: pytest.approx(value, rel=1e-9, abs=1e-12) if isinstance(value, float) else value
                                for key, value in attributes.items()} for attributes in expected]
        records += len(expected)
    assert [(key, summary) for key, summary in fast.key_summaries()] == general.key_summaries()
    return records


@pytest.mark.parametrize("settings", SETTINGS)
async def test_vectorised_and_per_record_scores_agree_on_spans(settings):
    assert await same_scores(Signal.TRACES, trace_stream, **settings) == 2101


async def test_vectorised_and_per_record_scores_agree_on_numeric_log_attributes():
    def stream():
        readings = [{"when": START + i * 7.0, "resource": {"device.id": f"sensor-{i % 3}"},
                     "attributes": {"temperature": 20.0 + (i % 3) + (9.0 if i in (150, 151, 260) else 0.0) + 0.01 * (i % 7)}}
                    for i in range(300)]
        return [logs(readings[:120]), logs(readings[120:121]), logs(readings[121:])]

    count = await same_scores(Signal.LOGS, stream, key=["resource.device.id"], target="attributes.temperature", warmup=20,
                              alerts=True)
    assert count == 300
