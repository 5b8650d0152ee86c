"""A real Spark standalone cluster: a master and one worker started from the installed
pyspark, executors in their own processes, the driver talking to them over the network.

Local mode (``local[*]``, the other Spark tests) runs everything in one JVM, which hides
what a cluster changes: serialisation of tasks and Python functions to executor processes,
files that must be readable by the executors, and per-job start-up cost. Here the DuckDB-vs-
Spark agreement tests run again with ``CRM_SPARK_MASTER=spark://127.0.0.1:PORT`` (in a child
pytest, because a process has one SparkContext and this one may hold the local session), and
one whole report is built on the cluster and compared with DuckDB's.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from crm_helpers import config
from crm_helpers.servers import LocalSparkCluster, spark_class
from tests.report_helpers import assert_same_report, run_funnel_report

pytestmark = [pytest.mark.slow, pytest.mark.spark]

#: The DuckDB-vs-Spark agreement tests, run unchanged against the cluster.
AGREEMENT_TESTS = [
    "tests/test_engine.py::test_duckdb_and_spark_agree",
    "tests/funnels/test_core.py::test_duckdb_and_spark_agree",
    "tests/funnels/test_periods.py::test_period_counts_on_spark_equal_duckdb",
]
#: Driver settings for the cluster runs (the machine is shared: small memory, few partitions).
DRIVER_ENV = {"CRM_SPARK_DRIVER_MEMORY": "1g", "CRM_SPARK_PARTITIONS": "2"}


@pytest.fixture(scope="module")
def cluster():
    """Master + one worker (1 core, 1 GB for executors) on 127.0.0.1; stopped by pid after."""
    if spark_class() is None:
        pytest.skip("pyspark is not installed (the spark extra)")
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("no Java on PATH (Spark needs Java 17)")
    c = LocalSparkCluster(cores=1, memory="1g").start()
    yield c
    pids = c.pids
    c.stop()
    for pid in pids:  # both daemons are gone
        assert not os.path.exists(f"/proc/{pid}") or "zombie" in _state(pid)


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/status") as fh:
            return fh.read().lower()
    except OSError:
        return "zombie"


def _apps(c: LocalSparkCluster) -> set[str]:
    """Applications whose executors ran on the worker (one folder each in its work dir)."""
    return {p.name for p in (c.dir / "work").iterdir() if p.name.startswith("app-")}


def test_agreement_tests_pass_on_the_cluster(cluster, tmp_path):
    before = _apps(cluster)
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0"]
        + ["--basetemp", str(tmp_path / "pytest"), *AGREEMENT_TESTS],
        cwd=config.ROOT,
        env={**cluster.env(), **DRIVER_ENV},
        capture_output=True,
        text=True,
        timeout=1800,
    )
    tail = res.stdout[-4000:] + res.stderr[-2000:]
    assert res.returncode == 0, tail + cluster.log_tail()
    assert re.search(r"\b4 passed\b", res.stdout), tail  # none skipped or deselected
    new = _apps(cluster) - before
    assert len(new) == 1, f"the tests did not run on the cluster: {new}"
    (app,) = new
    assert any((cluster.dir / "work" / app).iterdir()), "no executor ran on the worker"


def test_funnel_report_on_the_cluster_equals_duckdb(cluster, tmp_path_factory, monkeypatch):
    from crm_helpers.synth import SynthConfig, generate, write_world

    world = tmp_path_factory.mktemp("cluster_world")
    write_world(generate(SynthConfig(n_users=1_500, seed=3)), world, fmt="parquet", overwrite=True)
    out = tmp_path_factory.mktemp("cluster_reports")
    _, expected = run_funnel_report(out / "duckdb", data_dir=world)
    for k, v in {**cluster.env(), **DRIVER_ENV}.items():
        monkeypatch.setenv(k, v)  # the report's kernel inherits them
    before = _apps(cluster)
    _, metrics = run_funnel_report(out / "spark", data_dir=world, engine="spark")
    assert len(_apps(cluster) - before) == 1, "the report did not run on the cluster"
    assert metrics["provenance"]["data"]["engine"] == "pyspark"
    assert_same_report(metrics, expected)
