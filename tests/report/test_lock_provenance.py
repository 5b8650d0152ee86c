"""A report records the dependency lock it was made under (provenance, ``run.json``), and the
index names the reports made under another lock than the latest one."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import nbformat
import pytest

from crm_helpers import envlock
from crm_helpers.report import provenance
from crm_helpers.report.index import collect_runs, lock_note, render_index

SHA_A, SHA_B, SHA_C = "a" * 64, "b" * 64, "c" * 64


def test_provenance_records_the_lock_and_the_header_shows_it():
    prov = provenance.collect({"n": 1}, None, "T")
    lock = prov["lock"]
    assert lock["sha256"] == envlock.lock_sha256() and lock["file"] == "requirements/lock.txt"
    assert lock["matches_environment"] is True and lock["n_differences"] == 0
    html = provenance.to_html(prov)
    assert f"Lock: <code>{lock['sha256'][:12]}</code>. " in html
    assert "differed" not in html


def test_a_lock_the_environment_does_not_match_is_said_so(tmp_path):
    lock = tmp_path / "lock.txt"
    pytest_version = metadata.version("pytest")
    lock.write_text(f"pytest=={pytest_version}\nsix==0.0.1\nno-such-package-here==2.0\n")
    info = envlock.info(lock)
    assert info["sha256"] == envlock.lock_sha256(lock) and info["matches_environment"] is False
    assert info["n_differences"] == 2
    assert info["differences"][1] == "no-such-package-here: locked 2.0, installed none"
    html = provenance.to_html({"title": "T", "lock": info})
    assert "differed from it in 2 package(s): six: locked 0.0.1" in html
    assert envlock.info(tmp_path / "absent.txt") is None  # e.g. an installed package
    assert "Lock:" not in provenance.to_html({"title": "T", "lock": None})


@pytest.mark.slow
def test_run_json_and_metrics_record_the_lock(tmp_path):
    from crm_helpers.report.run import run_notebook

    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("n: int = 1")
    params.metadata["tags"] = ["parameters"]
    body = "from crm_helpers.report import provenance\nprovenance.header({'n': n}, None, 'Tiny')"
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    nbformat.write(nb, str(tmp_path / "tiny.ipynb"))
    res = run_notebook(tmp_path / "tiny.ipynb", out_dir=tmp_path / "r")
    assert res.ok, res.error
    run = json.loads((tmp_path / "r" / "tiny" / "run.json").read_text())
    metrics = json.loads((tmp_path / "r" / "tiny" / "metrics.json").read_text())
    assert run["lock"]["sha256"] == envlock.lock_sha256()
    assert run["lock"] == metrics["provenance"]["lock"] == run["provenance"]["lock"]
    assert run["lock"]["matches_environment"] is True


def _report(root: Path, folder: str, lock: dict | None, when: str, status: str = "ok") -> None:
    d = root / folder
    d.mkdir()
    name = folder.split("--")[0]
    (d / f"{name}.html").write_text("<html></html>")
    rec = {"name": name, "status": status, "finished_at": when, "last_success": when}
    (d / "run.json").write_text(json.dumps(rec))
    prov = {"title": folder} | ({"lock": lock} if lock is not None else {})
    (d / "metrics.json").write_text(json.dumps({"summary": ["x"], "provenance": prov}))


def _lock(sha: str, matches: bool = True) -> dict:
    return {"file": envlock.LOCK_FILE, "sha256": sha, "matches_environment": matches}


def test_the_index_names_reports_made_under_another_lock(tmp_path):
    _report(tmp_path, "funnel_dropoff", _lock(SHA_A), "2026-03-02T09:00:00+00:00")  # latest
    _report(tmp_path, "journey_mapping", _lock(SHA_B), "2026-01-05T09:00:00+00:00")
    _report(tmp_path, "funnel_dropoff--q1", _lock(SHA_B), "2026-01-06T09:00:00+00:00")
    _report(tmp_path, "segment_profiling", None, "2025-12-01T09:00:00+00:00")
    _report(tmp_path, "data_overview", _lock(SHA_A, matches=False), "2026-03-01T09:00:00+00:00")
    _report(tmp_path, "experiment_readout", _lock(SHA_A), "2026-02-01T09:00:00+00:00")
    runs = collect_runs(tmp_path)
    note = lock_note(runs)
    assert note == (
        f"Made under another dependency lock than the latest report (lock {SHA_A[:12]}): "
        f"funnel_dropoff--q1, journey_mapping (lock {SHA_B[:12]}); "
        "segment_profiling (no lock recorded). "
        "Made in an environment that differed from its lock: data_overview."
    )
    html = render_index(runs)
    assert f"<p class='meta lock-note'>{note}</p>" in html
    # the latest report decides: once journey_mapping is re-made under lock C, it is the
    # reference and every other report is named
    (tmp_path / "journey_mapping" / "metrics.json").write_text(
        json.dumps({"provenance": {"lock": _lock(SHA_C)}})
    )
    rec = json.loads((tmp_path / "journey_mapping" / "run.json").read_text())
    rec["last_success"] = "2026-04-01T09:00:00+00:00"
    (tmp_path / "journey_mapping" / "run.json").write_text(json.dumps(rec))
    note = lock_note(collect_runs(tmp_path))
    assert f"(lock {SHA_C[:12]}): " in note and "journey_mapping" not in note.split(":")[1]
    assert f"data_overview, experiment_readout, funnel_dropoff (lock {SHA_A[:12]})" in note


def test_no_note_when_every_report_shares_one_lock(tmp_path):
    _report(tmp_path, "a", _lock(SHA_A), "2026-01-01T00:00:00+00:00")
    _report(tmp_path, "b--r", _lock(SHA_A), "2026-01-02T00:00:00+00:00", status="failed")
    assert lock_note(collect_runs(tmp_path)) == ""
    assert "lock-note" not in render_index(collect_runs(tmp_path))
    old = tmp_path / "old"
    old.mkdir()
    _report(old, "a", None, "2026-01-01T00:00:00+00:00")  # made before locks were recorded
    assert lock_note(collect_runs(old)) == ""
