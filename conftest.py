"""Test tiers: a test is ``integration`` when it says so (it starts a process or a broker, waits on real time,
or computes for seconds); every other test, docstring examples included, is ``fast``, and all of them together
run in under a minute. ``bash scripts/test.sh -m fast`` runs the fast tier."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("integration") is None:
            item.add_marker(pytest.mark.fast)
