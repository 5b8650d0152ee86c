"""Content-Security-Policy of a rendered report: only the report's own scripts may run.

A report is one offline HTML file. Its scripts are the inlined plotly.js bundle and one
small inline script per plotly figure (``Plotly.newPlot(...)``), all produced by
:mod:`crm_helpers.report.render` itself. The policy, set as a ``<meta http-equiv>`` tag
at the top of ``<head>``, allows exactly those scripts by their SHA-256 hashes; everything
else is refused by the browser:

- any other ``<script>`` (one that data or parameters smuggled into the page despite
  :mod:`crm_helpers.report.text`), inline event handlers (``onerror=...``),
  ``javascript:`` links and ``eval``;
- loading anything from the network (``default-src 'none'``: no scripts, styles, fonts,
  images, frames or connections from elsewhere), so the report stays offline;
- forms, ``<base>``, plugins.

Styles may be inline (``'unsafe-inline'``: nbconvert's and plotly's CSS are inline and
cannot run code) and images may be ``data:`` URIs (embedded static images).

The escaping in :mod:`crm_helpers.report.text` is the first defence; this policy is the
second, for whatever reaches the HTML unescaped.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable

__all__ = ["inline_scripts", "policy", "script_hash", "with_policy"]

_SCRIPT = re.compile(r"<script\b[^>]*>(.*?)</script\s*>", re.IGNORECASE | re.DOTALL)
_HEAD = re.compile(r"<head\b[^>]*>", re.IGNORECASE)

#: The fixed part of the policy (the script hashes are added per report).
BASE_DIRECTIVES: tuple[str, ...] = (
    "default-src 'none'",
    "style-src 'unsafe-inline'",
    "img-src data:",
    "font-src data:",
    "base-uri 'none'",
    "form-action 'none'",
    "object-src 'none'",
)


def inline_scripts(html: str) -> list[str]:
    """The text of every ``<script>...</script>`` element of ``html``, in order."""
    return [m.group(1) for m in _SCRIPT.finditer(html)]


def script_hash(source: str) -> str:
    """The CSP source expression of one inline script: ``'sha256-<base64>'``."""
    digest = hashlib.sha256(source.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


def policy(trusted_scripts: Iterable[str]) -> str:
    """The policy that lets exactly ``trusted_scripts`` (inline script texts) run.

    Parameters
    ----------
    trusted_scripts
        Texts of the inline scripts the report itself wrote (duplicates are fine).

    Returns
    -------
    str
        ``default-src 'none'; script-src 'sha256-…' …; style-src 'unsafe-inline'; …``;
        with no trusted script, ``script-src 'none'``.
    """
    hashes = sorted({script_hash(s) for s in trusted_scripts})
    script_src = "script-src " + (" ".join(hashes) if hashes else "'none'")
    return "; ".join([BASE_DIRECTIVES[0], script_src, *BASE_DIRECTIVES[1:]])


def with_policy(html: str, trusted_scripts: Iterable[str]) -> str:
    """``html`` with the policy's ``<meta http-equiv="Content-Security-Policy">`` first in head.

    Raises
    ------
    ValueError
        If ``html`` has no ``<head>`` (the policy must come before any script).
    """
    m = _HEAD.search(html)
    if m is None:
        raise ValueError("the page has no <head>: cannot set its Content-Security-Policy")
    meta = f'\n<meta http-equiv="Content-Security-Policy" content="{policy(trusted_scripts)}">'
    return html[: m.end()] + meta + html[m.end() :]
