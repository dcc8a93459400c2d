"""The examples in the anomaly modules' docstrings run and hold."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "otelml.processors.anomaly.extract",
    "otelml.processors.anomaly.features",
    "otelml.processors.anomaly.layout",
    "otelml.processors.anomaly.models",
    "otelml.processors.anomaly.output",
    "otelml.references",
    "otelml.processors.anomaly.scoring",
    "otelml.processors.anomaly.state",
    "otelml.processors.anomaly.threshold",
    "otelml.processors.anomaly.trend",
    "evaluation.nab",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
