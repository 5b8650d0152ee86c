"""The answer at the top of the notebook: the summary, also right below the parameters.

A notebook computes its summary in its last cell. In JupyterLab (Run All) and in the
executed ``.ipynb`` the reader should not have to scroll there, so:

* :func:`slot`, called in the first cell after the parameters, shows a placeholder
  ("appears here when all cells have run") as an output with the display id
  :data:`DISPLAY_ID`;
* :func:`fill`, called in the summary cell, replaces that output with the summary lines
  (``update_display``: the kernel sends ``update_display_data``; JupyterLab updates the
  output in place and nbclient / papermill apply it to the executed notebook) and returns
  the summary to show in the last cell too.

The rendered HTML report already moves the summary cell to the top
(:mod:`crm_helpers.report.render`), so it leaves out the slot's output (flag
:data:`ANSWER_META`): the summary is shown once there.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["ANSWER_META", "DISPLAY_ID", "PENDING", "fill", "slot", "top_markdown"]

#: The display id of the slot (one per notebook kernel; a re-run replaces it).
DISPLAY_ID = "crm-answer-top"
#: Output metadata flag of the slot (the report renderer drops these outputs).
ANSWER_META = "crm_answer"
PENDING = "_appears here when all cells have run (Run All)._"


def _anchor(heading: str) -> str:
    return heading.strip().replace(" ", "-")


def top_markdown(findings: Iterable[str] | None, heading: str = "Summary") -> str:
    """The slot's Markdown: a bold heading with a link to the summary cell, then the lines
    (already safe Markdown, see :mod:`crm_helpers.report.text`), or the pending note."""
    head = f"**{heading}** ([the full section](#{_anchor(heading)}) is the last cell)"
    if findings is None:
        return f"**{heading}**: {PENDING}"
    lines = [str(f) for f in findings]
    return head + "\n\n" + "\n".join(f"- {line}" for line in lines)


def _show(markdown: str, update: bool) -> None:
    from IPython.display import Markdown, display, update_display

    meta = {ANSWER_META: True}
    if update:
        update_display(Markdown(markdown), display_id=DISPLAY_ID, metadata=meta)
    else:
        display(Markdown(markdown), display_id=DISPLAY_ID, metadata=meta)


def slot(heading: str = "Summary") -> None:
    """Show the placeholder of the summary (call it in the first cell after the parameters)."""
    _show(top_markdown(None, heading), update=False)


def fill(findings: Iterable[str], heading: str = "Summary"):
    """Put the summary lines into the slot and return the summary section's Markdown
    (``## {heading}`` and the bullets) for the summary cell to show.

    Parameters
    ----------
    findings
        The summary lines (safe Markdown).
    heading
        The summary's heading (``"Summary"``, ``"Decision memo"``).

    Returns
    -------
    IPython.display.Markdown
    """
    from IPython.display import Markdown

    from crm_helpers.report import text

    lines = [str(f) for f in findings]
    _show(top_markdown(lines, heading), update=True)
    return Markdown(text.bullets(lines, heading))
