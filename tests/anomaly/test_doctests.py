"""The examples in the anomaly modules' docstrings run and hold."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "otelml.processors.anomaly.adapter",
    "otelml.processors.anomaly.calibration",
    "otelml.processors.anomaly.checkpoint",
    "otelml.processors.anomaly.config",
    "otelml.processors.anomaly.extract",
    "otelml.processors.anomaly.features",
    "otelml.processors.anomaly.forecast",
    "otelml.processors.anomaly.incidents",
    "otelml.processors.anomaly.kernels",
    "otelml.processors.anomaly.models",
    "otelml.processors.anomaly.output",
    "otelml.processors.anomaly.ranks",
    "otelml.processors.anomaly.residuals",
    "otelml.processors.anomaly.store",
    "otelml.processors.anomaly.target",
    "otelml.processors.anomaly.threshold",
    "otelml.processors.anomaly.trend",
    "otelml.references",
    "evaluation.nab",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
