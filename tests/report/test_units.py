"""Fast unit tests of the report pieces: metrics, parameters cell, params files, renderer,
provenance and index (no kernel)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from crm_helpers.report import metrics, provenance
from crm_helpers.report.index import collect_runs, render_index, write_index
from crm_helpers.report.render import external_scripts, prepare
from crm_helpers.report.run import (
    ParametersError,
    coerce_value,
    parameters_cell,
    read_params_file,
    run_notebook,
)


@pytest.fixture(autouse=True)
def _fresh_metrics(monkeypatch):
    monkeypatch.delenv(metrics.ENV_VAR, raising=False)
    metrics.reset()
    yield
    metrics.reset()


# --- metrics --------------------------------------------------------------------------


def test_to_jsonable_converts_numpy_pandas_and_non_finite():
    value = {
        "i": np.int64(3),
        "f": np.float32(0.5),
        "nan": float("nan"),
        "inf": np.inf,
        "b": np.bool_(True),
        "ts": pd.Timestamp("2024-01-02 03:04:05"),
        "nat": pd.NaT,
        "td": pd.Timedelta(minutes=2),
        "arr": np.array([1, 2]),
        "s": pd.Series([1, 2], index=["a", "b"]),
        1: (np.int32(1), None),
    }
    out = metrics.to_jsonable(value)
    assert out == {
        "i": 3,
        "f": 0.5,
        "nan": None,
        "inf": None,
        "b": True,
        "ts": "2024-01-02T03:04:05",
        "nat": None,
        "td": 120.0,
        "arr": [1, 2],
        "s": {"a": 1, "b": 2},
        "1": [1, None],
    }
    json.dumps(out, allow_nan=False)  # strict JSON
    assert type(out["i"]) is int and type(out["f"]) is float


def test_record_in_memory_without_env_and_to_file_with_env(tmp_path, monkeypatch):
    metrics.record("a", np.int64(1))
    assert metrics.current()["metrics"] == {"a": 1}
    assert not list(tmp_path.iterdir())
    path = tmp_path / "sub" / "metrics.json"
    monkeypatch.setenv(metrics.ENV_VAR, str(path))
    df = pd.DataFrame({"x": [1, 2], "when": pd.to_datetime(["2024-01-01", None])})
    assert metrics.record_table("t", df) is df
    metrics.record("b", 2.5)
    metrics.summary("one line")
    on_disk = json.loads(path.read_text())
    assert on_disk["metrics"] == {"a": 1, "b": 2.5}
    assert on_disk["tables"]["t"] == [
        {"x": 1, "when": "2024-01-01T00:00:00"},
        {"x": 2, "when": None},
    ]
    assert on_disk["summary"] == ["one line"]
    with pytest.raises(TypeError):
        metrics.record_table("bad", [1, 2])


# --- parameters -------------------------------------------------------------------------


def _nb(params_source: str, tag: bool = True):
    cell = nbformat.v4.new_code_cell(params_source)
    if tag:
        cell.metadata["tags"] = ["parameters"]
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# t"), cell])


def test_parameters_cell_accepts_literals():
    src = '"""Doc."""\n# comment\ndata_dir: str = ""\nn = 3\nxs: list = [1, -2.5, "a"]\nd = {"k": (1, None)}\nflag: bool = True'
    idx, defaults = parameters_cell(_nb(src))
    assert idx == 1
    assert defaults == {
        "data_dir": "",
        "n": 3,
        "xs": [1, -2.5, "a"],
        "d": {"k": (1, None)},
        "flag": True,
    }


@pytest.mark.parametrize(
    "src",
    [
        "import os\ndata_dir = ''",
        "data_dir = os.getcwd()",
        "n = 1 + 1",
        "n = len('abc')",
        "a = b = 1",
        "a, b = 1, 2",
        "x.y = 1",
        "print('hi')",
        "n: int",
        "data_dir = f'{1}'",
    ],
)
def test_parameters_cell_refuses_non_literals(src):
    with pytest.raises(ParametersError, match="parameters cell"):
        parameters_cell(_nb(src))


def test_parameters_cell_missing_or_broken():
    with pytest.raises(ParametersError, match="no code cell tagged"):
        parameters_cell(_nb("x = 1", tag=False))
    with pytest.raises(ParametersError, match="not valid Python"):
        parameters_cell(_nb("x = ("))


def test_run_refuses_non_literal_parameters_before_executing(tmp_path):
    nb_path = tmp_path / "bad.ipynb"
    nbformat.write(_nb("import os\ndata_dir = os.environ.get('X', '')"), str(nb_path))
    out = tmp_path / "reports"
    with pytest.raises(ParametersError, match="not a literal assignment"):
        run_notebook(nb_path, out_dir=out)
    assert not out.exists()  # nothing executed, nothing written


def test_cli_refuses_non_literal_parameters(tmp_path, capsys):
    from crm_helpers.cli import main

    nb_path = tmp_path / "bad.ipynb"
    nbformat.write(_nb("n = 2 * 3"), str(nb_path))
    assert main(["run", str(nb_path), "--out", str(tmp_path / "r")]) == 2
    assert "not a literal" in capsys.readouterr().err


def test_unknown_parameter_is_refused(tmp_path):
    nb_path = tmp_path / "nb.ipynb"
    nbformat.write(_nb("n: int = 1"), str(nb_path))
    with pytest.raises(ParametersError, match="unknown parameter 'm'"):
        run_notebook(nb_path, cli_parameters={"m": "2"}, out_dir=tmp_path / "r")


@pytest.mark.parametrize(
    ("raw", "default", "expected"),
    [
        ("7", 1, 7),
        ("7", "a", "7"),
        ("0.5", 1.0, 0.5),
        ("2", 1.0, 2.0),
        ("true", False, True),
        ("[1, 2]", [], [1, 2]),
        ("day", "week", "day"),
    ],
)
def test_coerce_value(raw, default, expected):
    got = coerce_value(raw, default)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize(("raw", "default"), [("x", 1), ("1.5", 1), ("yes please", True)])
def test_coerce_value_refuses_wrong_types(raw, default):
    with pytest.raises(ParametersError):
        coerce_value(raw, default)


def test_read_params_file_forms(tmp_path):
    flat = tmp_path / "data_overview--daily.yaml"
    flat.write_text("freq: day\n")
    pf = read_params_file(flat)
    assert (pf.notebook, pf.run, pf.parameters) == ("data_overview", "daily", {"freq": "day"})
    nested = tmp_path / "whatever.yaml"
    nested.write_text("notebook: nb\nname: r1\nparameters:\n  a: 1\n")
    pf = read_params_file(nested)
    assert (pf.notebook, pf.run, pf.parameters) == ("nb", "r1", {"a": 1})
    plain = tmp_path / "plain.yaml"
    plain.write_text("a: 2\n")
    assert read_params_file(plain).notebook is None
    bad = tmp_path / "bad.yaml"
    bad.write_text("parameters: {a: 1}\nextra: 2\n")
    with pytest.raises(ParametersError, match="unknown key"):
        read_params_file(bad)


def test_shipped_params_files_name_existing_notebooks_and_parameters():
    from crm_helpers import config

    for path in sorted(config.PARAMS_DIR.glob("data_overview*.yaml")):
        pf = read_params_file(path)
        nb = nbformat.read(str(config.NOTEBOOKS_DIR / f"{pf.notebook}.ipynb"), as_version=4)
        _, defaults = parameters_cell(nb)
        assert set(pf.parameters) <= set(defaults), path


def test_data_overview_notebook_is_stored_without_outputs_and_tagged():
    from crm_helpers import config

    nb = nbformat.read(str(config.NOTEBOOKS_DIR / "data_overview.ipynb"), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    _, defaults = parameters_cell(nb)
    assert defaults == {
        "data_dir": "",
        "engine": "duckdb",
        "title": "Data overview",
        "freq": "week",
        "top_n_events": 10,
        "currency": "",
    }
    tags = [t for c in nb.cells for t in c.metadata.get("tags", [])]
    assert tags.count("summary") == 1 and tags.count("parameters") == 1


# --- renderer ------------------------------------------------------------------------------


def _out_html(html: str):
    return nbformat.v4.new_output("display_data", data={"text/html": html, "text/plain": "x"})


def test_prepare_moves_summary_between_title_and_provenance_and_converts_figures():
    import plotly.graph_objects as go

    header = nbformat.v4.new_code_cell("header")
    prov = provenance.to_html({"title": "T", "parameters": {"a": 1}, "versions": {}, "git": {}})
    header.outputs = [_out_html(prov)]
    fig_cell = nbformat.v4.new_code_cell("fig")
    fig = go.Figure(go.Bar(x=[1], y=[2]))
    fig_cell.outputs = [
        nbformat.v4.new_output(
            "display_data", data={"text/html": "<script>window.PlotlyConfig = {}</script>"}
        ),
        nbformat.v4.new_output(
            "display_data",
            data={
                "application/vnd.plotly.v1+json": json.loads(fig.to_json()),
                "text/html": "<div>cdn</div>",
            },
        ),
        nbformat.v4.new_output("stream", name="stderr", text="a warning"),
        nbformat.v4.new_output("stream", name="stdout", text="kept"),
    ]
    summary = nbformat.v4.new_code_cell("summary")
    summary.metadata["tags"] = ["summary"]
    summary.outputs = [_out_html("<h2>Summary</h2>")]
    params = nbformat.v4.new_code_cell("x = 1")
    params.metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(cells=[params, header, fig_cell, summary])
    report, n_fig = prepare(nb)
    assert n_fig == 1
    htmls = [
        "".join(o["data"].get("text/html", ""))
        for c in report.cells
        for o in c.get("outputs", [])
        if "data" in o
    ]
    i_title = next(i for i, h in enumerate(htmls) if "crm-title" in h)
    i_sum = next(i for i, h in enumerate(htmls) if "<h2>Summary</h2>" in h)
    i_prov = next(i for i, h in enumerate(htmls) if "Parameters</caption>" in h)
    i_fig = next(i for i, h in enumerate(htmls) if "plotly-graph-div" in h)
    assert i_title < i_sum < i_prov < i_fig
    assert "Parameters" not in htmls[i_title] and "crm-title" not in htmls[i_prov]
    assert not any("window.PlotlyConfig" in h or "cdn" in h for h in htmls)
    assert not external_scripts("".join(htmls))
    streams = [
        o for c in report.cells for o in c.get("outputs", []) if o["output_type"] == "stream"
    ]
    assert [s["name"] for s in streams] == ["stdout"]
    ids = [c.get("id") for c in report.cells]
    assert len(ids) == len(set(ids))
    assert (
        len(nb.cells) == 4 and nb.cells[1].outputs[0]["data"]["text/html"] == prov
    )  # input untouched


def test_prepare_without_header_puts_summary_after_markdown_title():
    title = nbformat.v4.new_markdown_cell("# Title")
    body = nbformat.v4.new_markdown_cell("body")
    summary = nbformat.v4.new_markdown_cell("summary")
    summary.metadata["tags"] = ["summary"]
    nb = nbformat.v4.new_notebook(cells=[title, body, summary])
    report, _ = prepare(nb)
    assert [c.source for c in report.cells] == ["# Title", "summary", "body"]


def test_external_scripts_detects_cdn_tags_only():
    assert external_scripts('<script src="https://cdn.x/plotly.js"></script>')
    assert external_scripts("<script type='text/javascript' src='//cdn.x/a.js'></script>")
    assert not external_scripts("<script>var u = 'https://example.com';</script>")
    assert not external_scripts('<a href="https://x">x</a>')


# --- provenance -----------------------------------------------------------------------------


def test_versions_and_git():
    v = provenance.versions()
    assert {"python", "pandas", "ibis", "duckdb", "plotly", "crm_helpers"} <= set(v)
    import pandas

    assert v["pandas"] == pandas.__version__
    g = provenance.git_info()
    assert set(g) == {"commit", "dirty"}
    assert g["commit"] is None or len(g["commit"]) == 40
    assert provenance.git_info("/") == {"commit": None, "dirty": None}


def test_header_records_provenance(tmp_path, monkeypatch):
    class FakeData:
        data_dir = Path("/d")
        engine = "duckdb"

        def fingerprint(self):
            return {"sha256": "abc123", "rows": {"users": 5, "events": 7}}

    path = tmp_path / "m.json"
    monkeypatch.setenv(metrics.ENV_VAR, str(path))
    obj = provenance.header({"freq": "week"}, FakeData(), "My title")
    html = obj.data
    assert "<h1 class='crm-title'>My title</h1>" in html and provenance.PROVENANCE_MARKER in html
    assert "abc123" in html and "rows: events" in html and "freq" in html
    rec = json.loads(path.read_text())["provenance"]
    assert rec["data"]["fingerprint"]["rows"] == {"users": 5, "events": 7}
    assert rec["parameters"] == {"freq": "week"} and rec["title"] == "My title"


# --- index ----------------------------------------------------------------------------------


def test_index_lists_runs_with_status_and_links(tmp_path):
    ok = tmp_path / "a"
    ok.mkdir()
    (ok / "a.html").write_text("<html></html>")
    (ok / "run.json").write_text(
        json.dumps(
            {
                "name": "a",
                "status": "ok",
                "duration_s": 1.25,
                "finished_at": "2024-01-01T09:30:00+00:00",
                "parameters": {"freq": "day"},
            }
        )
    )
    bad = tmp_path / "b--r"
    bad.mkdir()
    (bad / "run.json").write_text(
        json.dumps(
            {
                "name": "b",
                "status": "failed",
                "error": "boom <x>",
                "duration_s": 0.5,
                "parameters": {},
            }
        )
    )
    runs = collect_runs(tmp_path)
    assert [r["_folder"] for r in runs] == ["a", "b--r"]
    assert runs[0]["_link"] == "a/a.html" and runs[1]["_link"] is None
    path = write_index(tmp_path)
    html = path.read_text()
    assert "href='a/a.html'" in html and "1.2 s" in html
    assert "<th>freq</th><td><code>&#x27;day&#x27;</code>" in html
    assert ">failed<" in html and "boom &lt;x&gt;" in html and "<script" not in html
    assert "2024-01-01 09:30 UTC" in html
    assert "No reports yet" in render_index([])
    assert not math.isnan(runs[0]["duration_s"])


def _report(root, folder, *, status="ok", summary=(), title=None, html_file=True, **rec):
    d = root / folder
    d.mkdir()
    name = folder.split("--")[0]
    if html_file:
        (d / f"{name}.html").write_text("<html></html>")
    params = {"title": title} if title else {}
    (d / "run.json").write_text(
        json.dumps(
            {
                "name": name,
                "status": status,
                "parameters": params,
                "finished_at": "2024-01-01T09:00:00+00:00",
                **rec,
            }
        )
    )
    if summary:
        (d / "metrics.json").write_text(json.dumps({"summary": list(summary)}))


def test_index_is_a_front_page_grouped_by_analysis(tmp_path):
    from datetime import UTC, datetime

    from crm_helpers.report import text

    evil = "<img src=x onerror=alert(1)>"
    line = text.md("**{n:,} users** reached {step}; *{e}*", n=1234, step=text.code(evil), e=evil)
    _report(tmp_path, "funnel", title="Funnel drop-off", summary=[line, "two", "three", "four"])
    _report(tmp_path, "funnel--by_device", title="By device", summary=["device line"])
    _report(tmp_path, "overview", title="Data overview", status="failed", error="Trace\nKeyError: x",
            last_success="2023-12-31T08:00:00+00:00", summary=["last good line"])  # fmt: skip
    _report(tmp_path, "overview--daily", status="failed", error="boom", html_file=False,
            summary=["never shown"])  # fmt: skip
    page = render_index(collect_runs(tmp_path), now=datetime(2024, 1, 1, 12, 0, tzinfo=UTC))
    # grouped by analysis, named runs after their base report
    assert page.index("<h2>Funnel drop-off</h2>") < page.index("<h2>Data overview</h2>")  # by name
    funnel = page[page.index("<h2>Funnel drop-off</h2>") : page.index("<h2>Data overview")]
    assert funnel.index("funnel/funnel.html") < funnel.index("funnel--by_device/funnel.html")
    # the first three summary lines as HTML; the data's markup stays text
    assert "<strong>1,234 users</strong>" in page and "<code>&lt;img src=x" in page
    assert "<img" not in page and "onerror=alert(1)&gt;</em>" in page
    assert "three" in page and "four" not in page
    assert "3 h ago" in page and "2024-01-01 09:00 UTC" in page
    # a failed run: its error, its last good report and that report's findings
    assert "KeyError: x" in page and "The last good report</a> is from 2023-12-31 08:00 UTC" in page
    assert "last good line" in page and "never shown" not in page
    assert "2 failed" in page and page.count("<details><summary>Parameters") == 4
    assert "<script" not in page


def test_summary_html_allows_only_markdown_and_code():
    from crm_helpers.report.index import age_text, summary_html

    assert summary_html("a <b>x</b> [l](javascript:y) ![i](http://z)") == (
        "a &lt;b&gt;x&lt;/b&gt; [l](javascript:y) ![i](http://z)"
    )
    assert (
        summary_html("**3** <code>&lt;x&gt;</code>") == "<strong>3</strong> <code>&lt;x&gt;</code>"
    )
    from datetime import UTC, datetime, timedelta

    now = datetime(2024, 1, 10, tzinfo=UTC)
    assert [age_text(now - timedelta(seconds=s), now) for s in (5, 600, 7200, 3 * 86400)] == [
        "just now", "10 min ago", "2 h ago", "3 days ago"]  # fmt: skip


def test_ensure_kernel_runs_this_interpreter():
    import sys

    from jupyter_client.kernelspec import KernelSpecManager

    from crm_helpers.report.run import _same_interpreter, ensure_kernel

    name = ensure_kernel()
    argv0 = KernelSpecManager().get_kernel_spec(name).argv[0]
    assert _same_interpreter(argv0)
    assert _same_interpreter(sys.executable) and _same_interpreter("python")
    assert not _same_interpreter("/usr/bin/some-other-python")


def test_render_html_is_offline_even_with_widget_state():
    from crm_helpers.report.render import render_html

    cell = nbformat.v4.new_code_cell("w")
    cell.outputs = [
        nbformat.v4.new_output(
            "display_data",
            data={
                "application/vnd.jupyter.widget-view+json": {"model_id": "abc", "version_major": 2},
                "text/plain": "IntSlider(value=3)",
            },
        )
    ]
    md = nbformat.v4.new_markdown_cell("# Title\n\nSome $x$ text.")
    nb = nbformat.v4.new_notebook(cells=[md, cell])
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    html, n_figures = render_html(nb, title="W")
    assert n_figures == 0
    assert not external_scripts(html)
    assert "<title>W</title>" in html and "Some" in html
    body = html.split("<body", 1)[1]
    assert "jp-InputArea" not in body


def test_prepare_replaces_widget_outputs_with_a_note_and_drops_widget_state():
    widget = nbformat.v4.new_output(
        "display_data",
        data={
            "application/vnd.jupyter.widget-view+json": {"model_id": "abc", "version_major": 2},
            "text/plain": "VBox(children=(...))",
        },
    )
    cell = nbformat.v4.new_code_cell("controls", outputs=[widget])
    nb = nbformat.v4.new_notebook(cells=[cell])
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    out, n_figures = prepare(nb)
    (only,) = out.cells[0].outputs
    assert set(only["data"]) == {"text/html"}
    assert "JupyterLab" in only["data"]["text/html"]
    assert "widgets" not in out.metadata and n_figures == 0
    assert "widgets" in nb.metadata  # the input notebook is not modified


def test_notebook_params_follow_the_parameters_cell(tmp_path):
    cell = nbformat.v4.new_code_cell('a: int = 1\nname = "x"  # a comment')
    cell.metadata["tags"] = ["parameters"]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), path)
    namespace = {"a": 5, "name": "injected", "other": 1}
    assert provenance.notebook_params(namespace, path) == {"a": 5, "name": "injected"}
    shipped = provenance.notebook_params(
        {"data_dir": "", "engine": "duckdb", "title": "t", "freq": "week", "top_n_events": 3,
         "currency": ""},
        "data_overview",
    )  # fmt: skip
    assert list(shipped) == ["data_dir", "engine", "title", "freq", "top_n_events", "currency"]
