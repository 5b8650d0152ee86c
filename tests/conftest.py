"""Shared fixtures: engines (DuckDB and Spark local) and small synthetic worlds."""

from __future__ import annotations

import os
import tempfile

import pytest

from crm_helpers.engine import connect
from tests.shared_runs import shared_dir

#: Spark settings for every session the tests start (see crm_helpers.engine.spark_conf_from_env):
#: here, in report kernels and in child processes, which all inherit the environment. The
#: tests' data are small: 2 shuffle partitions instead of 8; and a JVM that lives a few
#: minutes spends less CPU with the quick C1 compiler only (TieredStopAtLevel=1) than
#: compiling hot code again with C2. C1-only shrinks the default code cache to 48 MB, which a
#: session running ~15 Spark tests filled ("Out of space in CodeCache", the JVM died): hence
#: ReservedCodeCacheSize (reserved, committed only as used; the tiered default is 240 MB).
#: Measured with benchmarks/pytest_cpu.py: see benchmarks/suite_cpu.md.
TEST_JAVA_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=512m"
TEST_SPARK_CONF = ";".join(
    [
        "spark.sql.shuffle.partitions=2",
        f"spark.driver.extraJavaOptions={TEST_JAVA_OPTIONS}",
        f"spark.executor.extraJavaOptions={TEST_JAVA_OPTIONS}",
    ]
)
os.environ.setdefault("CRM_SPARK_CONF", TEST_SPARK_CONF)
# the Spark class-data archive is not used by the suite: in two fresh-clone CI runs a driver
# started with it did not map it (tests/test_engine_class_archive.py; cause not found yet)
os.environ.setdefault("CRM_SPARK_CLASS_ARCHIVE", "off")
# the standalone cluster's master and worker (tests/test_spark_cluster.py)
os.environ.setdefault("SPARK_DAEMON_JAVA_OPTS", TEST_JAVA_OPTIONS)
# prepared event stores (crm_helpers.store) of the tests' worlds: in the temp folder, shared
# by the xdist workers (stores are locked and keyed by data folder), never in the checkout
os.environ.setdefault(
    "CRM_CACHE_DIR", os.path.join(tempfile.gettempdir(), f"crm-test-cache-{os.getuid()}")
)

# report kernels forked from a warm server per worker (crm_helpers.report.forkserver: its
# imports are paid once, not by every kernel; see benchmarks/suite_cpu.md "Warm kernels")
os.environ.setdefault("CRM_WARM_KERNEL", "1")

ENGINE_PARAMS = [
    pytest.param("duckdb", id="duckdb"),
    pytest.param("spark", id="spark", marks=pytest.mark.spark),
]


def _module_scoped_fixtures(item) -> list[str]:
    """The module-scoped fixtures ``item`` uses (directly or through other fixtures)."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return []
    return [n for n, defs in info.name2fixturedefs.items() if defs and defs[-1].scope == "module"]


#: Rough CPU seconds of one test, by mark, for ordering the xdist work units (measured with
#: benchmarks/pytest_cpu.py, 2026-12-07: a notebook run or a Spark-cluster/PostgreSQL test
#: costs 10-40 s, a local-Spark test 2-25 s, the rest well under a second on average).
MARK_COST = {"slow": 20.0, "spark": 8.0}
DEFAULT_COST = 0.3
#: Measured CPU seconds of whole units whose cost the marks misjudge (benchmarks/pytest_cpu.py,
#: process tree included; see benchmarks/suite_cpu.md): they override the estimate.
UNIT_COST = {
    "tests/test_spark_cluster.py": 170.0,  # two Spark applications on a standalone cluster
    "postgres": 45.0,  # two throwaway servers, 11 tests (the marks would say 220)
    "tests/synth/test_campaign_truth.py": 5.0,  # 60k-user world in memory, 12 tests (4.8 CPU s)
}


def _cost(item) -> float:
    for mark, cost in MARK_COST.items():
        if item.get_closest_marker(mark) is not None:
            return cost
    return DEFAULT_COST


def _group(item) -> str | None:
    mark = item.get_closest_marker("xdist_group")
    if mark is None:
        return None
    return str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))


def pytest_collection_modifyitems(config, items):
    """xdist groups for ``pytest -n 2 --dist loadgroup`` (``make test``), heaviest first.

    * A test without a group of its own that uses a module-scoped fixture (an executed
      report, a generated world) runs on the worker of its module's other such tests
      (group: the module's path), so the fixture is built once, not once per worker.
    * Everything else is distributed test by test, Spark tests too: each worker starts
      one local Spark session (``spark_con``) when its first Spark test needs it. (Keeping
      every Spark test on one worker saved one JVM start, ~10 s, but made that worker's
      share of the suite the longest: the Spark tests take minutes.)
    * The work units (a group, or one test without a group) are then ordered by their
      estimated cost, heaviest first (:data:`MARK_COST`), keeping the collection order
      within a unit. ``--dist loadgroup`` hands units out in this order when reordering
      by test count is off (``--no-loadscope-reorder``, as ``make test`` runs it), so the
      long groups start at once and the cheap single tests fill the end: the two workers
      finish together instead of one running the last long group alone.
    """
    for item in items:
        if item.get_closest_marker("xdist_group") is not None:
            continue  # the module chose its group
        if _module_scoped_fixtures(item):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
    units: dict[str, list] = {}
    for item in items:
        units.setdefault(_group(item) or item.nodeid, []).append(item)
    cost = {key: UNIT_COST.get(key) or sum(_cost(i) for i in unit) for key, unit in units.items()}
    order = sorted(units, key=lambda key: -cost[key])  # stable: collection order on ties
    items[:] = [item for key in order for item in units[key]]


@pytest.fixture(scope="session")
def spark_con():
    """One local Spark connection per test session and xdist worker (~9 s to start)."""
    pytest.importorskip("pyspark")
    return connect("spark")


@pytest.fixture(params=ENGINE_PARAMS)
def con(request):
    """An Ibis connection, once per engine: a test using it runs on DuckDB and on Spark."""
    if request.param == "spark":
        return request.getfixturevalue("spark_con")
    return connect("duckdb")


# --- small synthetic worlds (owned by crm_helpers.synth) -------------------------------


def _write_synthetic_world(tmp_path_factory, name, **cfg):
    """The world of ``cfg`` as Parquet, generated once per session (shared by the xdist
    workers, see tests/shared_runs.py); its directory."""
    from crm_helpers.synth import SynthConfig, generate, write_world

    def build(out):
        write_world(generate(SynthConfig(**cfg)), out, fmt="parquet", overwrite=True)

    return shared_dir(tmp_path_factory, name, build)


@pytest.fixture(scope="session")
def small_world(tmp_path_factory):
    """A ~5,000-user synthetic world (seed 7) written as Parquet; its directory (a Path).

    The directory holds the five contract tables, ``truth/`` and ``ground_truth.json``.
    """
    return _write_synthetic_world(tmp_path_factory, "small_world", n_users=5_000, seed=7)


@pytest.fixture(scope="session")
def dirty_world(tmp_path_factory):
    """Like ``small_world`` but ~2,000 users with planted dirt (counts in ground_truth["dirt"])."""
    return _write_synthetic_world(tmp_path_factory, "dirty_world", n_users=2_000, seed=7, dirt=True)


#: The dense world of the planted-effect tests: 60k users (seed 11) at 2.5x the session rates
#: and the same buying propensity for everyone (``propensity_power=0``). At real rates few
#: visitors buy, so planted effects on buyers (the checkout drop-off, the coupon lift) need
#: this much activity to be found with power ~1 (see tests/funnels/test_planted.py and
#: tests/experiments/test_planted.py for the sizes it gives).
#: The knobs alone: at the realistic defaults most users visit rarely and few ever buy, so
#: per-user planted truths (churn, lookalike seeds) drown in sampling noise without them.
DENSE_KNOBS = {"activity_scale": 2.5, "propensity_power": 0.0}
DENSE_WORLD = {"n_users": 60_000, "seed": 11, **DENSE_KNOBS}


@pytest.fixture(scope="session")
def dense_world(tmp_path_factory):
    """The :data:`DENSE_WORLD` synthetic world written as Parquet; its directory (a Path).

    ~10 s to generate and write; generated once per test session (for every xdist worker).
    """
    return _write_synthetic_world(tmp_path_factory, "dense_world", **DENSE_WORLD)


@pytest.fixture(scope="session")
def dense_small_world(tmp_path_factory):
    """Like ``small_world`` (5,000 users, seed 7) with the :data:`DENSE_KNOBS`.

    For per-user planted truths that need activity but not 60k users (segments' churn states,
    the lookalike seed type).
    """
    return _write_synthetic_world(
        tmp_path_factory, "dense_small_world", n_users=5_000, seed=7, **DENSE_KNOBS
    )
