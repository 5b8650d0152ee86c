"""A URL inside a data value stays text in the HTML report (found by the hostile-names world).

:func:`crm_helpers.report.text.esc` makes ``& < > " '`` entities and backslash-escapes the
Markdown-active characters, but the report's Markdown renderer (nbconvert) still autolinks a
bare ``https://`` URL: an event named ``<a href="https://evil.example/">x</a>`` shows as a
live link to ``https://evil.example/"&gt;x&lt;/a&amp;gt`` and the reader sees ``&gt;``.
Fixed: :func:`esc` and :func:`code` write ``://`` as ``&#58;//`` and ``www.`` as ``www&#46;``.
"""

from __future__ import annotations

import nbformat
import pytest

from crm_helpers.report.render import render_html
from crm_helpers.report.text import code, esc

VALUES = [
    '<a href="https://evil.example/">x</a>',
    "see https://evil.example/x",
    "HTTP://EVIL.EXAMPLE",
    "see www.evil.example/x",
]


def _render(markdown: str):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [
        nbformat.v4.new_output("display_data", data={"text/markdown": f"Top: {markdown}"})
    ]
    nb.cells = [cell]
    return render_html(nb, title="t")


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("make", [esc, code])
def test_a_url_in_a_data_value_is_not_a_link(value, make):
    html, _ = _render(make(value))
    body = html.split("Top: ", 1)[1].split("</p>", 1)[0]
    assert "<a " not in body, body


def test_the_reader_sees_the_url_as_written():
    html, _ = _render(esc("see https://evil.example/x and www.evil.example"))
    import html as _html

    text = _html.unescape(html.split("Top: ", 1)[1].split("</p>", 1)[0]).replace("\\", "")
    assert "see https://evil.example/x and www.evil.example" in text
