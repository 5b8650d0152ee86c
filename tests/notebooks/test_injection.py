"""Stored script injection: every notebook, on data whose names carry payloads, in Chromium.

Event names, property values, user attribute values, experiment and variant ids, the data
folder's path and the report title hold ``<script>``/``<img onerror>``/``<svg onload>`` and
``javascript:`` payloads (``payloads.write_payload_world``). Each notebook in ``notebooks/``
is rendered on that data and opened in headless Chromium: no payload may run (each would
set the page title to PWNED<n>), the page shows them as literal text, no error is logged
(the Content-Security-Policy still lets the charts draw) and the index page is clean too.

A new notebook joins by adding one entry to ``HOSTILE_PARAMETERS`` (tests/notebooks/payloads.py):
the parameters that make it use the payload data (steps, variants, ...). A notebook without
an entry fails. The run is the one test_plotly_markup reads (one run a session).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import nbformat
import pytest

from crm_helpers import config
from crm_helpers.report.index import write_index
from crm_helpers.report.render import render_html
from tests.notebooks.payloads import PAYLOADS, TITLE, hostile_report

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NOTEBOOKS = sorted(p.stem for p in config.NOTEBOOKS_DIR.glob("*.ipynb"))

_DRAWN = """return Array.from(document.querySelectorAll('.js-plotly-plot'))
  .filter(e => e.querySelector('.main-svg') !== null).length;"""


def _open(driver, path: Path, n_figures: int = 0) -> str:
    """Load a page, wait for its charts, return its visible text."""
    driver.get_log("browser")  # drop what earlier pages logged
    driver.get(path.as_uri())
    deadline = time.monotonic() + 30
    while driver.execute_script(_DRAWN) < n_figures and time.monotonic() < deadline:
        time.sleep(0.25)
    time.sleep(0.5)  # an onerror/onload handler would have fired by now
    return driver.execute_script("return document.body.innerText;")


def _assert_nothing_ran(driver) -> None:
    title = driver.title
    assert not re.fullmatch(r"PWNED\d", title), f"a payload ran: the page title is {title!r}"
    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, json.dumps(severe, indent=1)


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_payloads_in_the_data_never_run(notebook, payload_world, chromium, tmp_path_factory):
    # the run test_plotly_markup reads too (tests/notebooks/payloads.py: once a session)
    res = hostile_report(tmp_path_factory, notebook, payload_world)
    out = Path(res.out_dir).parent
    write_index(out)  # what run_notebook(update_index=True) writes; the report stays as built
    params = res.parameters  # every parameter of the run, defaults included

    html = Path(res.html).read_text()
    for raw in ("<script>document.title", "<img src=x", "<svg onload"):
        assert raw not in html, f"{raw!r} reached the HTML unescaped"
    assert not re.search(r"href\s*=\s*[\"']?javascript:", html, re.IGNORECASE)

    text = _open(chromium, Path(res.html), res.n_figures or 0)
    _assert_nothing_ran(chromium)
    shown = [p for p in PAYLOADS if p in text]
    assert shown, "no payload is shown as text: is the payload data used at all?"
    residue = re.findall(
        r".{0,40}(?:&(?:#x?[0-9a-fA-F]+|lt|gt|amp|quot);|\\[`*_#|~$!]).{0,20}", text
    )
    assert not residue, f"escaped twice: the reader sees escapes instead of the text: {residue[:3]}"
    if "title" in params:  # hostile_report gave it TITLE
        assert params["title"] == TITLE
        assert chromium.title == TITLE  # shown literally, <title> not closed early
        assert TITLE in text  # the heading

    _open(chromium, out / "index.html")
    _assert_nothing_ran(chromium)
    assert chromium.title == "CRM Workbench reports"


def test_content_security_policy_stops_what_escaping_missed(chromium, tmp_path):
    """A raw script smuggled into an output does not run; the report's charts still draw."""
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x")
    fig = {"data": [{"type": "bar", "x": ["a", "b"], "y": [1, 2]}], "layout": {}}
    cell.outputs = [
        nbformat.v4.new_output(
            "display_data",
            data={
                "text/html": "<p>raw</p><script>document.title='PWNED7'</script>"
                "<img src=x onerror=\"document.title='PWNED8'\">"
                "<a id='js' href=\"javascript:document.title='PWNED9'\">link</a>"
            },
        ),
        nbformat.v4.new_output("display_data", data={"application/vnd.plotly.v1+json": fig}),
    ]
    nb.cells = [cell]
    html, n_figures = render_html(nb, title="CSP check")
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html).group(1)
    script_src = next(d for d in policy.split("; ") if d.startswith("script-src"))
    assert "'sha256-" in script_src and "unsafe" not in script_src
    page = tmp_path / "csp.html"
    page.write_text(html)
    chromium.get_log("browser")
    chromium.get(page.as_uri())
    deadline = time.monotonic() + 30
    while chromium.execute_script(_DRAWN) < n_figures and time.monotonic() < deadline:
        time.sleep(0.25)
    assert chromium.execute_script(_DRAWN) == n_figures == 1
    chromium.find_element("id", "js").click()
    time.sleep(0.5)
    assert chromium.title == "CSP check"
    refused = [e["message"] for e in chromium.get_log("browser") if e["level"] == "SEVERE"]
    assert any("Content Security Policy" in m for m in refused), refused
