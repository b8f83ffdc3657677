"""Integration tier: tests here start a real local Ray (2 CPUs), Ray Train workers, Serve."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
