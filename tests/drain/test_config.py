"""The collector-contrib drain processor's settings, and every problem reported at once with its path."""

from __future__ import annotations

import pytest

from otelml.confmap import ConfigError
from otelml.pdata import Signal
from otelml.processors.drain.config import DrainConfig
from tests.conftest import build_config


def config_with(processor: dict) -> dict:
    return {
        "receivers": {"otlp": {"protocols": {"grpc": None}}},
        "processors": {"drain/templates": processor},
        "exporters": {"debug": None},
        "service": {"pipelines": {"logs": {"receivers": ["otlp"], "processors": ["drain/templates"], "exporters": ["debug"]}}},
    }


def problems(processor: dict) -> list[str]:
    with pytest.raises(ConfigError) as error:
        build_config(config_with(processor))
    return [p for p in error.value.problems if p.startswith("processors::")]


def test_the_contrib_settings_are_accepted():
    config = build_config(
        config_with(
            {
                "tree_depth": 5,
                "merge_threshold": 0.4,
                "max_node_children": 50,
                "max_clusters": 0,
                "extra_delimiters": [",", "="],
                "body_field": "message",
                "seed_templates": ["user <*> logged in"],
                "seed_logs": ["heartbeat ping 1"],
                "warmup_min_clusters": 10,
            }
        )
    )
    assert config.pipelines


def test_defaults():
    config = DrainConfig()
    assert (config.tree_depth, config.merge_threshold, config.max_node_children, config.max_clusters) == (4, 0.88, 100, 10000)
    assert config.key == ["resource.service.name"] and config.warmup_min_clusters == 0


def test_every_problem_is_reported_with_its_path():
    found = problems(
        {
            "tree_depth": 2,
            "merge_threshold": 1.5,
            "max_node_children": 0,
            "max_clusters": -1,
            "warmup_min_clusters": -3,
            "extra_delimiters": [",", ""],
            "key": ["resource.service.name", "spam"],
        }
    )
    prefix = "processors::drain/templates::"
    expected = [
        "tree_depth: must be at least 3",
        "merge_threshold: must be in [0.0, 1.0]",
        "max_node_children: must be at least 1",
        "max_clusters: must not be negative",
        "warmup_min_clusters: must not be negative",
        "extra_delimiters::1: must not be empty",
        'key::1: unknown reference "spam"',
    ]
    for start in expected:
        assert any(p.startswith(prefix + start) for p in found), (start, found)


def test_unknown_settings_and_wrong_types_are_errors():
    found = problems({"tree_dept": 5, "tree_depth": "deep"})
    assert any(p.startswith("processors::drain/templates::tree_dept: unknown key") for p in found)
    assert any(p.startswith("processors::drain/templates::tree_depth:") for p in found)


def test_contrib_settings_not_offered_get_advice():
    found = problems({"template_attribute": "x", "storage": "file_storage", "masking_rules": []})
    assert any(
        p.startswith("processors::drain/templates::template_attribute: the template is always written as log.record.template")
        for p in found
    )
    assert any(p.startswith("processors::drain/templates::storage: templates survive a restart in a checkpoint") for p in found)
    assert any(p.startswith("processors::drain/templates::masking_rules: variables") for p in found)


def test_a_checkpoint_needs_a_long_enough_key():
    [problem] = problems({"checkpoint": {"path": "/tmp/drain.checkpoint", "key": "short"}})
    assert problem.startswith("processors::drain/templates::checkpoint::key: must be at least 16 characters")


def test_span_references_are_refused_for_logs():
    [problem] = DrainConfig(key=["span.name"]).validate_signal(Signal.LOGS)
    assert problem == 'key::0: "span.name" does not exist in logs'


def test_drain_is_refused_in_a_traces_pipeline():
    document = config_with({})
    document["service"]["pipelines"] = {
        "traces": {"receivers": ["otlp"], "processors": ["drain/templates"], "exporters": ["debug"]}
    }
    with pytest.raises(ConfigError) as error:
        build_config(document)
    assert any("drain" in p and "traces" in p for p in error.value.problems)
