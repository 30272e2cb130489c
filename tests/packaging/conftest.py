"""The ``packaging`` marker: tests that build the sdist, the wheel, the .deb
and the .rpm from a copy of the tree. They run in the normal suite (CI); to
leave them out locally: ``pytest -m "not packaging"``."""
from pathlib import Path

import pytest

_HERE = Path(__file__).parent


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "packaging: builds sdist, wheel, .deb and .rpm from a copy of the tree")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if _HERE in Path(item.path).parents:
            item.add_marker(pytest.mark.packaging)
