"""Connect to a compute engine through Ibis: DuckDB (embedded default), Spark, or any URL.

Event-level work is written once as Ibis expressions and runs on whichever backend
:func:`connect` returns; only aggregates come back as pandas.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
from ibis.backends import BaseBackend

#: Default DuckDB memory limit: a 4-step funnel over 50M events peaks at 1.6 GB RSS with it
#: (7.7 s; 1.5GB: 1.9 GB, 8.0 s; unbounded: 3.8 GB, 6.6 s; see benchmarks/README.md).
DUCKDB_MEMORY_LIMIT = "1.2GB"


def connect(engine: str = "duckdb", **options: Any) -> BaseBackend:
    """Open an Ibis connection.

    Parameters
    ----------
    engine
        ``"duckdb"`` (in-process, default), ``"spark"`` (a local or configured
        ``SparkSession``), or any Ibis connection URL (``"postgres://..."``,
        ``"snowflake://..."``, ``"duckdb:///path/to.db"``).
    **options
        DuckDB: ``threads``, ``memory_limit`` (default ``$CRM_DUCKDB_MEMORY_LIMIT`` or
        :data:`DUCKDB_MEMORY_LIMIT`; ``"none"`` leaves DuckDB's own default of 80% of RAM:
        a bounded engine keeps its footprint predictable beside the notebook kernel and
        spills to ``temp_directory`` beyond it, which slows only very large queries),
        ``temp_directory`` (default ``$CRM_DUCKDB_TEMP_DIR`` or a folder in the system temp
        directory, never the data directory), ``progress_bar`` (default False: in a
        notebook DuckDB draws its progress bar as an ipywidget, which a static report
        cannot show). Spark: ``master`` (default ``$CRM_SPARK_MASTER`` or ``local[*]``).

    Returns
    -------
    ibis.backends.BaseBackend
        A connection whose session time zone is UTC.
    """
    if engine == "duckdb":
        progress_bar = bool(options.pop("progress_bar", False))
        limit = options.pop("memory_limit", os.environ.get("CRM_DUCKDB_MEMORY_LIMIT"))
        limit = DUCKDB_MEMORY_LIMIT if limit is None else limit
        if str(limit).lower() not in ("", "none"):
            options["memory_limit"] = str(limit)
        options.setdefault(
            "temp_directory",
            os.environ.get("CRM_DUCKDB_TEMP_DIR", str(Path(tempfile.gettempdir()) / "crm_duckdb")),
        )
        con = ibis.duckdb.connect(**{k: v for k, v in options.items() if v is not None})
        con.raw_sql("SET TimeZone = 'UTC'")
        con.raw_sql(f"SET enable_progress_bar = {str(progress_bar).lower()}")
        return con
    if engine in ("spark", "pyspark"):
        session = spark_session(options.get("master"))
        return ibis.pyspark.connect(session)
    if "://" in engine:
        con = ibis.connect(engine, **options)
        if con.name == "postgres":
            postgres_compat()
        return con
    raise ValueError(
        f"Unknown engine {engine!r}: use 'duckdb', 'spark' or an Ibis connection URL "
        "such as 'postgres://user@host/db'."
    )


def postgres_compat() -> None:
    """Let Ibis's PostgreSQL SQL run the helpers' expressions (idempotent, process-wide).

    PostgreSQL casts ``boolean`` to ``integer`` but not to ``bigint``, while Ibis (12)
    compiles ``cond.cast("int64")`` and ``cond.sum()`` — how the helpers count rows — to
    ``CAST(b AS BIGINT)``, which PostgreSQL refuses. Such casts go through ``INT`` first.
    """
    from ibis.backends.sql.compilers.postgres import PostgresCompiler

    if getattr(PostgresCompiler, "_crm_compat", False):
        return
    visit_cast = PostgresCompiler.visit_Cast

    def visit_Cast(self, op, *, arg, to):  # noqa: N802 - Ibis' visitor name
        if op.arg.dtype.is_boolean() and to.is_integer() and not to.is_int32():
            arg = self.cast(arg, dt.int32)
        return visit_cast(self, op, arg=arg, to=to)

    PostgresCompiler.visit_Cast = visit_Cast
    PostgresCompiler.visit_TryCast = visit_Cast
    PostgresCompiler._crm_compat = True


def temp_view(con: BaseBackend, name: str, expr: ir.Table) -> ir.Table:
    """``expr`` registered as a temporary view ``name``; the view's table is returned.

    Analyses reference the loaded tables many times in one query (a funnel scans ``events``
    once per step). Left as an Ibis expression, a normalised table is a shared sub-query that
    Ibis emits as a CTE, and DuckDB *materialises* a CTE used more than once: every funnel
    row is copied into memory before the first join (31M rows at 50M events). A view is inlined
    at each use instead, so each use gets its own filters pushed into the Parquet scan.
    PostgreSQL also materialises a CTE used more than once, so it gets a temporary view too
    (session-scoped, in ``pg_temp``). Backends without temporary views get ``expr`` back
    unchanged.
    """
    if con.name == "duckdb":
        con.raw_sql(f'CREATE OR REPLACE TEMP VIEW "{name}" AS {con.compile(expr)}')
        return con.table(name)
    if con.name == "pyspark":
        return con.create_view(name, expr, overwrite=True)  # a Spark TEMPORARY VIEW
    if con.name == "postgres":  # in the session's pg_temp schema: nothing persistent written
        con.raw_sql(f'CREATE OR REPLACE TEMPORARY VIEW "{name}" AS {con.compile(expr)}').close()
        return con.table(name)
    return expr


def spark_conf_from_env() -> dict[str, str]:
    """Extra Spark settings from ``$CRM_SPARK_CONF``: ``key=value`` pairs separated by ``;``.

    For example ``spark.sql.shuffle.partitions=2;spark.driver.extraJavaOptions=-Xss4m``
    (how the test suite sizes every session it starts, in kernels and child processes too:
    see tests/conftest.py). Whitespace around pairs is ignored; an entry without ``=`` is an
    error rather than silently dropped.
    """
    out: dict[str, str] = {}
    for pair in os.environ.get("CRM_SPARK_CONF", "").split(";"):
        if not pair.strip():
            continue
        key, sep, value = pair.strip().partition("=")
        if not sep or not key.strip():
            raise ValueError(f"CRM_SPARK_CONF: {pair!r} is not key=value")
        out[key.strip()] = value.strip()
    return out


@lru_cache(maxsize=1)
def spark_session(master: str | None = None):
    """A process-wide local ``SparkSession`` set to UTC, quiet, and sized for tests.

    ``pyspark`` is an optional dependency (``pip install crm-helpers[spark]``). Settings in
    ``$CRM_SPARK_CONF`` (see :func:`spark_conf_from_env`) are applied last, over these. The
    driver JVM maps the class-data archive of :func:`class_archive_path` when it exists
    (through ``spark.driver.defaultJavaOptions``); when it does not, the session starts
    without it and a background process writes it for the next ones
    (:func:`write_class_archive`; ``$CRM_SPARK_CLASS_ARCHIVE=off``: never).
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "The Spark engine needs pyspark: pip install 'crm-helpers[spark]' "
            "(and Java 17 on PATH)."
        ) from exc
    master = master or os.environ.get("CRM_SPARK_MASTER", "local[*]")
    builder = (
        SparkSession.builder.master(master)
        .appName("crm-workbench")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", os.environ.get("CRM_SPARK_PARTITIONS", "8"))
        .config("spark.driver.memory", os.environ.get("CRM_SPARK_DRIVER_MEMORY", "4g"))
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        # tables created in a session (tests, scratch work) go to a fresh temporary folder,
        # not ./spark-warehouse under the working directory, where a later session's table
        # of the same name would collide with the leftover folder
        .config(
            "spark.sql.warehouse.dir",
            os.environ.get("CRM_SPARK_WAREHOUSE") or tempfile.mkdtemp(prefix="crm_spark_wh_"),
        )
    )
    conf = spark_conf_from_env()
    java = conf.get("spark.driver.extraJavaOptions", "")
    archive = class_archive_path(java)
    if archive is not None:
        if archive.is_file():  # Spark puts the default options before the extra ones
            key = "spark.driver.defaultJavaOptions"
            conf[key] = f"{conf.get(key, '')} {_use_archive(archive)}".strip()
        else:
            _start_archive_writer(archive, java)
    for key, value in conf.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


# --- the driver JVM's class-data archive (AppCDS) ---------------------------------------------
#
# A Spark driver JVM spends most of its start loading and verifying the same ~10,000 classes
# from pyspark's jars. A dynamic class-data-sharing archive (JDK 13+) holds them parsed and
# verified; a JVM started with -XX:SharedArchiveFile maps it instead (measured: session start
# plus first queries 12.4 -> 7.0 CPU s; see benchmarks/suite_cpu.md, "Spark tests, round 2").

#: ``$CRM_SPARK_CLASS_ARCHIVE``: ``off`` (or ``0``/``none``) for no archive, a file path for
#: that archive, unset for one per pyspark/Java/options in the cache (:func:`class_archive_path`).
CLASS_ARCHIVE_ENV = "CRM_SPARK_CLASS_ARCHIVE"
#: JVM logging off for class sharing: a missing or mismatched archive (another JVM build) is
#: skipped silently (``-Xshare:auto``, the default) instead of warning into a report's log.
_QUIET_CDS = "-Xlog:cds*=off -Xlog:class+path*=off"
#: A writer that has held its lock this long (seconds) is taken as dead: the lock is broken.
_ARCHIVE_LOCK_STALE_S = 600.0


def class_archive_path(java_options: str = "") -> Path | None:
    """Where the driver JVM's class-data archive lives, or None when it is switched off.

    Unset ``$CRM_SPARK_CLASS_ARCHIVE``: ``<cache>/spark/classes-<key>.jsa`` in
    :func:`crm_helpers.config.cache_root`, keyed by the pyspark version and the folder of
    its jars (the driver's class path), the ``java`` binary (path and modification time) and
    the driver's extra Java options, the things an archive must match; an archive that still does not match is ignored by the JVM.
    """
    raw = os.environ.get(CLASS_ARCHIVE_ENV, "").strip()
    if raw.lower() in ("off", "0", "none", "false"):
        return None
    if raw:
        return Path(raw).expanduser()
    try:
        import pyspark
    except ImportError:
        return None
    home = os.environ.get("JAVA_HOME")
    java = shutil.which("java", path=str(Path(home) / "bin")) if home else shutil.which("java")
    if java is None:
        return None
    java = os.path.realpath(java)
    # the driver's class path is pyspark's jars: an archive dumped with other jars (another
    # virtual environment, a fresh clone) would be skipped by the JVM, silently
    jars = os.path.realpath(Path(pyspark.__file__).parent / "jars")
    stamp = f"{pyspark.__version__}|{jars}|{java}|{os.stat(java).st_mtime_ns}|{java_options}"
    from crm_helpers.config import cache_root

    key = hashlib.sha256(stamp.encode()).hexdigest()[:16]
    return cache_root() / "spark" / f"classes-{key}.jsa"


def _use_archive(archive: Path) -> str:
    return f"-XX:SharedArchiveFile={archive} {_QUIET_CDS}"


def _start_archive_writer(archive: Path, java_options: str) -> None:
    """Start :func:`write_class_archive` in the background unless another process does.

    The session being started runs without the archive; later ones use it. The writer is a
    detached process with its own JVM; the lock file keeps it to one at a time.
    """
    archive.parent.mkdir(parents=True, exist_ok=True)
    lock = archive.with_suffix(".lock")
    try:
        if time.time() - lock.stat().st_mtime > _ARCHIVE_LOCK_STALE_S:
            lock.unlink(missing_ok=True)
    except FileNotFoundError:
        pass
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return  # another process is writing it
    os.close(fd)
    code = (
        "import sys; from crm_helpers.engine import write_class_archive; "
        "write_class_archive(sys.argv[1], sys.argv[2], lock=sys.argv[3])"
    )
    env = {**os.environ, CLASS_ARCHIVE_ENV: "off"}
    subprocess.Popen(
        [sys.executable, "-c", code, str(archive), java_options, str(lock)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def write_class_archive(archive: str | Path, java_options: str = "", lock: str = "") -> Path:
    """Write the class-data archive of a driver JVM that ran typical queries; its path.

    Runs in its own process (a process has one Spark JVM): starts a local session with
    ``-XX:ArchiveClassesAtExit``, reads and writes Parquet, joins, aggregates, runs a window
    and converts through Arrow, then stops the JVM, which writes the classes it loaded. The
    archive appears under its name only once complete (written beside it, then renamed).
    """
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    archive = Path(archive)
    tmp = archive.with_name(f"{archive.name}.{os.getpid()}.tmp")
    try:
        with tempfile.TemporaryDirectory(prefix="crm_spark_archive_") as work:
            session = (
                SparkSession.builder.master("local[1]")
                .config("spark.ui.enabled", "false")
                .config("spark.ui.showConsoleProgress", "false")
                .config("spark.sql.session.timeZone", "UTC")
                .config("spark.sql.execution.arrow.pyspark.enabled", "true")
                .config("spark.sql.warehouse.dir", str(Path(work) / "wh"))
                .config(
                    "spark.driver.extraJavaOptions",
                    f"{java_options} -XX:ArchiveClassesAtExit={tmp} {_QUIET_CDS}".strip(),
                )
                .getOrCreate()
            )
            import pandas as pd

            pdf = pd.DataFrame({"k": [1, 2, 2, 3], "v": [1.0, 2.0, 3.0, 4.0]})
            pdf["ts"] = pd.Timestamp("2024-01-01") + pd.to_timedelta(pdf["k"], unit="h")
            session.createDataFrame(pdf).write.parquet(str(Path(work) / "t.parquet"))
            session.read.parquet(str(Path(work) / "t.parquet")).createOrReplaceTempView("t")
            session.sql(
                "SELECT a.k, count(*) AS n, sum(b.v) AS v, max(a.ts) AS ts, "
                "count(DISTINCT b.v) AS d FROM t a JOIN t b ON a.k = b.k GROUP BY a.k"
            ).toPandas()
            session.sql(
                "SELECT k, lag(ts) OVER (PARTITION BY k ORDER BY ts) AS p, "
                "row_number() OVER (PARTITION BY k ORDER BY ts) AS r, "
                "date_trunc('week', ts) AS w FROM t"
            ).toPandas()
            session.stop()
            gateway = SparkContext._gateway
            proc = getattr(gateway, "proc", None)
            if gateway is not None:
                gateway.shutdown()
            if proc is not None:  # the JVM exits on end of input, writing the archive
                proc.stdin.close()
                proc.wait(300)
        if tmp.is_file() and tmp.stat().st_size > 0:
            os.replace(tmp, archive)
        return archive
    finally:
        tmp.unlink(missing_ok=True)
        if lock:
            Path(lock).unlink(missing_ok=True)


# --- time zones: naive local wall time <-> naive UTC, with each backend's own builtins ---------
#
# DuckDB (and Postgres): timezone(tz, TIMESTAMP) -> TIMESTAMPTZ reads a wall time in ``tz``;
# timezone(tz, TIMESTAMPTZ) -> TIMESTAMP gives the wall time in ``tz``.
# Spark: to_utc_timestamp(ts, tz) / from_utc_timestamp(ts, tz), session time zone UTC.

_UTC_NAMES = frozenset({"UTC", "Etc/UTC", "utc", "Z", "GMT", "Etc/GMT", "UCT", "Zulu"})


@ibis.udf.scalar.builtin(name="timezone")
def _duckdb_wall_to_instant(tz: str, ts: dt.timestamp) -> dt.Timestamp(timezone="UTC"):  # type: ignore[valid-type]
    """DuckDB ``timezone(tz, TIMESTAMP)``: the instant of wall time ``ts`` in ``tz``."""


@ibis.udf.scalar.builtin(name="timezone")
def _duckdb_instant_to_wall(tz: str, ts: dt.Timestamp(timezone="UTC")) -> dt.timestamp:  # type: ignore[valid-type]
    """DuckDB ``timezone(tz, TIMESTAMPTZ)``: the wall time in ``tz`` of instant ``ts``."""


@ibis.udf.scalar.builtin(name="to_utc_timestamp")
def _spark_to_utc(ts: dt.timestamp, tz: str) -> dt.timestamp:
    """Spark ``to_utc_timestamp``: wall time ``ts`` in ``tz`` -> UTC."""


@ibis.udf.scalar.builtin(name="from_utc_timestamp")
def _spark_from_utc(ts: dt.timestamp, tz: str) -> dt.timestamp:
    """Spark ``from_utc_timestamp``: UTC ``ts`` -> wall time in ``tz``."""


def is_utc(tz: str) -> bool:
    """Whether ``tz`` names UTC (no conversion needed)."""
    return tz in _UTC_NAMES


def _wall_to_utc_raw(ts: ir.TimestampValue, tz: str, backend: str) -> ir.TimestampValue:
    if backend in ("duckdb", "postgres"):
        return _duckdb_wall_to_instant(tz, ts).cast(dt.Timestamp())
    if backend == "pyspark":
        return _spark_to_utc(ts, tz)
    raise NotImplementedError(
        f"Converting local times ({tz}) to UTC is implemented for DuckDB, Postgres and Spark, "
        f"not for {backend!r}: store UTC timestamps or set timezone: UTC in schema.yaml."
    )


def _utc_to_wall(ts: ir.TimestampValue, tz: str, backend: str) -> ir.TimestampValue:
    if backend in ("duckdb", "postgres"):
        return _duckdb_instant_to_wall(tz, ts.cast(dt.Timestamp(timezone="UTC")))
    return _spark_from_utc(ts, tz)


def local_to_utc(ts: ir.TimestampValue, tz: str, backend: str) -> ir.TimestampValue:
    """Read naive wall times in time zone ``tz`` as naive UTC, identically on every engine.

    Parameters
    ----------
    ts
        A naive timestamp column (wall-clock time in ``tz``).
    tz
        An IANA zone name, e.g. ``"Europe/Berlin"``.
    backend
        ``con.name`` of the connection the expression runs on (``duckdb``, ``pyspark``).

    Returns
    -------
    ibis.expr.types.TimestampValue
        Naive UTC timestamps. Around daylight-saving changes the engines' builtins disagree,
        so the rule is fixed here: an *ambiguous* wall time (the repeated hour in autumn)
        is read as its first occurrence (summer time, pandas ``ambiguous=True``); a
        *non-existent* one (the skipped hour in spring) is shifted forward by the gap
        (pandas ``nonexistent=pd.Timedelta("1h")``).
    """
    if is_utc(tz):
        return ts
    hour = ibis.interval(hours=1)
    first = _wall_to_utc_raw(ts, tz, backend)
    # An ambiguous wall time has a second, earlier reading: one hour before the engine's
    # answer. It is valid when converting it back gives the same wall time.
    earlier = _wall_to_utc_raw(ts - hour, tz, backend) + hour
    earlier_ok = _utc_to_wall(earlier, tz, backend) == ts
    return ibis.ifelse(earlier_ok & (earlier < first), earlier, first)


# --- epoch microseconds: exact and cheap on each engine ----------------------------------
_EPOCH = datetime(1970, 1, 1)
# Epoch microseconds <-> timestamps with each engine's own cheap builtin (a portable
# ``ts.delta(epoch, "microsecond")`` compiles to a calendar DATE_DIFF on DuckDB, and Spark's
# interval arithmetic goes through strings). ``epoch_seconds`` is not used: DuckDB keeps the
# fraction, Spark truncates it.


@ibis.udf.scalar.builtin(name="epoch_us")
def _duckdb_epoch_us(ts: dt.timestamp) -> dt.int64:  # type: ignore[empty-body]
    """DuckDB ``epoch_us(TIMESTAMP)``: microseconds since 1970-01-01."""


@ibis.udf.scalar.builtin(name="make_timestamp")
def _duckdb_make_timestamp(us: dt.int64) -> dt.timestamp:  # type: ignore[empty-body]
    """DuckDB ``make_timestamp(BIGINT)``: the timestamp ``us`` microseconds after the epoch."""


@ibis.udf.scalar.builtin(name="unix_micros")
def _spark_unix_micros(ts: dt.timestamp) -> dt.int64:  # type: ignore[empty-body]
    """Spark ``unix_micros(TIMESTAMP)``: microseconds since 1970-01-01 UTC."""


@ibis.udf.scalar.builtin(name="to_timestamp_ltz")
def _spark_to_timestamp_ltz(ts: dt.timestamp) -> dt.timestamp:  # type: ignore[empty-body]
    """Spark ``to_timestamp_ltz``: a TIMESTAMP_NTZ (or TIMESTAMP) as TIMESTAMP, exact.

    The wall time of a TIMESTAMP_NTZ is read in the session time zone (UTC, see
    :func:`spark_session`); a TIMESTAMP is returned unchanged.
    """


@ibis.udf.scalar.builtin(name="timestamp_micros")
def _spark_timestamp_micros(us: dt.int64) -> dt.timestamp:  # type: ignore[empty-body]
    """Spark ``timestamp_micros(BIGINT)``: the timestamp ``us`` microseconds after the epoch."""


def epoch_us(ts: ir.TimestampValue, backend: str | None) -> ir.IntegerValue:
    """Integer epoch microseconds of a naive-UTC timestamp (exact, sub-us truncated).

    On Spark the column may be a ``TIMESTAMP`` or a ``TIMESTAMP_NTZ`` (Spark reads naive
    Parquet timestamps, e.g. written by pandas without a time zone, as ``TIMESTAMP_NTZ``;
    Ibis types both as a naive timestamp). ``unix_micros`` takes only ``TIMESTAMP``, so the
    column goes through ``to_timestamp_ltz`` first: the NTZ wall time read in the session time
    zone (UTC), which is exact; a ``TIMESTAMP`` passes unchanged. ``to_timestamp_ltz`` rather
    than a cast or ``to_timestamp``, whose result type follows ``spark.sql.timestampType``.
    """
    if backend == "duckdb":
        return _duckdb_epoch_us(ts)
    if backend == "pyspark":
        return _spark_unix_micros(_spark_to_timestamp_ltz(ts))
    return ts.delta(ibis.timestamp(_EPOCH), unit="microsecond")


def from_epoch_us(x: ir.IntegerValue, backend: str | None = None) -> ir.TimestampValue:
    """The naive-UTC timestamp ``x`` epoch microseconds after 1970-01-01 (inverse of epoch_us)."""
    if backend == "duckdb":
        return _duckdb_make_timestamp(x)
    if backend == "pyspark":
        return _spark_timestamp_micros(x)
    return ibis.timestamp(_EPOCH) + x.as_interval("us")
