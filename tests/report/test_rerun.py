"""``crm rerun``: a report re-runs from its record (crm_helpers.report.rerun).

Every notebook in notebooks/ is run on the 5,000-user world and re-run from its folder: the
rerun's ``metrics.json`` must be byte-identical and the recorded report untouched. The
refusals (another data fingerprint, another lock hash), ``--force`` and the comparison are
checked on a tiny events-only data set with the data overview (the cheapest notebook).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from crm_helpers import config
from crm_helpers.cli import main
from crm_helpers.report import rerun as rr
from crm_helpers.report.run import run_notebook
from tests.shared_runs import WITH_EXPORT, default_report

NOTEBOOKS = sorted(p.stem for p in config.NOTEBOOKS_DIR.glob("*.ipynb"))


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_notebook_reruns_to_identical_metrics(name, small_world, tmp_path, tmp_path_factory):
    # the notebook's default report, run once a session (tests/shared_runs.py: the run the
    # notebook, browser and analyst tests read), re-run from a copy of its folder: the shared
    # one is only read
    res = default_report(tmp_path_factory, name, small_world)
    folder = tmp_path / "reports" / name
    shutil.copytree(res.out_dir, folder)
    recorded = _files(folder)
    assert json.loads(recorded["run.json"])["request"]["notebook"] == name

    out = rr.rerun(folder)

    assert out.status == "ok", out.error
    assert out.out_dir.parent.parent == folder  # REPORT_DIR/rerun-<time>/<name>/
    assert out.out_dir.parent.name.startswith("rerun-")
    metrics = (out.out_dir / "metrics.json").read_bytes()
    differing = out.differing_keys
    if name in WITH_EXPORT:
        # the rerun writes the audience to <rerun>/exports, never over the published one
        # (crm_helpers.report.rerun): compared as the recorded folder, so the export paths
        # do not differ; the bytes are the recorded ones once that folder is read back
        was, now = str(res.parameters["export_dir"]), str(out.out_dir.parent / "exports")
        assert was != now and any(Path(now).iterdir())
        assert metrics != recorded["metrics.json"]  # the paths did move
        metrics = metrics.replace(json.dumps(now)[1:-1].encode(), json.dumps(was)[1:-1].encode())
    assert differing == ()
    if out.ignored_keys:  # only when the checkout was committed to between the two runs
        assert all(k.startswith("provenance.git.") for k in out.ignored_keys), out.ignored_keys
    else:
        assert metrics == recorded["metrics.json"]
    assert _files(folder) == recorded  # the recorded report is never written


# --- refusals, --force and the comparison on a tiny data set -----------------------------


def _tiny(d: Path, n: int = 40) -> Path:
    d.mkdir(parents=True)
    rows = ["user_id,event,ts"] + [
        f"u{i % 9},{('pv', 'cart', 'buy')[i % 3]},2024-03-{1 + i % 28:02d} 10:{i % 60:02d}:00"
        for i in range(n)
    ]
    (d / "events.csv").write_text("\n".join(rows) + "\n")
    return d


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("rerun_tiny")
    data = _tiny(base / "data")
    res = run_notebook("data_overview", data_dir=data, out_dir=base / "reports", update_index=False)
    assert res.ok, res.error
    return Path(res.out_dir)


@pytest.fixture(scope="module")
def other_data(tmp_path_factory) -> Path:
    """The tiny data with one event more: another fingerprint."""
    return _tiny(tmp_path_factory.mktemp("rerun_other") / "data", n=41)


def test_cli_says_identical(tiny_report, tmp_path, capsys):
    assert main(["rerun", str(tiny_report), "--out", str(tmp_path / "re")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("identical")
    rerun_metrics = tmp_path / "re" / "data_overview" / "metrics.json"
    assert rerun_metrics.read_bytes() == (tiny_report / "metrics.json").read_bytes()


def test_other_data_is_refused(tiny_report, other_data, capsys):
    before = _files(tiny_report)
    code = main(["rerun", str(tiny_report), "--data", str(other_data)])
    err = capsys.readouterr().err
    assert code == 2
    recorded = json.loads(before["run.json"])["fingerprint"]["sha256"]
    assert f"data fingerprint differs: recorded {recorded}, now " in err
    assert "--force" in err
    assert not [p for p in tiny_report.iterdir() if p.name.startswith("rerun-")]
    assert _files(tiny_report) == before


def test_force_runs_and_names_what_differs(tiny_report, other_data, tmp_path, capsys):
    out_dir = tmp_path / "forced"
    code = main(
        ["rerun", str(tiny_report), "--data", str(other_data), "--force", "--out", str(out_dir)]
    )
    cap = capsys.readouterr()
    assert code == 1  # 41 events, not 40: the metrics differ
    assert "running anyway (--force): data fingerprint differs" in cap.err
    assert cap.out.startswith("differs:")
    listed = [line.strip() for line in cap.out.splitlines()[1:]]
    assert "metrics.rows.events" in listed
    assert "provenance.data.fingerprint.sha256" in listed
    assert not any(k.startswith("provenance.git") for k in listed)  # run-specific
    got = json.loads((out_dir / "data_overview" / "metrics.json").read_text())
    assert got["metrics"]["rows.events"] == 41


def _copy_with(report: Path, dest: Path, **fields) -> Path:
    shutil.copytree(report, dest, ignore=shutil.ignore_patterns("rerun-*", ".crm-run.lock"))
    run = json.loads((dest / "run.json").read_text())
    run.update(fields)
    (dest / "run.json").write_text(json.dumps(run))
    return dest


def test_other_lock_is_refused(tiny_report, tmp_path, capsys, monkeypatch):
    folder = _copy_with(tiny_report, tmp_path / "data_overview", lock={"sha256": "aaaa1111"})
    monkeypatch.setattr(rr, "current_lock_hash", lambda: "bbbb2222")
    assert main(["rerun", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "lock hash differs: recorded aaaa1111, now bbbb2222" in err


def test_failed_record_and_missing_record_are_refused(tiny_report, tmp_path, capsys):
    folder = _copy_with(tiny_report, tmp_path / "failed", status="failed", error="boom")
    assert main(["rerun", str(folder)]) == 2
    assert "records a failed run (boom)" in capsys.readouterr().err
    assert main(["rerun", str(tmp_path)]) == 2
    assert "has no run.json: not a report folder" in capsys.readouterr().err


def test_a_non_empty_out_is_refused(tiny_report, tmp_path, capsys):
    (tmp_path / "x").write_text("keep me")
    assert main(["rerun", str(tiny_report), "--out", str(tmp_path)]) == 2
    assert "is not empty" in capsys.readouterr().err
    assert (tmp_path / "x").read_text() == "keep me"


# --- the checks and the comparison, without running -----------------------------------------


def _record(**kw) -> rr.Record:
    base = dict(
        report_dir=Path("/r/x"),
        notebook="x",
        notebook_path=None,
        run=None,
        parameters={},
        data_dir="/d",
        engine="duckdb",
        schema_file=None,
        fingerprint="f1",
        lock_hash=None,
        commit="c1",
        versions={"pandas": "3.0"},
    )
    return rr.Record(**{**base, **kw})


def _check(record: rr.Record, **now) -> list[rr.Difference]:
    base = dict(fingerprint="f1", lock_hash=None, git={"commit": "c1", "dirty": False}, versions={})
    base["versions"] = {"pandas": "3.0"}
    return rr.check(record, **{**base, **now})


def test_check_refuses_data_and_lock_and_warns_about_the_rest():
    same = _check(_record(lock_hash="L"), lock_hash="L")
    assert same == []
    unknown = _check(_record())  # no lock hash on either side: unknown, a warning
    assert [(d.what, d.refuses) for d in unknown] == [("lock hash", False)]
    assert "unknown" in unknown[0].line()
    diffs = _check(
        _record(lock_hash="L1"),
        fingerprint="f2",
        lock_hash="L2",
        git={"commit": "c2", "dirty": True},
        versions={"pandas": "3.1"},
    )
    assert [(d.what, d.refuses) for d in diffs] == [
        ("data fingerprint", True),
        ("lock hash", True),
        ("commit", False),
        ("uncommitted changes", False),
        ("pandas version", False),
    ]
    assert diffs[2].line() == "commit differs: recorded c1, now c2"


def test_lock_hash_is_read_where_present(tiny_report, tmp_path):
    # crm run records the lock (envlock.info()) at the top of run.json
    assert rr.read_record(tiny_report).lock_hash == rr.current_lock_hash() is not None
    absent = _copy_with(tiny_report, tmp_path / "none", lock=None)
    m = json.loads((absent / "metrics.json").read_text())
    m["provenance"].pop("lock", None)
    (absent / "metrics.json").write_text(json.dumps(m))
    assert rr.read_record(absent).lock_hash is None  # absent: unknown
    top = _copy_with(tiny_report, tmp_path / "a", lock={"sha256": "top"})
    assert rr.read_record(top).lock_hash == "top"
    flat = _copy_with(absent, tmp_path / "flat", lock_hash="flat")
    assert rr.read_record(flat).lock_hash == "flat"
    nested = _copy_with(absent, tmp_path / "b")
    m = json.loads((nested / "metrics.json").read_text())
    m["provenance"]["lock"] = {"sha256": "nested"}
    (nested / "metrics.json").write_text(json.dumps(m))
    assert rr.read_record(nested).lock_hash == "nested"


def test_compare_metrics_names_the_keys_and_only_leaves_out_run_specific_ones():
    a = {
        "metrics": {"n": 1, "steps": [{"users": 5}, {"users": 3}]},
        "provenance": {"git": {"commit": "c1"}, "data": {"dir": "/a", "fingerprint": "f"}},
        "summary": ["x"],
    }
    b = json.loads(json.dumps(a))
    assert rr.compare_metrics(json.dumps(a).encode(), json.dumps(b).encode()) == ([], [])
    b["metrics"]["steps"][1]["users"] = 4
    b["metrics"]["new"] = 0.5
    b["provenance"]["git"]["commit"] = "c2"
    b["provenance"]["data"]["dir"] = "/b"
    differing, ignored = rr.compare_metrics(json.dumps(a).encode(), json.dumps(b).encode())
    assert differing == ["metrics.steps[1].users", "metrics.new"]
    assert ignored == ["provenance.git.commit", "provenance.data.dir"]
    # the same values written otherwise are not the same file
    same_values = json.dumps(a, indent=1).encode()
    assert rr.compare_metrics(json.dumps(a).encode(), same_values)[0] != []


def test_a_named_run_reruns_with_its_parameters(tiny_report, tmp_path):
    data = Path(json.loads((tiny_report / "run.json").read_text())["provenance"]["data"]["dir"])
    pf = config.PARAMS_DIR / "data_overview--daily.yaml"
    res = run_notebook(
        "data_overview", params_file=pf, data_dir=data, out_dir=tmp_path, update_index=False
    )
    assert res.ok, res.error
    request = json.loads((Path(res.out_dir) / "run.json").read_text())["request"]
    assert request["run"] == "daily"
    assert request["parameters"]["freq"] == "day"  # as passed, from the params file
    assert "top_n_events" in request["parameters"] and "engine" not in request["parameters"]
    assert (
        request["load_time"]
        == json.loads((Path(res.out_dir) / "run.json").read_text())["started_at"]
    )
    out = rr.rerun(res.out_dir)
    assert out.identical and out.out_dir.name == "data_overview--daily"
    again = json.loads((out.out_dir / "run.json").read_text())
    assert again["request"]["load_time"] == request["load_time"]  # validated as of the record
    got = json.loads((out.out_dir / "metrics.json").read_text())["provenance"]["parameters"]
    assert got["freq"] == "day" and got["title"] == "Data overview (daily)"
