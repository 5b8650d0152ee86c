"""nbval: data_overview runs top to bottom with its default parameters on the data that
``$CRM_DATA_DIR`` points to (outputs are not compared: ``--nbval-lax``)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from crm_helpers import config

pytestmark = [pytest.mark.slow]

NOTEBOOK = config.NOTEBOOKS_DIR / "data_overview.ipynb"


def test_data_overview_runs_under_nbval(small_world, tmp_path):
    pytest.importorskip("nbval")
    env = {**os.environ, "CRM_DATA_DIR": str(small_world)}
    env.pop("CRM_METRICS_PATH", None)
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--nbval-lax",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            "-q",
            "--rootdir",
            str(tmp_path),
            str(NOTEBOOK),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    n_code = sum(1 for line in NOTEBOOK.read_text().splitlines() if '"cell_type": "code"' in line)
    assert f"{n_code} passed" in res.stdout, res.stdout[-2000:]
