"""The examples in the docstrings of the metrics components run and hold."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "otelml.exporters.prometheus.accumulator",
    "otelml.exporters.prometheus.config",
    "otelml.exporters.prometheus.translate",
    "otelml.connectors.anomaly_metrics.aggregate",
    "otelml.connectors.anomaly_metrics.config",
    "otelml.connectors.anomaly_metrics.reader",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
