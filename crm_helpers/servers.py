"""Throwaway local servers for tests and benchmarks: a PostgreSQL and a Spark standalone cluster.

Both are started from what is installed on the machine (Debian's ``postgresql`` binaries;
the ``pyspark`` wheel's ``bin/spark-class``), listen on 127.0.0.1 on free ports, keep every
file in a fresh temporary folder, and are stopped by their process ids (:meth:`stop`, or
leaving the ``with`` block). Nothing here is used by the analyses themselves.

>>> with LocalPostgres() as pg:                       # doctest: +SKIP
...     copy_to_postgres("data/synthetic", pg.url)
...     data = crm_helpers.load(engine=pg.url)       # the tables live only in PostgreSQL
"""

from __future__ import annotations

import contextlib
import glob
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout_s: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the process exited (status {proc.returncode}) before port {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} within {timeout_s:.0f} s")


# --- PostgreSQL ----------------------------------------------------------------------------


def postgres_bin_dir() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl`` (PATH first, then Debian's layout)."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(os.path.realpath(found)).parent
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(d) / "initdb").exists() and (Path(d) / "pg_ctl").exists():
            return Path(d)
    return None


class LocalPostgres:
    """A PostgreSQL server in a temporary folder on 127.0.0.1:<free port>, database ``crm``.

    As root the server runs as the ``postgres`` system user (PostgreSQL refuses to run as
    root), through ``runuser``. Authentication is ``trust`` for the local user
    ``postgres`` only, on the loopback interface; durability is off (``fsync=off``): the
    data are throwaway.

    Attributes
    ----------
    url
        ``postgres://postgres@127.0.0.1:<port>/crm``
    pid
        The postmaster's process id (while running).
    """

    def __init__(self, database: str = "crm") -> None:
        self.database = database
        self.bin = postgres_bin_dir()
        self.port = 0
        self.dir: Path | None = None
        self.pid: int | None = None

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{self.database}"

    def _as_server_user(self, args: list[str]) -> list[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *args]
        return args

    def start(self, timeout_s: float = 60) -> LocalPostgres:
        """initdb, pg_ctl start, CREATE DATABASE; on any failure the server is stopped again."""
        if self.bin is None:
            raise FileNotFoundError("PostgreSQL's initdb/pg_ctl are not installed")
        self.dir = Path(tempfile.mkdtemp(prefix="crm_pg_"))
        try:
            return self._start(timeout_s)
        except subprocess.CalledProcessError as exc:
            self.stop()
            raise RuntimeError(f"PostgreSQL did not start: {exc.stderr or exc}") from exc
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout_s: float) -> LocalPostgres:
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        data = self.dir / "data"
        run = lambda args: subprocess.run(  # noqa: E731
            self._as_server_user(args), check=True, capture_output=True, text=True
        )
        run(
            [str(self.bin / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"]
            + ["-E", "UTF8", "--locale=C", "--no-sync"]
        )
        self.port = free_port()
        opts = (
            f"-h 127.0.0.1 -p {self.port} -k {self.dir} -c fsync=off -c full_page_writes=off "
            "-c synchronous_commit=off -c shared_buffers=64MB -c max_connections=30 "
            "-c TimeZone=UTC"
        )
        log = self.dir / "server.log"
        run([str(self.bin / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", opts, "-w"]
            + ["-t", str(int(timeout_s)), "start"])  # fmt: skip
        self.pid = int((data / "postmaster.pid").read_text().split()[0])
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True
        ) as c:
            c.execute(f'CREATE DATABASE "{self.database}"')
        return self

    def stop(self) -> None:
        """Stop the server (``pg_ctl stop``; SIGQUIT to its pid if that fails) and delete it."""
        if self.dir is None:
            return
        if self.pid is not None or (self.dir / "data" / "postmaster.pid").exists():
            res = subprocess.run(
                self._as_server_user(
                    [str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "fast", "stop"]
                ),
                capture_output=True,
            )
            if res.returncode != 0 and self.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGQUIT)
            self.pid = None
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _pg_type(typ) -> str:
    import pyarrow as pa

    if pa.types.is_timestamp(typ):
        return "TIMESTAMPTZ" if typ.tz else "TIMESTAMP"
    if pa.types.is_date(typ):
        return "DATE"
    if pa.types.is_boolean(typ):
        return "BOOLEAN"
    if pa.types.is_integer(typ):
        return "BIGINT"
    if pa.types.is_floating(typ):
        return "DOUBLE PRECISION"
    if pa.types.is_decimal(typ):
        return f"NUMERIC({typ.precision},{typ.scale})"
    return "TEXT"


def copy_to_postgres(
    data_dir: str | Path,
    url: str,
    *,
    tables: dict[str, str] | None = None,
    schema: str | None = None,
) -> dict[str, int]:
    """Copy Parquet tables of ``data_dir`` into PostgreSQL (test and benchmark set-up).

    Parameters
    ----------
    data_dir
        A folder of ``<name>.parquet`` files (e.g. a synthetic world).
    url
        ``postgres://user@host:port/db``.
    tables
        File stem -> table name in the database (default: every ``*.parquet``, same name).
    schema
        A PostgreSQL schema to create the tables in (created if missing; default ``public``).

    Returns
    -------
    dict
        Table name -> rows copied. Tables are created with ``CREATE TABLE`` (replacing any of
        the same name) and filled with ``COPY ... FROM STDIN`` (CSV, one stream per table).
    """
    import psycopg

    data_dir = Path(data_dir)
    if tables is None:
        tables = {p.stem: p.stem for p in sorted(data_dir.glob("*.parquet"))}
    out: dict[str, int] = {}
    with psycopg.connect(url.replace("postgres://", "postgresql://", 1)) as c:
        if schema:
            c.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        for stem, name in tables.items():
            t = pq.read_table(data_dir / f"{stem}.parquet")
            qname = f'"{schema}"."{name}"' if schema else f'"{name}"'
            cols = ", ".join(f'"{f.name}" {_pg_type(f.type)}' for f in t.schema)
            c.execute(f"DROP TABLE IF EXISTS {qname}")
            c.execute(f"CREATE TABLE {qname} ({cols})")
            buf = io.BytesIO()
            pacsv.write_csv(t, buf, pacsv.WriteOptions(include_header=False))
            with c.cursor() as cur, cur.copy(f"COPY {qname} FROM STDIN WITH (FORMAT csv)") as cp:
                cp.write(buf.getvalue())
            out[name] = t.num_rows
        c.execute("ANALYZE")
    return out


# --- Spark standalone cluster ----------------------------------------------------------------


def spark_class() -> Path | None:
    """The installed pyspark's ``bin/spark-class`` (None without pyspark)."""
    try:
        import pyspark
    except ImportError:
        return None
    path = Path(pyspark.__file__).parent / "bin" / "spark-class"
    return path if path.exists() else None


class LocalSparkCluster:
    """A Spark standalone master and one worker on 127.0.0.1, from the pyspark wheel.

    The worker offers ``cores`` cores and ``memory`` to executors; its work folder (the
    executors' logs and files) is temporary. Executors run Python with this interpreter
    (``PYSPARK_PYTHON``). :attr:`url` is ``spark://127.0.0.1:<port>``, to pass as
    ``CRM_SPARK_MASTER``.
    """

    def __init__(self, cores: int = 1, memory: str = "1g") -> None:
        self.cores, self.memory = cores, memory
        self.dir: Path | None = None
        self.port = 0
        self.procs: list[subprocess.Popen] = []

    @property
    def url(self) -> str:
        return f"spark://127.0.0.1:{self.port}"

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def env(self) -> dict[str, str]:
        """Environment for the daemons, and for a driver that should use this cluster."""
        return {
            **os.environ,
            "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_LOG_DIR": str(self.dir / "logs"),
            "SPARK_WORKER_DIR": str(self.dir / "work"),
            "SPARK_DAEMON_MEMORY": "512m",
            "PYSPARK_PYTHON": sys.executable,
            "PYSPARK_DRIVER_PYTHON": sys.executable,
            "CRM_SPARK_MASTER": self.url,
        }

    def _daemon(self, args: list[str], log: str) -> subprocess.Popen:
        cmd = [str(spark_class()), *args]
        with open(self.dir / log, "wb") as fh:
            proc = subprocess.Popen(
                cmd, env=self.env(), stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.procs.append(proc)
        return proc

    def start(self, timeout_s: float = 120) -> LocalSparkCluster:
        if spark_class() is None:
            raise FileNotFoundError("pyspark (bin/spark-class) is not installed")
        if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
            raise FileNotFoundError("no java on PATH (Spark needs Java 17)")
        self.dir = Path(tempfile.mkdtemp(prefix="crm_spark_cluster_"))
        (self.dir / "work").mkdir()
        self.port = free_port()
        try:
            master = self._daemon(
                ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1"]
                + ["--port", str(self.port), "--webui-port", str(free_port())],
                "master.log",
            )
            _wait_port(self.port, timeout_s, master)
            worker_port = free_port()
            worker = self._daemon(
                ["org.apache.spark.deploy.worker.Worker", self.url, "--host", "127.0.0.1"]
                + ["--port", str(worker_port), "--webui-port", str(free_port())]
                + ["--cores", str(self.cores), "--memory", self.memory]
                + ["--work-dir", str(self.dir / "work")],
                "worker.log",
            )
            _wait_port(worker_port, timeout_s, worker)
            self._wait_registered(timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_registered(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        log = self.dir / "worker.log"
        while time.monotonic() < deadline:
            if "Successfully registered with master" in log.read_text(errors="replace"):
                return
            time.sleep(0.3)
        raise TimeoutError(f"the worker did not register with {self.url}: see {log}")

    def log_tail(self, n: int = 40) -> str:
        """The last lines of the master's and the worker's logs (for failure messages)."""
        if self.dir is None:
            return ""
        out = []
        for name in ("master.log", "worker.log"):
            p = self.dir / name
            if p.exists():
                out.append(
                    f"--- {name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-n:])
                )
        return "\n".join(out)

    def stop(self) -> None:
        """Stop the worker, then the master, by pid (SIGTERM, SIGKILL after 15 s); clean up."""
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        self.procs = []
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> LocalSparkCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
