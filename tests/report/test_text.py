"""The one escaping helper: untrusted values render as literal text in Markdown and HTML."""

import re

import nbformat
import pytest
from nbconvert import HTMLExporter

from crm_helpers.report import provenance
from crm_helpers.report.text import Safe, bullets, code, esc, md, skipped

PAYLOADS = [
    "<script>document.title='PWNED1'</script>",
    "<img src=x onerror=\"document.title='PWNED2'\">",
    "[click](javascript:alert(1))",
    "`<b>x</b>`",
    "**bold** _it_ $x$ # h | t ~s~ \\",
]


def _render(markdown_text: str) -> str:
    """HTML of a one-cell notebook whose output is ``markdown_text`` (as nbconvert renders)."""
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [nbformat.v4.new_output("display_data", data={"text/markdown": markdown_text})]
    nb.cells = [cell, nbformat.v4.new_markdown_cell(markdown_text)]
    body, _ = HTMLExporter(template_name="classic").from_notebook_node(nb)
    return body


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("wrap", [esc, code])
def test_payload_renders_inert(payload, wrap):
    html = _render(md("step {s} then more", s=wrap(payload)))
    assert "<script>document" not in html
    assert "<img src=x" not in html
    assert 'href="javascript' not in html
    assert "<b>x</b>" not in html.replace("&lt;b&gt;x&lt;/b&gt;", "")


def test_esc_keeps_text_readable():
    html = _render(md("the event {e}", e="add_to_cart [v2] *new*"))
    text = re.sub(r"<[^>]+>", "", html)
    assert "add_to_cart [v2] *new*" in text


def test_md_formats_numbers_and_keeps_safe_values():
    out = md("**{n:,}** users, {p:.1%} at {s}", n=1234567, p=0.25, s=code("a<b"))
    assert out == "**1,234,567** users, 25.0% at <code>a&lt;b</code>"
    assert isinstance(out, Safe)
    assert esc(out) is out  # already safe: not escaped twice


def test_bullets_and_skipped():
    assert bullets(["a", "b"], "Summary") == "## Summary\n\n- a\n- b"
    note = skipped("an orders table", "Add orders.parquet.")
    assert note.data == "*Skipped: this section needs an orders table. Add orders.parquet.*"


def test_derived_parameters_shown_in_header():
    provenance._DERIVED.clear()
    try:
        value = provenance.derive("breakdown_property", "platform", "3 groups, <all> 200+ users")
        assert value == "platform"
        prov = provenance.collect({"breakdown_property": value, "steps": ["a"]})
        assert prov["derived"] == {"breakdown_property": "3 groups, <all> 200+ users"}
        html = provenance.to_html(prov)
        assert (
            "platform <em class='crm-derived'>(derived: 3 groups, &lt;all&gt; 200+ users)" in html
        )
    finally:
        provenance._DERIVED.clear()


@pytest.mark.parametrize("payload", [*PAYLOADS, 'O\'Brien & "Sons" #1 <b> 50%'])
@pytest.mark.parametrize("wrap", [esc, code])
def test_rendered_text_is_the_value_itself(payload, wrap):
    """What a reader sees (tags stripped, entities decoded once) is the value, not escapes."""
    import html as _html

    body = _render(md("[[{s}]]", s=wrap(payload)))
    shown = [_html.unescape(re.sub(r"<[^>]+>", "", m)) for m in re.findall(r"\[\[(.*?)\]\]", body)]
    assert shown and all(s == payload for s in shown), shown
