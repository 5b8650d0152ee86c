"""`crm prepare`, and the store around report runs: prepared in the parent before the kernel
(run-all: once for all reports), found fresh by the kernels, recorded in run.json with the
paths the kernel took, and named in the report's footer."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from crm_helpers import cli, config
from crm_helpers.report.prepared import computed_on_text


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CRM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("CRM_STORE_DIR", raising=False)


@pytest.fixture
def data_dir(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    n = 500
    d = tmp_path / "data"
    d.mkdir()
    pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in rng.integers(0, 40, n)],
            "event": rng.choice(["view", "buy"], n),
            "ts": pd.Timestamp("2024-05-01") + pd.to_timedelta(rng.integers(0, 10**6, n), "s"),
        }
    ).to_parquet(d / "events.parquet", index=False)
    return d


def _listing(d: Path) -> list[tuple[str, int, int]]:
    return [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(d.rglob("*"))]


def test_crm_prepare_builds_then_reports_fresh(data_dir, capsys):
    before = _listing(data_dir)
    assert cli.main(["prepare", "--data", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("built") and "(missing)" in out and "2 event names" in out
    assert cli.main(["prepare", "--data", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("fresh") and str(config.store_dir(data_dir)) in out
    assert _listing(data_dir) == before  # nothing written in the data folder


def test_crm_prepare_refusals(tmp_path, data_dir, capsys, monkeypatch):
    assert cli.main(["prepare", "--data", str(tmp_path / "nowhere")]) == 1
    assert "do not load" in capsys.readouterr().err
    users_only = tmp_path / "users_only"
    users_only.mkdir()
    pd.DataFrame({"user_id": ["a", "b"]}).to_parquet(users_only / "users.parquet")
    assert cli.main(["prepare", "--data", str(users_only)]) == 2
    assert "no events table" in capsys.readouterr().err
    monkeypatch.setenv("CRM_CACHE_DIR", str(data_dir / ".cache"))
    assert cli.main(["prepare", "--data", str(data_dir)]) == 2
    assert "inside the data directory" in capsys.readouterr().err
    assert not (data_dir / ".cache").exists()


def test_computed_on_text():
    text = computed_on_text({"journeys": ["ibis"], "funnel": ["ibis", "kernel"]}, None)
    assert text == (
        "Computed on: funnel: Ibis path and kernel path (sorted arrays); journeys: Ibis path."
    )
    store = {"manifest_sha256": "abc123", "status": "built"}
    assert "Event store <code>abc123</code> (built for this run)." in computed_on_text({}, store)
    assert computed_on_text({}, None).startswith("Computed on: Ibis path")


KERNEL = """
import os
from crm_helpers.data import load
from crm_helpers.report import metrics
from crm_helpers.store import ensure_store, event_arrays
from crm_helpers.store.paths import record_path
metrics.set_provenance({"title": "store demo"})
data = load(data_dir or None)
status = ensure_store(data).status  # the parent prepared it: fresh here
a = event_arrays(data)
record_path("demo", "kernel" if a is not None else "ibis")
metrics.record("kernel_store_status", status)
metrics.record("store_env", os.environ.get("CRM_STORE_DIR"))
metrics.record("n_events", a.n_events)
metrics.summary(["done"])
"""


def _notebook(path: Path) -> Path:
    cells = [
        nbformat.v4.new_code_cell('data_dir: str = ""\nengine: str = "duckdb"'),
        nbformat.v4.new_code_cell(KERNEL),
    ]
    cells[0].metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


@pytest.mark.slow
def test_crm_run_prepares_before_the_kernel_and_records_it(tmp_path, data_dir):
    from crm_helpers.report.run import run_notebook

    nb = _notebook(tmp_path / "nbs" / "demo.ipynb")
    out = tmp_path / "reports"
    res = run_notebook(nb, data_dir=data_dir, out_dir=out, update_index=False)
    assert res.ok, res.error
    run = json.loads((out / "demo" / "run.json").read_text())
    metrics = json.loads((out / "demo" / "metrics.json").read_text())
    store = config.store_dir(data_dir)
    assert run["store"]["status"] == "built" and run["store"]["dir"] == str(store)
    assert metrics["metrics"]["kernel_store_status"] == "fresh"
    assert metrics["metrics"]["store_env"] == str(store)
    assert run["computed_on"] == {"demo": ["kernel"]}
    assert metrics["provenance"]["paths"] == {"demo": ["kernel"]}
    html = (out / "demo" / "demo.html").read_text()
    assert "Computed on: demo: kernel path (sorted arrays)." in html
    assert f"<code>{run['store']['manifest_sha256']}</code> (built for this run)" in html
    again = run_notebook(nb, data_dir=data_dir, out_dir=out, update_index=False)
    assert again.ok and again.store["status"] == "fresh"
    assert again.store["manifest_sha256"] == run["store"]["manifest_sha256"]


@pytest.mark.slow
def test_run_all_prepares_once_for_reports_in_parallel(tmp_path, data_dir):
    from crm_helpers.report.batch import run_all

    nbs = tmp_path / "nbs"
    for name in ("one", "two"):
        _notebook(nbs / f"{name}.ipynb")
    out = tmp_path / "reports"
    results = run_all(data_dir=data_dir, out_dir=out, notebooks_dir=nbs, jobs=2)
    assert [r.ok for r in results] == [True, True], [r.error for r in results]
    runs = [json.loads((out / n / "run.json").read_text()) for n in ("one", "two")]
    kernels = [json.loads((out / n / "metrics.json").read_text()) for n in ("one", "two")]
    assert runs[0]["store"] == runs[1]["store"] and runs[0]["store"]["status"] == "built"
    assert [k["metrics"]["kernel_store_status"] for k in kernels] == ["fresh", "fresh"]
    assert {k["metrics"]["n_events"] for k in kernels} == {runs[0]["store"]["n_events"]}
    # one load time for the batch: the same validation "now", the same store key
    assert runs[0]["request"]["load_time"] == runs[1]["request"]["load_time"]


def test_metrics_carry_the_paths_used_once_provenance_is_set():
    from crm_helpers.report import metrics
    from crm_helpers.store.paths import paths_used, record_path

    metrics.reset()
    record_path("funnel", "kernel")
    assert "provenance" not in metrics.current()  # no header yet: nothing to attach to
    metrics.set_provenance({"title": "t"})
    record_path("journeys", "ibis")
    assert metrics.current()["provenance"]["paths"] == {
        "funnel": ["kernel"],
        "journeys": ["ibis"],
    }
    metrics.reset()
    assert paths_used() == {} and "provenance" not in metrics.current()


def test_a_store_changed_during_the_run_is_said(tmp_path, data_dir):
    from crm_helpers.data import load
    from crm_helpers.report.run import _store_after
    from crm_helpers.store import ensure_store

    p = ensure_store(load(data_dir))
    rec = p.record()
    assert _store_after(rec) == rec
    manifest = p.path / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"format_version"', '"format_version" '))
    after = _store_after(rec)
    assert after["manifest_sha256_after"] not in (None, rec["manifest_sha256"])
    assert "rebuilt during the run as <code>" in computed_on_text({}, after)
    assert _store_after(None) is None and _store_after({"status": "failed"}) == {"status": "failed"}
