"""Project paths (cookiecutter-data-science style): one place, overridable by environment.

``CRM_DATA_DIR`` and ``CRM_REPORTS_DIR`` override the defaults, so a scheduled run can
point the same notebooks at production data without editing code.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT: Path = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR: Path = ROOT / "notebooks"
PARAMS_DIR: Path = NOTEBOOKS_DIR / "params"
BENCHMARKS_DIR: Path = ROOT / "benchmarks"

#: Where ``crm generate`` writes the embedded default (synthetic) data set.
DEFAULT_DATA_DIR: Path = ROOT / "data" / "synthetic"
#: Default scale of the embedded data: every report builds in minutes on 2 cores.
DEFAULT_N_USERS: int = 100_000
DEFAULT_SEED: int = 42


def data_dir() -> Path:
    """The data directory analyses read (``$CRM_DATA_DIR`` or the embedded default)."""
    return Path(os.environ.get("CRM_DATA_DIR", DEFAULT_DATA_DIR)).expanduser().resolve()


def reports_dir() -> Path:
    """Where rendered reports go (``$CRM_REPORTS_DIR`` or ``reports/``)."""
    return Path(os.environ.get("CRM_REPORTS_DIR", ROOT / "reports")).expanduser().resolve()
