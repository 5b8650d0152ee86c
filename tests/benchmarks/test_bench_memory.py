"""bench_funnel's peak memory is the worker's own, not its parent's (issue #11).

On Linux a child keeps its parent's ``ru_maxrss`` across fork and exec, so a worker started
from a large parent used to report at least the parent's size for every implementation.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bench_funnel  # noqa: E402
import funnel_impls as F  # noqa: E402

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux")


def test_vm_hwm_reads_this_process():
    hwm = bench_funnel.vm_hwm_bytes()
    assert hwm is not None and hwm > 10 * 2**20


def test_worker_peak_is_not_the_parents(tmp_path):
    data_dir = F.ensure_data(2_000, 20_000, 0, tmp_path)
    ballast = bytearray(1_200 * 2**20)  # the parent is now > 1.2 GB resident
    ballast[::4096] = b"x" * len(ballast[::4096])  # touch every page
    assert bench_funnel.vm_hwm_bytes() > 1_200 * 2**20
    res = bench_funnel.run_worker("pandas", data_dir, repeat=1, timeout=300)
    del ballast
    assert "error" not in res, res.get("error")
    # a pandas funnel on 20k events needs a few hundred MB, far below the parent's 1.2 GB
    assert 20 * 2**20 < res["peak_bytes"] < 800 * 2**20, res["peak_bytes"]
    assert res["peak_bytes"] >= res["poll_peak_bytes"]
