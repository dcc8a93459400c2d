"""Config errors name their full path; the testdata examples validate."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from evaluation.run import evaluation_config
from otelml.confmap import ConfigError
from tests.conftest import build_config

TESTDATA = Path(__file__).resolve().parents[2] / "processors" / "anomaly" / "testdata"


def config_with(processor: dict, signal: str = "traces") -> dict:
    return evaluation_config(processor, signal, processor_id="anomaly/latency")


def problems(processor: dict) -> list[str]:
    """The processor's own problems (the pipeline naming it then also reports it missing)."""
    with pytest.raises(ConfigError) as error:
        build_config(config_with(processor))
    return [p for p in error.value.problems if p.startswith("processors::")]


def test_defaults_validate():
    config = build_config(config_with({}))
    assert config.pipelines


def test_unknown_model_lists_the_known_ones():
    [problem] = problems({"models": ["seasonal_profile", "isolation_forest"]})
    assert problem.startswith('processors::anomaly/latency::models::1::name: unknown model "isolation_forest"')
    assert "half_space_trees" in problem and "linear_regression" in problem


def test_bad_model_params_are_reported_with_their_path():
    [problem] = problems({"models": [{"name": "ewm_mean", "params": {"alpha": 2}}]})
    assert problem.startswith("processors::anomaly/latency::models::0::params: cannot build ewm_mean")


def test_bad_references():
    found = problems({"key": ["resource.service.name", "spam.name"], "target": "latency"})
    assert any(p.startswith('processors::anomaly/latency::key::1: unknown reference "spam.name"') for p in found)
    assert any(p.startswith('processors::anomaly/latency::target: unknown target "latency"') for p in found)


@pytest.mark.parametrize(
    "threshold, path",
    [
        (1.5, "threshold::static"),
        ({"adaptive": {"quantile": 1.2}}, "threshold::adaptive::quantile"),
        ({"adaptive": {"window": 2}}, "threshold::adaptive::window"),
        ("high", "threshold::static"),
    ],
)
def test_bad_threshold(threshold, path):
    [problem] = problems({"threshold": threshold})
    assert problem.startswith(f"processors::anomaly/latency::{path}:"), problem


def test_duplicate_model_ids_and_bad_trend():
    found = problems({"models": ["ewm_mean", "ewm_mean"], "trend": {"window": 2, "horizon": "0s"}})
    assert 'processors::anomaly/latency::models::1::id: "ewm_mean" is used twice; give one of them another id' in found
    assert "processors::anomaly/latency::trend::window: must be between 3 and 10000 scores" in found
    assert "processors::anomaly/latency::trend::horizon: must be positive" in found


def test_checkpoint_needs_a_signing_key(monkeypatch):
    monkeypatch.delenv("OTELML_CHECKPOINT_KEY", raising=False)
    [problem] = problems({"state": {"checkpoint": {"path": "state.ckpt"}}})
    assert problem.startswith("processors::anomaly/latency::state::checkpoint::key: required to sign the checkpoint")
    monkeypatch.setenv("OTELML_CHECKPOINT_KEY", "short")
    [problem] = problems({"state": {"checkpoint": {"path": "state.ckpt"}}})
    assert problem.endswith("key: must be at least 16 characters long")
    monkeypatch.setenv("OTELML_CHECKPOINT_KEY", "a-long-enough-signing-key")
    assert build_config(config_with({"state": {"checkpoint": {"path": "state.ckpt"}}}))


def test_a_span_reference_in_a_logs_pipeline_is_a_config_error():
    # validate_signal() is called for every pipeline the processor is in, so validate finds it before start.
    with pytest.raises(ConfigError, match='::key::0: "span.name" does not exist in logs'):
        build_config(config_with({"key": ["span.name"]}, signal="logs"))


@pytest.mark.parametrize("path", sorted(TESTDATA.glob("*.yaml")), ids=lambda p: p.name)
def test_testdata_configs_validate(path, monkeypatch):
    monkeypatch.setenv("OTELML_CHECKPOINT_KEY", "a-long-enough-signing-key")
    document = yaml.safe_load(path.read_text())
    if "service" in document:
        assert build_config(document).pipelines


def test_references_that_do_not_exist_in_the_signal_are_problems_of_validate_signal():
    from otelml.pdata import Signal
    from otelml.processors.anomaly.config import AnomalyConfig

    config = AnomalyConfig.model_validate({"key": ["resource.service.name", "log.severity_text"], "target": "body"})
    assert config.validate_signal(Signal.TRACES) == [
        'key::1: "log.severity_text" does not exist in traces',
        'target: "body" does not exist in traces',
    ]
    assert config.validate_signal(Signal.LOGS) == []
    assert AnomalyConfig.model_validate({"key": ["spam.name"]}).validate_signal(Signal.TRACES) == []
