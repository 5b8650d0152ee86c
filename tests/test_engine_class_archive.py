"""The Spark driver JVM's class-data archive (crm_helpers.engine.class_archive_path).

A driver started while the archive exists must really map it (that is what saves its
start-up CPU); the archive's name follows what it must match; ``off`` switches it off.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from crm_helpers import config
from crm_helpers.engine import CLASS_ARCHIVE_ENV, class_archive_path, spark_conf_from_env


def test_off_or_a_path_or_one_per_options_in_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv(CLASS_ARCHIVE_ENV, "off")
    assert class_archive_path("-Xss4m") is None
    monkeypatch.setenv(CLASS_ARCHIVE_ENV, str(tmp_path / "a.jsa"))
    assert class_archive_path("-Xss4m") == tmp_path / "a.jsa"
    monkeypatch.delenv(CLASS_ARCHIVE_ENV)
    monkeypatch.setenv("CRM_CACHE_DIR", str(tmp_path / "cache"))
    a, b = class_archive_path("-Xss4m"), class_archive_path("-Xss8m")
    if a is None:
        pytest.skip("no pyspark or no java")
    assert a.parent == tmp_path / "cache" / "spark" and a.suffix == ".jsa"
    assert a != b  # another JVM configuration, another archive
    assert a == class_archive_path("-Xss4m")


def _archive_ready(java: str):
    """The suite's archive for ``java`` options, written here unless a writer is at it."""
    archive = class_archive_path(java)
    lock = archive.with_suffix(".lock")
    deadline = time.monotonic() + 900
    while lock.exists() and not archive.is_file() and time.monotonic() < deadline:
        time.sleep(2)  # a session start launched the background writer: wait for it
    if not archive.is_file():
        code = (
            "import sys; from crm_helpers.engine import write_class_archive as w; w(*sys.argv[1:])"
        )
        subprocess.run(
            [sys.executable, "-c", code, str(archive), java],
            env={**os.environ, CLASS_ARCHIVE_ENV: "off"},
            cwd=config.ROOT,
            check=True,
            capture_output=True,
            timeout=900,
        )
    return archive


@pytest.mark.spark
def test_a_driver_started_while_the_archive_exists_maps_it():
    pytest.importorskip("pyspark")
    java = spark_conf_from_env().get("spark.driver.extraJavaOptions", "")
    if class_archive_path(java) is None:
        pytest.skip("the archive is switched off or there is no java")
    archive = _archive_ready(java)
    # a fresh process: this one may already hold a JVM started without the archive
    code = (
        "from crm_helpers.engine import spark_session\n"
        "jvm = spark_session().sparkContext._jvm\n"
        "pid = jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getPid()\n"
        "maps = open(f'/proc/{pid}/maps').read()\n"
        "print('MAPPED' if __import__('sys').argv[1] in maps else 'NOT MAPPED')\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code, str(archive)],
        cwd=config.ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.strip().splitlines()[-1] == "MAPPED", res.stdout + res.stderr[-3000:]
    assert "[cds]" not in res.stdout + res.stderr  # a mismatch would be skipped silently
