"""Render an executed notebook to a self-contained, offline HTML report without code.

* code cells are hidden (``exclude_input``), only their outputs and the markdown remain;
* cells tagged ``lab-only`` (the introduction a notebook shows in JupyterLab) are left out;
* progress lines of long steps (:mod:`crm_helpers.report.progress`, outputs flagged
  ``crm_progress``) are left out: they are for the analyst waiting, not for the reader;
  so is the copy of the summary at the top of the notebook (:mod:`crm_helpers.report.answer`),
  as the summary cell itself moves there;
* cells tagged ``summary`` move to the top, right after the title (the header's ``<h1>``),
  although the notebook computes them at the end;
* plotly figures become interactive ``<div>``s; plotly.js is embedded once in the page
  head, so the report works offline (no ``<script src="https://...">``);
* a Content-Security-Policy lets only those scripts run (:mod:`crm_helpers.report.csp`).
"""

from __future__ import annotations

import copy
import datetime as _dt
import re
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from crm_helpers.report import csp
from crm_helpers.report.answer import ANSWER_META
from crm_helpers.report.progress import PROGRESS_META
from crm_helpers.report.provenance import PROVENANCE_MARKER

TEMPLATES_DIR: Path = Path(__file__).resolve().parent / "templates"
TEMPLATE_NAME = "crm_report"
PLOTLY_MIME = "application/vnd.plotly.v1+json"
SUMMARY_TAG = "summary"
TITLE_TAG = "title"
#: Cells for the notebook in JupyterLab only (the introduction before the parameters): the
#: report has its own title, summary and section texts, so they are left out of it.
LAB_ONLY_TAG = "lab-only"
FIGURE_META = "crm_figure"  # output metadata flag: this HTML is a figure render.py made
_EXTERNAL_SCRIPT = re.compile(r"<script[^>]*\ssrc\s*=\s*[\"']?(?:https?:)?//", re.IGNORECASE)


WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = (
    '<p class="crm-widget-note"><em>Interactive controls: open this notebook in JupyterLab '
    "to use them.</em></p>"
)


def _tags(cell: NotebookNode) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _html_of(output: NotebookNode) -> str | None:
    data = output.get("data") or {}
    html = data.get("text/html")
    if html is None:
        return None
    return "".join(html) if isinstance(html, list) else html


def _is_plotlyjs_loader(output: NotebookNode) -> bool:
    """The output plotly's ``notebook`` renderer emits once to inject plotly.js."""
    html = _html_of(output)
    data = output.get("data") or {}
    return (
        html is not None
        and PLOTLY_MIME not in data
        and "window.PlotlyConfig" in html
        and "plotly-graph-div" not in html
    )


def _figure_html(fig_json: dict) -> str:
    import plotly.io as pio

    return pio.to_html(
        fig_json,
        include_plotlyjs=False,
        include_mathjax=False,
        full_html=False,
        config={"displaylogo": False, "responsive": True},
        validate=False,
    )


def prepare(nb: NotebookNode) -> tuple[NotebookNode, int]:
    """The report's cell sequence, ready for the HTML exporter.

    Parameters
    ----------
    nb
        An executed notebook (not modified).

    Returns
    -------
    (NotebookNode, int)
        A copy without the ``lab-only`` cells, with summary cells after the title, plotly outputs as HTML divs, stderr and
        plotly.js-loader outputs dropped, widget outputs replaced by a note; and the number of plotly figures in it.
    """
    nb = copy.deepcopy(nb)
    nb.cells = [c for c in nb.cells if LAB_ONLY_TAG not in _tags(c)]
    nb.metadata.pop("widgets", None)
    n_figures = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        outputs = []
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                continue
            if {PROGRESS_META, ANSWER_META} & set(out.get("metadata") or {}):
                continue  # progress lines, and the summary's copy at the top (moved here)
            if out.get("output_type") in ("display_data", "execute_result"):
                if _is_plotlyjs_loader(out):
                    continue
                data = out.get("data") or {}
                if WIDGET_MIME in data:
                    # Live widgets need a kernel and the widget manager (a CDN script):
                    # a report shows a note instead, so it stays static and offline.
                    out = nbformat.v4.new_output("display_data", data={"text/html": WIDGET_NOTE})
                    outputs.append(out)
                    continue
                if PLOTLY_MIME in data:
                    out = copy.deepcopy(out)
                    out["data"] = {"text/html": _figure_html(data[PLOTLY_MIME])}
                    out.setdefault("metadata", {})[FIGURE_META] = True
                    n_figures += 1
            outputs.append(out)
        cell["outputs"] = outputs

    summary = [c for c in nb.cells if SUMMARY_TAG in _tags(c)]
    rest = [c for c in nb.cells if SUMMARY_TAG not in _tags(c)]

    # Where does the title end? 1) the header cell (its HTML carries the provenance
    # marker): split it into title / provenance; 2) a cell tagged "title"; 3) a first
    # markdown cell starting with "#"; else the very top.
    for i, cell in enumerate(rest):
        for j, out in enumerate(cell.get("outputs", [])):
            html = _html_of(out)
            if html and PROVENANCE_MARKER in html:
                head, tail = html.split(PROVENANCE_MARKER, 1)
                title_cell = copy.deepcopy(cell)
                prov_cell = copy.deepcopy(cell)
                title_out = nbformat.v4.new_output("display_data", data={"text/html": head})
                prov_out = nbformat.v4.new_output("display_data", data={"text/html": tail})
                title_cell["outputs"] = cell["outputs"][:j] + [title_out]
                prov_cell["outputs"] = [prov_out] + cell["outputs"][j + 1 :]
                prov_cell["source"] = ""
                if "id" in cell:
                    title_cell["id"] = f"{cell['id']}-title"
                    prov_cell["id"] = f"{cell['id']}-provenance"
                nb.cells = rest[:i] + [title_cell] + summary + [prov_cell] + rest[i + 1 :]
                return nb, n_figures
    pos = 0
    for i, cell in enumerate(rest):
        if TITLE_TAG in _tags(cell):
            pos = i + 1
            break
    else:
        if (
            rest
            and rest[0].cell_type == "markdown"
            and str(rest[0].source).lstrip().startswith("#")
        ):
            pos = 1
    nb.cells = rest[:pos] + summary + rest[pos:]
    return nb, n_figures


def _figure_scripts(nb: NotebookNode) -> list[str]:
    """The inline scripts of the figures :func:`prepare` made (the only ones the CSP allows)."""
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            if (o.get("metadata") or {}).get(FIGURE_META):
                out += csp.inline_scripts(_html_of(o) or "")
    return out


def external_scripts(html: str) -> list[str]:
    """``<script src=...>`` tags that load from the network (must be empty for offline use)."""
    return [m.group(0) for m in _EXTERNAL_SCRIPT.finditer(html)]


def render_html(
    nb: NotebookNode | str | Path, title: str | None = None, computed_on: str | None = None
) -> tuple[str, int]:
    """Render an executed notebook to one self-contained HTML page without code cells.

    Parameters
    ----------
    nb
        The executed notebook, or its path.
    title
        The page ``<title>`` (default: the notebook's file name).
    computed_on
        The footer's line (HTML) saying which path computed the numbers
        (:func:`crm_helpers.report.prepared.computed_on_text`); none by default.

    Returns
    -------
    (str, int)
        The HTML text and the number of plotly figures in it.

    Raises
    ------
    RuntimeError
        If the page would load any script from the network.
    """
    import plotly.offline
    from nbconvert import HTMLExporter

    if not isinstance(nb, NotebookNode):
        nb = nbformat.read(str(nb), as_version=4)
    report, n_figures = prepare(nb)
    if title:
        report.metadata["title"] = title
    exporter = HTMLExporter(
        template_name=TEMPLATE_NAME,
        extra_template_basedirs=[str(TEMPLATES_DIR)],
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )
    resources = {
        "plotly_js": plotly.offline.get_plotlyjs(),
        "crm_generated": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "crm_computed_on": computed_on or "",
    }
    html, _ = exporter.from_notebook_node(report, resources=resources)
    html = csp.with_policy(html, [resources["plotly_js"], *_figure_scripts(report)])
    bad = external_scripts(html)
    if bad:
        raise RuntimeError(f"the report would load scripts from the network: {bad[:3]}")
    return html, n_figures
