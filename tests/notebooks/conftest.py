"""Fixtures of the notebook tests (nbval, browser): a small data set on disk."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest


def tiny_world_module():
    """``tests/report/tiny_world.py`` loaded by path (tests are not a package)."""
    spec = importlib.util.spec_from_file_location(
        "crm_tiny_world", Path(__file__).parents[1] / "report" / "tiny_world.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def report_world(request, tmp_path_factory) -> Path:
    """A small data directory of Parquet tables: ``small_world`` when the synth fixture
    exists, else the tiny seeded world of ``tiny_world.py``."""
    try:
        return Path(request.getfixturevalue("small_world"))
    except pytest.FixtureLookupError:
        return tiny_world_module().build(tmp_path_factory.mktemp("tiny_world"))
