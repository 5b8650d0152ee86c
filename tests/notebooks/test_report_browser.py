"""A rendered report in a real headless Chromium: no JS errors, charts drawn, not blank."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from crm_helpers import config
from tests.shared_runs import DEFAULT_PARAMETERS, default_report, shared_report

pytestmark = [pytest.mark.browser, pytest.mark.slow]


#: Each report opened in the browser: notebook -> (page title, parameters, id of the heading
#: that must come before the first chart, least number of charts).
NOTEBOOKS: dict[str, tuple[str, dict, str, int]] = {
    "campaign_performance": ("Campaign performance", {}, "Summary", 5),
    "data_overview": ("Data overview", {}, "Summary", 3),
    "funnel_dropoff": ("Funnel drop-off", {}, "Summary", 5),
    "journey_mapping": ("Journey mapping", {}, "Summary", 3),
    "segment_profiling": ("Segment profiling", {}, "Summary", 8),
    "lookalike_expansion": ("Lookalike audience", {}, "Summary", 5),
    "experiment_readout": (
        "Experiment readout",
        {"experiment_id": "cart_abandoner_coupon", "coupon_value": 2.0},
        "Decision-memo",
        5,
    ),
}


def test_every_notebook_is_opened_in_the_browser():
    notebooks = sorted(p.stem for p in (config.NOTEBOOKS_DIR).glob("*.ipynb"))
    assert notebooks == sorted(NOTEBOOKS), "add the new notebook to NOTEBOOKS"


@pytest.fixture(scope="module", params=sorted(NOTEBOOKS))
def rendered(request, small_world, tmp_path_factory):
    notebook = request.param
    title, params, first_heading, min_figures = NOTEBOOKS[notebook]
    # the default report the notebook's and the analyst's tests read (one run per session;
    # with the audience export where the notebook test checks it: one more line of text)
    assert params == DEFAULT_PARAMETERS.get(notebook, {}), "keep tests/shared_runs.py in step"
    res = default_report(tmp_path_factory, notebook, small_world)
    res.page_title, res.first_heading, res.min_figures = title, first_heading, min_figures
    return res


@pytest.fixture(scope="module")
def driver(chromium):
    """Headless Chromium (the ``chromium`` fixture of tests/notebooks/conftest.py)."""
    return chromium


_DRAWN = """return Array.from(document.querySelectorAll('.js-plotly-plot'))
  .filter(e => e.querySelector('.main-svg') !== null).length;"""


def test_report_renders_in_chromium(rendered, driver, tmp_path):
    from PIL import Image

    html_path = Path(rendered.html)
    n_figures = rendered.n_figures
    assert n_figures and n_figures >= rendered.min_figures
    assert html_path.read_text().count('class="plotly-graph-div"') == n_figures

    driver.get(html_path.as_uri())
    deadline = time.monotonic() + 30
    while driver.execute_script(_DRAWN) < n_figures and time.monotonic() < deadline:
        time.sleep(0.25)
    assert driver.execute_script(_DRAWN) == n_figures
    n_svg_plots = driver.execute_script(
        "return document.querySelectorAll('.js-plotly-plot .main-svg').length;"
    )
    assert n_svg_plots >= n_figures
    # every chart drew data marks (bars or lines), not just empty axes
    n_with_traces = driver.execute_script(
        """return Array.from(document.querySelectorAll('.js-plotly-plot'))
          .filter(e => e.querySelector('.trace, .barlayer .point, .scatterlayer path, .sankey .sankey-link, .hm, .table .cell-rect, .treemaplayer .slice, canvas.gl-canvas')).length;"""
    )
    assert n_with_traces == n_figures

    logs = driver.get_log("browser")
    severe = [entry for entry in logs if entry["level"] == "SEVERE"]
    assert not severe, json.dumps(severe, indent=1)

    assert driver.title == rendered.page_title
    summary_y = driver.execute_script(
        f"return document.getElementById('{rendered.first_heading}').getBoundingClientRect().top;"
    )
    first_chart_y = driver.execute_script(
        "return document.querySelector('.js-plotly-plot').getBoundingClientRect().top;"
    )
    assert summary_y < first_chart_y

    shot = tmp_path / "report.png"
    driver.save_screenshot(str(shot))
    keep = Path(f"/tmp/crm_report_screenshot_{Path(rendered.html).parent.name}.png")
    shutil.copy(shot, keep)  # for a person to look at
    img = Image.open(shot).convert("RGB")
    small = img.resize((img.width // 4, img.height // 4))
    pixels = list(small.getdata())
    nonwhite = sum(1 for p in pixels if min(p) < 235) / len(pixels)
    distinct = len(set(pixels))
    assert nonwhite > 0.03, f"screenshot nearly blank ({nonwhite:.1%} non-white pixels)"
    assert distinct > 50, f"screenshot has only {distinct} colours"


@pytest.fixture(scope="module")
def rendered_lookalike(small_world, tmp_path_factory):
    # the run `rendered` opens for lookalike_expansion (one run, tests/shared_runs.py)
    return shared_report(tmp_path_factory, "lookalike_expansion", small_world)


def test_lookalike_report_renders_in_chromium(rendered_lookalike, driver):
    n_figures = rendered_lookalike.n_figures
    assert n_figures and n_figures >= 5  # lift, recall vs N, profile, drivers, histogram
    driver.get(Path(rendered_lookalike.html).as_uri())
    deadline = time.monotonic() + 30
    while driver.execute_script(_DRAWN) < n_figures and time.monotonic() < deadline:
        time.sleep(0.25)
    assert driver.execute_script(_DRAWN) == n_figures
    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, json.dumps(severe, indent=1)
    assert driver.title == "Lookalike audience"
    summary_y = driver.execute_script(
        "return document.getElementById('Summary').getBoundingClientRect().top;"
    )
    first_chart_y = driver.execute_script(
        "return document.querySelector('.js-plotly-plot').getBoundingClientRect().top;"
    )
    assert summary_y < first_chart_y


#: What a reader must never see in a report's tables (issue #26), as one script over the page.
_PRESENTATION = r"""
const out = {nan: [], zeros: [], index: [], code: [], wide: [], overlap: []};
const tables = Array.from(document.querySelectorAll('.jp-OutputArea-output table'))
  .filter(t => !t.classList.contains('crm-kv'));
for (const t of tables) {
  for (const td of t.querySelectorAll('td')) {
    const s = td.textContent.trim();
    if (/^(nan|NaN|None|NaT|<NA>)$/.test(s)) out.nan.push(s);
    if (/^-?0\.0000+$/.test(s)) out.zeros.push(s);
  }
  // a p- or q-value column never reads 0.00 (it is "< 0.001")
  const heads = Array.from(t.querySelectorAll('thead th')).map(th => th.textContent);
  heads.forEach((h, i) => {
    if (!/\b[pq]-value/i.test(h)) return;
    for (const tr of t.querySelectorAll('tbody tr')) {
      const c = tr.children[i];
      if (c && /^0\.0+$/.test(c.textContent.trim())) out.zeros.push(h + ': ' + c.textContent);
    }
  });
  if (t.querySelectorAll('tbody th').length) out.index.push(t.outerHTML.slice(0, 200));
  for (const th of t.querySelectorAll('thead th')) {
    const s = th.textContent.trim();
    if (s === '' || /_/.test(s) || /^[a-z]+[A-Z0-9]/.test(s)) out.code.push(s);
  }
}
for (const e of document.querySelectorAll('.jp-OutputArea-output')) {
  if (e.scrollWidth > e.clientWidth + 1) out.wide.push(e.className + ' ' + e.scrollWidth);
}
for (const plot of document.querySelectorAll('.js-plotly-plot')) {
  const boxes = Array.from(plot.querySelectorAll('.sankey .node-label'))
    .filter(t => t.textContent.trim() !== '')
    .map(t => [t.textContent.trim(), t.getBoundingClientRect()]);
  for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
    const [a, r] = boxes[i], [b, q] = boxes[j];
    if (r.left < q.right - 1 && q.left < r.right - 1 && r.top < q.bottom - 1 && q.top < r.bottom - 1)
      out.overlap.push(a + ' / ' + b);
  }
}
out.page = [document.documentElement.scrollWidth, document.documentElement.clientWidth];
out.n_tables = tables.length;
return out;
"""


def test_report_reads_without_a_data_scientist(rendered, driver):
    """At 1280 px: no NaN cell, no 0.0000, no row index, no code-name header, no sideways
    scrolling of the page or of any output, no two Sankey labels overlapping (#26);
    a full-page screenshot is kept to look at."""
    import base64

    driver.set_window_size(1280, 1600)
    try:
        driver.get(Path(rendered.html).as_uri())
        found = driver.execute_script(_PRESENTATION)
        width, height = driver.execute_script(
            "return [document.documentElement.scrollWidth, document.documentElement.scrollHeight];"
        )
        shot = driver.execute_cdp_cmd(
            "Page.captureScreenshot",
            {
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 0.5},
            },
        )
        keep = Path(f"/tmp/crm_presentation_{Path(rendered.html).parent.name}.png")
        keep.write_bytes(base64.b64decode(shot["data"]))
    finally:
        driver.set_window_size(1300, 2400)
    assert found["n_tables"] > 0
    assert not found["nan"], found["nan"]
    assert not found["zeros"], found["zeros"]
    assert not found["index"], found["index"]
    assert not found["code"], found["code"]
    assert not found["wide"], found["wide"]
    assert not found["overlap"], found["overlap"]
    page_width, viewport = found["page"]
    assert page_width <= viewport, found["page"]
