"""The examples in the alerting modules' docstrings run and hold."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "otelml.connectors.anomaly_alerts.incidents",
    "otelml.connectors.anomaly_alerts.text",
    "otelml.exporters.alertmanager.config",
    "otelml.exporters.alertmanager.local",
    "otelml.generator",  # the demo's incidents, which alerts and predictions are made of
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
