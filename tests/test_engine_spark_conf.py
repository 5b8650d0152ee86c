"""``$CRM_SPARK_CONF``: extra Spark settings, parsed strictly and applied to the session.

The suite sets it in tests/conftest.py (few shuffle partitions, a quick-starting JVM); the
session the tests share must really carry those settings, in the JVM too.
"""

from __future__ import annotations

import os

import pytest

from crm_helpers.engine import spark_conf_from_env
from tests.conftest import TEST_SPARK_CONF


def test_pairs_are_parsed_and_whitespace_ignored(monkeypatch):
    monkeypatch.setenv("CRM_SPARK_CONF", " a.b=1 ;c=x=y;; d = -X -Y ")
    assert spark_conf_from_env() == {"a.b": "1", "c": "x=y", "d": "-X -Y"}
    monkeypatch.delenv("CRM_SPARK_CONF")
    assert spark_conf_from_env() == {}


@pytest.mark.parametrize("bad", ["spark.sql.shuffle.partitions", "=2"])
def test_an_entry_without_key_and_value_is_refused(monkeypatch, bad):
    monkeypatch.setenv("CRM_SPARK_CONF", f"a=1;{bad}")
    with pytest.raises(ValueError, match="not key=value"):
        spark_conf_from_env()


def test_the_suite_sets_it_for_every_process():
    # in the environment, so report kernels and child processes start sessions with it too
    # (a developer's own $CRM_SPARK_CONF is kept)
    assert os.environ.get("CRM_SPARK_CONF") and TEST_SPARK_CONF


@pytest.mark.spark
def test_the_shared_session_carries_the_settings(spark_con):
    session = spark_con._session
    for key, value in spark_conf_from_env().items():
        assert session.conf.get(key) == value, key
    java = spark_conf_from_env().get("spark.driver.extraJavaOptions", "")
    args = list(
        session.sparkContext._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments()
    )
    assert java and all(opt in args for opt in java.split()), args
