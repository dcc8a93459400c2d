"""Batches: counting, splitting, merging, and OTLP/JSON (hex IDs, errors, unknown fields)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otelml.pdata import Signal, count_items, from_json, from_proto, merge, split, to_json, to_json_dict

METRIC_KINDS = ("gauge", "sum", "histogram")
SCOPE_FIELDS = {Signal.TRACES: "scope_spans", Signal.LOGS: "scope_logs", Signal.METRICS: "scope_metrics"}


def build(signal: Signal, shape: list[list[list[int]]]):
    """A batch of ``signal`` shaped resources -> scopes -> records.

    Each int is one record: for traces and logs its value is ignored; for
    metrics it is the number of data points of that metric (whose kind
    cycles through gauge, sum and histogram). Every record and point gets
    a distinct sequence number, so that order can be checked.
    """
    batch = signal.request_type()
    sequence = iter(range(1, 1 << 30))
    for r, scopes in enumerate(shape):
        resource = getattr(batch, signal.resource_field).add()
        resource.resource.attributes.add(key="service.name").value.string_value = f"r{r}"
        resource.schema_url = f"https://schema/{r}"
        for s, records in enumerate(scopes):
            scope = getattr(resource, SCOPE_FIELDS[signal]).add()
            scope.scope.name, scope.scope.version = f"s{s}", "1.0"
            for index, points in enumerate(records):
                if signal is Signal.TRACES:
                    scope.spans.add(name=str(next(sequence)), trace_id=bytes(range(16)), span_id=bytes(range(8)))
                elif signal is Signal.LOGS:
                    scope.log_records.add().body.string_value = str(next(sequence))
                else:
                    metric = scope.metrics.add(name=f"m{next(sequence)}", unit="ms")
                    data = getattr(metric, METRIC_KINDS[index % len(METRIC_KINDS)])
                    for _ in range(points):
                        data.data_points.add(time_unix_nano=next(sequence))
    return batch


def records(batch) -> list[tuple]:
    """(resource, scope, record) for every span, log record or metric data point, in order."""
    signal = Signal.of(batch)
    found = []
    for resource in getattr(batch, signal.resource_field):
        service = resource.resource.attributes[0].value.string_value
        for scope in getattr(resource, SCOPE_FIELDS[signal]):
            where = (service, resource.schema_url, scope.scope.name, scope.scope.version)
            if signal is Signal.TRACES:
                found += [(*where, span.name) for span in scope.spans]
            elif signal is Signal.LOGS:
                found += [(*where, log.body.string_value) for log in scope.log_records]
            else:
                for metric in scope.metrics:
                    kind = metric.WhichOneof("data")
                    found += [
                        (*where, metric.name, kind, metric.unit, p.time_unix_nano) for p in getattr(metric, kind).data_points
                    ]
    return found


# count_items, split, merge


def test_count_items_counts_spans_log_records_and_metric_points():
    assert count_items(build(Signal.TRACES, [[[1, 1], [1]], [[1]]])) == 4
    assert count_items(build(Signal.LOGS, [[[1, 1, 1]], [[], [1]]])) == 4
    assert count_items(build(Signal.METRICS, [[[3, 2, 5]], [[1]]])) == 11
    assert count_items(Signal.METRICS.request_type()) == 0


def test_count_items_covers_every_metric_kind():
    batch = Signal.METRICS.request_type()
    metrics = batch.resource_metrics.add().scope_metrics.add().metrics
    for kind in ("gauge", "sum", "histogram", "exponential_histogram", "summary"):
        getattr(metrics.add(name=kind), kind).data_points.add()
    metrics.add(name="no data")
    assert count_items(batch) == 5


@pytest.mark.parametrize("signal", list(Signal))
def test_split_within_the_limit_returns_the_batch_itself(signal):
    batch = build(signal, [[[1, 2]]])
    assert split(batch, 10)[0] is batch
    assert split(batch, 0)[0] is batch  # 0 means no limit


@pytest.mark.parametrize("signal", [Signal.TRACES, Signal.LOGS])
def test_split_repeats_resource_and_scope_in_every_piece(signal):
    batch = build(signal, [[[1] * 6]])
    pieces = split(batch, 2)
    assert [count_items(p) for p in pieces] == [2, 2, 2]
    original = getattr(batch, signal.resource_field)[0]
    for piece in pieces:
        (resource,) = getattr(piece, signal.resource_field)
        assert resource.resource == original.resource
        assert resource.schema_url == original.schema_url
        (scope,) = resource.scope_spans if signal is Signal.TRACES else resource.scope_logs
        assert (scope.scope.name, scope.scope.version) == ("s0", "1.0")
    assert sum((records(p) for p in pieces), []) == records(batch)


def test_a_metric_with_more_points_than_max_is_cut_between_points():
    batch = build(Signal.METRICS, [[[10]]])
    original = batch.resource_metrics[0].scope_metrics[0].metrics[0]
    pieces = split(batch, 4)
    assert [count_items(p) for p in pieces] == [4, 4, 2]
    for piece in pieces:
        (metric,) = piece.resource_metrics[0].scope_metrics[0].metrics
        assert (metric.name, metric.unit, metric.WhichOneof("data")) == (original.name, "ms", "gauge")
    assert sum((records(p) for p in pieces), []) == records(batch)


def test_whole_metrics_fill_a_piece_before_one_is_cut():
    batch = build(Signal.METRICS, [[[2, 2, 3]]])
    pieces = split(batch, 4)
    assert [count_items(p) for p in pieces] == [4, 3]
    assert [len(p.resource_metrics[0].scope_metrics[0].metrics) for p in pieces] == [2, 1]


def test_split_across_resources_and_scopes_keeps_each_records_origin():
    batch = build(Signal.TRACES, [[[1, 1, 1], [1]], [[1, 1]]])
    pieces = split(batch, 2)
    assert [count_items(p) for p in pieces] == [2, 2, 2]
    # The middle piece holds the end of scope s0 and all of s1, under one resource.
    middle = pieces[1].resource_spans
    assert len(middle) == 1
    assert [s.scope.name for s in middle[0].scope_spans] == ["s0", "s1"]
    assert sum((records(p) for p in pieces), []) == records(batch)


@pytest.mark.parametrize("signal", list(Signal))
def test_merge_keeps_resources_in_order(signal):
    parts = [build(signal, [[[1, 2]]]), build(signal, [[[3]], [[1]]]), build(signal, [[[2]]])]
    expected = [r for part in parts for r in records(part)]
    merged = merge(parts)
    assert len(getattr(merged, signal.resource_field)) == 4
    assert records(merged) == expected


SHAPES = st.lists(st.lists(st.lists(st.integers(1, 5), max_size=5), max_size=3), max_size=3)


@settings(max_examples=150, deadline=None)
@given(signal=st.sampled_from(list(Signal)), shape=SHAPES, max_items=st.integers(1, 9))
def test_split_then_merge_keeps_every_record_in_order(signal, shape, max_items):
    batch = build(signal, shape)
    expected = records(batch)
    pieces = split(batch, max_items)
    assert all(count_items(p) <= max_items for p in pieces)
    assert all(count_items(p) > 0 for p in pieces) or pieces == [batch]
    assert sum(count_items(p) for p in pieces) == len(expected)
    assert [r for p in pieces for r in records(p)] == expected
    assert records(merge(pieces)) == expected


# OTLP/JSON


def traces_with_every_id():
    batch = build(Signal.TRACES, [[[1]]])
    span = batch.resource_spans[0].scope_spans[0].spans[0]
    span.parent_span_id = bytes.fromhex("0102030405060708")
    span.kind = 2
    span.links.add(trace_id=bytes.fromhex("ff" * 16), span_id=bytes.fromhex("ee" * 8))
    span.attributes.add(key="http.status_code").value.int_value = 500
    return batch


def test_json_ids_are_lowercase_hex_and_enums_integers():
    document = to_json_dict(traces_with_every_id())
    span = document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert span["traceId"] == "000102030405060708090a0b0c0d0e0f"
    assert span["spanId"] == "0001020304050607"
    assert span["parentSpanId"] == "0102030405060708"
    assert span["links"][0] == {"traceId": "ff" * 16, "spanId": "ee" * 8}
    assert span["kind"] == 2
    assert json.loads(to_json(traces_with_every_id())) == document


def logs_with_ids():
    batch = build(Signal.LOGS, [[[1, 1]]])
    first = batch.resource_logs[0].scope_logs[0].log_records[0]
    first.trace_id, first.span_id, first.severity_number = bytes(range(16)), bytes(range(8)), 17
    return batch


def metrics_with_exemplar():
    batch = build(Signal.METRICS, [[[2, 1, 1]]])
    point = batch.resource_metrics[0].scope_metrics[0].metrics[0].gauge.data_points[0]
    point.exemplars.add(as_double=1.5, trace_id=bytes(range(16)), span_id=bytes(range(8)))
    return batch


@pytest.mark.parametrize("make", [traces_with_every_id, logs_with_ids, metrics_with_exemplar])
def test_json_round_trip(make):
    batch = make()
    line = to_json(batch)
    assert b"\n" not in line
    assert from_json(line, Signal.of(batch)) == batch
    assert from_json(line.decode(), Signal.of(batch)) == batch
    assert from_json(json.loads(line), Signal.of(batch)) == batch


def test_proto_round_trip_and_malformed_proto():
    batch = metrics_with_exemplar()
    assert from_proto(batch.SerializeToString(), Signal.METRICS) == batch
    with pytest.raises(ValueError, match="invalid OTLP protobuf"):
        from_proto(b"\xff\xff\xff", Signal.METRICS)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ('{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}', "invalid hex ID"),
        ('{"resourceSpans":[{"scopeSpans":[{"spans":[{"spanId":"abc"}]}]}]}', "invalid hex ID"),
        ('{"resourceSpans": [', "invalid JSON"),
        (b"\xff\xfe", "invalid JSON"),
        ("[]", "must be an object"),
        ('"resourceSpans"', "must be an object"),
        ('{"resourceSpans": 5}', "invalid OTLP/JSON"),
        ('{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":"soon"}]}]}]}', "invalid OTLP/JSON"),
    ],
)
def test_from_json_errors_are_value_errors_with_a_reason(data, message):
    with pytest.raises(ValueError, match=message):
        from_json(data, Signal.TRACES)


def test_from_json_ignores_unknown_fields():
    document = {
        "futureTopLevel": {"x": 1},
        "resourceSpans": [
            {
                "futureResourceField": [],
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "name": "checkout",
                                "spanId": "0001020304050607",
                                "traceId": "000102030405060708090A0B0C0D0E0F",
                                "futureSpanField": True,
                            },
                        ]
                    }
                ],
            }
        ],
    }
    batch = from_json(json.dumps(document), Signal.TRACES)
    (span,) = batch.resource_spans[0].scope_spans[0].spans
    assert span.name == "checkout"
    assert span.trace_id == bytes(range(16))  # upper-case hex is accepted too
    assert span.span_id == bytes(range(8))


def test_from_json_accepts_enum_names_and_string_integers():
    document = {
        "resourceLogs": [
            {"scopeLogs": [{"logRecords": [{"severityNumber": "SEVERITY_NUMBER_ERROR", "timeUnixNano": "1700000000000000000"}]}]}
        ]
    }
    record = from_json(document, Signal.LOGS).resource_logs[0].scope_logs[0].log_records[0]
    assert record.severity_number == 17
    assert record.time_unix_nano == 1_700_000_000_000_000_000
