"""Untrusted text in reports: the one place that puts data and parameters into Markdown/HTML.

Every string that comes from the user's data or parameters (event names, property values,
segment names, variant and experiment ids, file paths, parameter values) reaches a report
through this module. Notebook cells and ``narrative`` modules build Markdown from a
*trusted* template (written in the code) and *untrusted* values, which are escaped here.

Semantics
---------
- :func:`esc` makes a value inert in Markdown *and* in the HTML that nbconvert / JupyterLab
  make from it: ``& < > " '`` become HTML entities and the Markdown-active characters
  ``\\ ` * _ [ ] { } # | ~ $ !`` are backslash-escaped, so the value renders as the literal
  text it is (no tags, no links, no emphasis, no maths). It never goes inside backticks.
  Renderers also make links of bare URLs in plain text (nbconvert's mistune ``url`` plugin:
  ``http(s)://…``; JupyterLab's GFM: also ``www.…``), so ``://`` becomes ``&#58;//`` and
  ``www.`` becomes ``www&#46;``: the same characters on screen, no link.
- :func:`code` shows a value in monospace as ``<code>…</code>`` with its content escaped
  (a Markdown code span cannot hold a value that itself contains backticks safely).
- :func:`md` formats a trusted template with escaped values: ``md("**{n}** users left {step}",
  n="1,234", step=code(name))`` — values already made by :func:`code` or :func:`esc` are kept
  as they are (they are :class:`Safe`), everything else is escaped.
- :func:`join` joins values with a trusted separator, escaping those not yet safe.
- :func:`skipped` is the one-line note of a section that steps aside because the data lack
  a table or column: what is missing and how to add it.

Summary lines recorded with :func:`crm_helpers.report.metrics.summary` are Markdown built
this way, so they are safe wherever they are rendered (the report, the index page).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

__all__ = ["Safe", "esc", "code", "md", "join", "bullets", "skipped"]

_MD_ACTIVE = "\\`*_[]{}#|~$!"
_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#x27;"}
# one pass per character: an entity made for one character is never escaped again
_ESC_TABLE = str.maketrans({**{c: "\\" + c for c in _MD_ACTIVE}, **_HTML})
_CODE_TABLE = str.maketrans({**{c: f"&#{ord(c)};" for c in _MD_ACTIVE}, **_HTML})
_WWW = re.compile(r"(?i)\b(www)\.")


def _no_autolink(text: str) -> str:
    """Break the patterns renderers turn into links (``://`` and ``www.``) with entities."""
    return _WWW.sub(r"\1&#46;", text.replace("://", "&#58;//"))


class Safe(str):
    """A string that is already safe Markdown (made by :func:`esc`, :func:`code` or :func:`md`)."""

    __slots__ = ()


def esc(value: Any) -> Safe:
    """``value`` as inert Markdown/HTML text (see the module docstring).

    >>> esc("<script>x</script> *a*")
    '&lt;script&gt;x&lt;/script&gt; \\\\*a\\\\*'
    """
    if isinstance(value, Safe):
        return value
    return Safe(_no_autolink(str(value).translate(_ESC_TABLE)))


def code(value: Any) -> Safe:
    """``value`` in monospace, escaped: ``<code>&lt;b&gt;</code>`` for ``"<b>"``."""
    # Markdown still runs inside inline HTML in some renderers: its characters become
    # entities too (in the same pass, so the entities' own "#" is not escaped again).
    return Safe(f"<code>{_no_autolink(str(value).translate(_CODE_TABLE))}</code>")


def md(template: str, /, **values: Any) -> Safe:
    """Format a trusted Markdown ``template`` with escaped ``values``.

    Parameters
    ----------
    template
        Markdown written in the code, with ``{name}`` or ``{name:,}`` fields.
    **values
        Field values. Numbers are formatted by the field's format spec and then escaped;
        :class:`Safe` strings are inserted as they are; anything else is escaped.

    Returns
    -------
    Safe
        The Markdown text.
    """
    shown: dict[str, Any] = {}
    for k, v in values.items():
        if isinstance(v, Safe):
            shown[k] = v
        elif isinstance(v, int | float) and not isinstance(v, bool):
            shown[k] = _Escaped(v)
        else:
            shown[k] = esc(v)
    return Safe(template.format(**shown))


class _Escaped:
    """A number whose formatted text is escaped (``{x:,.0f}`` keeps working)."""

    __slots__ = ("v",)

    def __init__(self, v: Any) -> None:
        self.v = v

    def __format__(self, spec: str) -> str:
        return esc(format(self.v, spec))

    def __str__(self) -> str:
        return esc(str(self.v))


def join(parts: Iterable[Any], sep: str = ", ") -> Safe:
    """``parts`` joined by the trusted ``sep``; parts that are not :class:`Safe` are escaped.

    >>> join(["a<b", code("c")])
    'a&lt;b, <code>c</code>'
    """
    return Safe(sep.join(esc(p) for p in parts))


def bullets(lines: list[str], heading: str | None = None) -> Safe:
    """Markdown bullet list of (already safe) lines, with an optional trusted ``## heading``."""
    head = f"## {heading}\n\n" if heading else ""
    return Safe(head + "\n".join(f"- {line}" for line in lines))


def skipped(what: str, how: str) -> Any:
    """The note of a section that steps aside: ``*Skipped: needs {what}. {how}*``.

    Parameters
    ----------
    what
        What the data lack, e.g. ``"an orders table"`` or ``"a users column 'country'"``
        (trusted text from the code; data-derived parts must be escaped by the caller).
    how
        How to add it, e.g. ``"add orders.parquet, or pass -p average_order_value 40"``.

    Returns
    -------
    IPython.display.Markdown
        One italic line, shown in the report in place of the section's output.
    """
    from IPython.display import Markdown

    return Markdown(f"*Skipped: this section needs {what}. {how}*")
