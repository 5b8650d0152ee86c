"""``crm run`` end to end on a small data set: outputs, metrics vs pandas, HTML, reruns,
failures that keep the last good report, named runs, run-all and the index.

One good run is executed per module and reused (notebook executions are the slow part).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from crm_helpers.cli import main
from crm_helpers.data import find_table_file, load
from crm_helpers.report.batch import run_all
from crm_helpers.report.run import discover_runs, run_notebook
from crm_helpers.schema import TABLES

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("reports")]

NAME = "data_overview"


@pytest.fixture(scope="module")
def good(small_world, tmp_path_factory):
    """One successful run of data_overview: (RunResult, reports folder)."""
    out = tmp_path_factory.mktemp("reports")
    res = run_notebook(NAME, data_dir=small_world, out_dir=out)
    assert res.ok, res.error
    return res, out


@pytest.fixture(scope="module")
def metrics(good) -> dict:
    return json.loads((Path(good[0].out_dir) / "metrics.json").read_text())


@pytest.fixture(scope="module")
def html(good) -> str:
    return (Path(good[0].out_dir) / f"{NAME}.html").read_text()


def _frames(world: Path) -> dict[str, pd.DataFrame]:
    """Every contract table of ``world`` read with pandas (file or directory of parts)."""
    out = {}
    for table in TABLES:
        path = find_table_file(world, table)
        if path is not None:
            df = pd.read_parquet(path)
            for col in df.columns:  # the contract's timestamps are naive UTC
                if isinstance(df[col].dtype, pd.DatetimeTZDtype):
                    df[col] = df[col].dt.tz_convert("UTC").dt.tz_localize(None)
            out[table] = df
    return out


def test_layout_and_run_record(good, small_world):
    res, out = good
    folder = out / NAME
    assert Path(res.out_dir) == folder
    for f in (f"{NAME}.html", f"{NAME}.ipynb", "metrics.json", "run.json"):
        assert (folder / f).is_file(), f
    assert not (folder / f"{NAME}.failed.ipynb").exists()
    assert not list(folder.glob(".*tmp*")) and not list(folder.glob(".*running*"))
    run = json.loads((folder / "run.json").read_text())
    assert run["status"] == "ok" and run["error"] is None
    assert run["parameters"]["data_dir"] == str(small_world.resolve())
    assert run["parameters"]["engine"] == "duckdb"
    assert run["parameters"]["freq"] == "week"
    assert run["duration_s"] > 0 and run["started_at"] <= run["finished_at"]
    assert set(run["versions"]) >= {"python", "pandas", "ibis", "duckdb", "plotly", "crm_helpers"}
    assert set(run["git"]) == {"commit", "dirty"}
    assert re.fullmatch(r"[0-9a-f]{16}", run["fingerprint"]["sha256"])
    # the executed notebook carries papermill's injected parameters
    nb = nbformat.read(str(folder / f"{NAME}.ipynb"), as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and str(small_world.resolve()) in injected[0].source


def test_metrics_match_independent_pandas_counts(metrics, small_world):
    frames = _frames(small_world)
    m = metrics["metrics"]
    for table, df in frames.items():
        assert m[f"rows.{table}"] == len(df), table
    ev = frames["events"]
    expected = ev["event"].value_counts()
    got = {r["event"]: r["count"] for r in metrics["tables"]["event_counts"]}
    assert got == expected.to_dict()
    users_per_event = ev.groupby("event")["user_id"].nunique().to_dict()
    assert {r["event"]: r["users"] for r in metrics["tables"]["event_counts"]} == users_per_event
    assert m["n_event_types"] == ev["event"].nunique()
    assert pd.Timestamp(m["events.first"]) == ev["ts"].min()
    assert pd.Timestamp(m["events.last"]) == ev["ts"].max()
    weeks = ev["ts"].dt.to_period("W-SUN").nunique()
    assert m["events.periods"] == weeks
    # users by attribute: every attribute's counts equal pandas value_counts (nulls labelled)
    users = frames["users"]
    assert m["user_attributes"], "expected at least one user attribute"
    for attr in m["user_attributes"]:
        col = users[attr]
        if pd.api.types.is_bool_dtype(col):  # engines spell booleans "true"/"false"
            col = col.map({True: "true", False: "false"})
        want = col.astype("string").fillna("(missing)").value_counts().to_dict()
        rows = metrics["tables"][f"users_by.{attr}"]
        assert {r["value"]: r["users"] for r in rows} == want
    quality = load(small_world).quality
    assert m["n_quality_warnings"] == len(quality.warnings)
    assert m["n_quality_errors"] == 0
    assert len(metrics["summary"]) >= 3
    assert f"{len(frames['users']):,} users" in metrics["summary"][0]
    prov = metrics["provenance"]
    assert prov["data"]["fingerprint"]["rows"] == {t: len(df) for t, df in frames.items()}


def test_html_has_no_code_and_opens_with_title_summary_provenance(html, good, metrics):
    res, _ = good
    body = html.split("<body", 1)[1]
    # no code cell inputs or prompts in the page (the stylesheet may still name the classes)
    assert not re.search(r'class="[^"]*(jp-InputArea|jp-InputPrompt|input_prompt)', body)
    assert "metrics.record(" not in body and "from crm_helpers import" not in body
    # offline: plotly.js embedded exactly once, nothing fetched from the network
    assert not re.search(r"<script[^>]*src=[\"']?(https?:)?//", html)
    assert html.count("window.Plotly = Plotly") == 1
    n_divs = html.count('class="plotly-graph-div"')
    assert n_divs == res.n_figures == 3 + len(metrics["metrics"]["user_attributes"])
    i_title = body.index("crm-title")
    i_summary = body.index('id="Summary"')
    i_params = body.index(">Parameters</caption>")
    i_data = body.index(">Data</caption>")
    i_chart = body.index('class="plotly-graph-div"')
    assert i_title < i_summary < i_params < i_data < i_chart
    for line in metrics["summary"]:
        assert line.split(":")[0].replace("&", "&amp;") in body
    fp = metrics["provenance"]["data"]["fingerprint"]["sha256"]
    assert fp in body
    assert metrics["provenance"]["git"]["commit"][:12] in body
    assert "<title>Data overview</title>" in html


def test_rerun_with_same_parameters_gives_identical_metrics(good, metrics, small_world, tmp_path):
    """Same parameters and data, run again as a named run through the CLI (-f)."""
    _, out = good
    params = tmp_path / f"{NAME}--again.yaml"
    params.write_text("freq: week\ntop_n_events: 10\n")
    code = main(["run", NAME, "-f", str(params), "--data", str(small_world), "--out", str(out)])
    assert code == 0
    again_dir = out / f"{NAME}--again"
    again = json.loads((again_dir / "metrics.json").read_text())
    # the commit may move on between runs in a shared checkout; everything else is equal
    for m in (again, metrics):
        m["provenance"].pop("git")
    assert again == metrics
    run = json.loads((again_dir / "run.json").read_text())
    assert run["run"] == "again" and run["status"] == "ok"
    index = (out / "index.html").read_text()
    assert f"{NAME}--again/{NAME}.html" in index


def test_failed_run_keeps_last_good_report(good, tmp_path, capsys):
    res, out = good
    reports = tmp_path / "reports"
    shutil.copytree(Path(res.out_dir), reports / NAME)
    folder = reports / NAME
    before = {f: (folder / f).read_bytes() for f in (f"{NAME}.html", "metrics.json")}
    missing = tmp_path / "no_such_data"
    code = main(["run", NAME, "--data", str(missing), "--out", str(reports)])
    assert code != 0
    err = capsys.readouterr().err
    assert "FAILED" in err and "does not exist" in err and "last good report" in err
    for f, content in before.items():
        assert (folder / f).read_bytes() == content, f"{f} was replaced by a failed run"
    failed = folder / f"{NAME}.failed.ipynb"
    assert failed.is_file()
    nb = nbformat.read(str(failed), as_version=4)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors and errors[0]["ename"] == "DataContractError"
    run = json.loads((folder / "run.json").read_text())
    assert run["status"] == "failed" and "DataContractError" in run["error"]
    assert run["last_success"] is not None
    assert not list(folder.glob(".*tmp*")) and not list(folder.glob(".*running*"))
    index = (reports / "index.html").read_text()
    row = index[index.index(f"{NAME}/{NAME}.html") :].split("</article>")[0]
    assert ">failed<" in row


def _tiny_notebook(path: Path, body: str, params: str = 'data_dir: str = ""\nx: int = 1') -> None:
    cells = [nbformat.v4.new_code_cell(params), nbformat.v4.new_code_cell(body)]
    cells[0].metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, str(path))


@pytest.mark.parametrize("jobs", [1, 2])
def test_run_all_continues_past_failures_and_indexes(tmp_path, jobs):
    """Serial (in process) and parallel (worker processes) runs give the same reports."""
    nbs = tmp_path / "notebooks"
    (nbs / "params").mkdir(parents=True)
    _tiny_notebook(
        nbs / "alpha.ipynb",
        "from crm_helpers.report import metrics\nmetrics.record('x', x * 2)\nprint(x)",
    )
    _tiny_notebook(nbs / "broken.ipynb", "raise RuntimeError('boom ' + str(x))")
    (nbs / "params" / "alpha--three.yaml").write_text("x: 3\n")
    (nbs / "params" / "other.yaml").write_text(
        "notebook: alpha\nname: seven\nparameters:\n  x: 7\n"
    )
    (nbs / "params" / "not_a_run.yaml").write_text("x: 5\n")
    runs = discover_runs(nbs)
    assert [(nb.name, pf.name if pf else None) for nb, pf in runs] == [
        ("alpha.ipynb", None),
        ("broken.ipynb", None),
        ("alpha.ipynb", "alpha--three.yaml"),
        ("alpha.ipynb", "other.yaml"),
    ]
    out = tmp_path / "reports"
    results = run_all(notebooks_dir=nbs, out_dir=out, jobs=jobs)
    status = {Path(r.out_dir).name: r.status for r in results}
    assert status == {"alpha": "ok", "broken": "failed", "alpha--three": "ok", "alpha--seven": "ok"}
    broken = next(r for r in results if r.name == "broken")
    assert "RuntimeError: boom 1" in broken.error
    for folder, x in (("alpha", 1), ("alpha--three", 3), ("alpha--seven", 7)):
        m = json.loads((out / folder / "metrics.json").read_text())
        assert m["metrics"]["x"] == 2 * x
    index = (out / "index.html").read_text()
    assert index.count("<article") == 4
    assert "boom 1" in index and index.count(">ok<") == 3 and index.count(">failed<") == 1


@pytest.mark.spark
def test_spark_engine_gives_the_same_report_numbers(
    good, metrics, small_world, tmp_path, monkeypatch
):
    """``--engine spark``: the same notebook on Spark records exactly the DuckDB numbers."""
    pytest.importorskip("pyspark")
    monkeypatch.setenv("CRM_SPARK_PARTITIONS", "2")  # small data: fewer, cheaper tasks
    code = main(
        ["run", NAME, "--engine", "spark", "--data", str(small_world), "--out", str(tmp_path)]
    )
    assert code == 0
    spark = json.loads((tmp_path / NAME / "metrics.json").read_text())
    assert spark["provenance"]["data"]["engine"] == "pyspark"
    assert spark["provenance"]["parameters"]["engine"] == "spark"
    for key in ("metrics", "tables", "summary"):
        assert spark[key] == metrics[key], key
    assert (
        spark["provenance"]["data"]["fingerprint"] == metrics["provenance"]["data"]["fingerprint"]
    )
