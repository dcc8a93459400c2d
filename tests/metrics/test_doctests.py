"""The examples in the docstrings of the metrics components' modules run and hold."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

PACKAGES = ["otelml.exporters.prometheus", "otelml.connectors.anomaly_metrics"]
MODULES = ["otelml.liveview", "otelml.processors.anomaly.extract_metrics", "otelml.processors.anomaly.output_metrics"]


@pytest.mark.parametrize("package", PACKAGES)
def test_docstring_examples(package):
    path = importlib.import_module(package).__path__
    results = [doctest.testmod(importlib.import_module(f"{package}.{info.name}")) for info in pkgutil.iter_modules(path)]
    assert sum(r.attempted for r in results) > 0, f"{package} has no examples"
    assert sum(r.failed for r in results) == 0


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_of_the_metrics_parts_elsewhere(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
