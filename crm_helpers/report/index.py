"""``reports/index.html``: the front page a manager opens, one card per report.

Semantics
---------
* One section per analysis (notebook), titled by its base report; in it the base report
  first, then its named runs (``<notebook>--<run>`` folders), by folder name.
* Each card: the report's title (from ``metrics.json``'s provenance, else the ``title``
  parameter, else the folder) linking to its HTML, its status and age ("3 h ago", with the
  UTC time), the first :data:`N_SUMMARY_LINES` lines of its summary, and its parameters
  one click away (a ``<details>`` element; the page has no scripts).
* Under the summary, what its headline numbers did since the previous good run, marked
  when beyond run-to-run noise (:mod:`crm_helpers.report.changes`, the rule stated once at
  the top of the page).
* A failed run shows its error and, when the last good report is still there (a failed run
  never replaces it), a link to it with the summary of that report.
* When the reports shown were not all made under the same dependency lock (the sha256 of
  ``requirements/lock.txt`` in each report's ``metrics.json`` provenance, see
  :mod:`crm_helpers.envlock`), one line under the page's status names the reports made
  under another lock than the latest report's, and those made in an environment that
  differed from its lock (:func:`lock_note`).
* Summary lines are Markdown made with :mod:`crm_helpers.report.text`; they are rendered
  by :func:`summary_html` with raw HTML, links and images switched off, so nothing in
  ``metrics.json`` can inject markup; the only tags re-allowed are the bare ``<code>`` and
  ``</code>`` that :func:`crm_helpers.report.text.code` writes.
"""

from __future__ import annotations

import html
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt

from crm_helpers import config
from crm_helpers.report import changes, history

#: Summary lines shown per report.
N_SUMMARY_LINES = 3

_MD = MarkdownIt("commonmark", {"html": False}).disable(["image", "link", "autolink"])


def collect_runs(reports_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """The ``run.json`` records under ``reports_dir/*/``, sorted by folder name.

    Each record gets ``_folder``, ``_link`` (the report's HTML relative to the folder, or
    None), ``_metrics`` (the parsed ``metrics.json`` of the last good report, or None) and
    ``_history`` (its two newest good runs, :func:`crm_helpers.report.history.last`).
    """
    root = Path(reports_dir) if reports_dir else config.reports_dir()
    runs = []
    for path in sorted(root.glob("*/run.json")):
        try:
            rec = json.loads(path.read_text())
        except (ValueError, OSError):
            rec = {"status": "unreadable", "error": f"cannot read {path}"}
        rec["_folder"] = path.parent.name
        html_file = path.parent / f"{rec.get('name', path.parent.name)}.html"
        rec["_link"] = f"{path.parent.name}/{html_file.name}" if html_file.exists() else None
        try:
            rec["_metrics"] = json.loads((path.parent / "metrics.json").read_text())
        except (ValueError, OSError):
            rec["_metrics"] = None
        rec["_history"] = history.last(path.parent, 2)
        runs.append(rec)
    return runs


def summary_html(line: str) -> str:
    """One summary line (safe Markdown) as inline HTML; raw HTML in it is shown as text."""
    out = _MD.renderInline(str(line))
    return out.replace("&lt;code&gt;", "<code>").replace("&lt;/code&gt;", "</code>")


def _parse(raw: Any) -> datetime | None:
    try:
        ts = datetime.fromisoformat(str(raw))
    except (TypeError, ValueError):
        return None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def _when(rec: dict[str, Any]) -> str:
    raw = rec.get("finished_at") or rec.get("started_at") or ""
    ts = _parse(raw)
    return ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if ts else str(raw)


def age_text(then: datetime | None, now: datetime) -> str:
    """``"just now"``, ``"12 min ago"``, ``"5 h ago"``, ``"3 days ago"`` (``""`` if unknown)."""
    if then is None:
        return ""
    s = max(0.0, (now - then).total_seconds())
    if s < 60:
        return "just now"
    if s < 3600:
        return f"{int(s // 60)} min ago"
    if s < 2 * 86400:
        return f"{int(s // 3600)} h ago"
    return f"{int(s // 86400)} days ago"


#: The index page runs no script and loads nothing: only its inline style is allowed.
INDEX_CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


def _title(r: dict[str, Any]) -> str:
    prov = (r.get("_metrics") or {}).get("provenance") or {}
    return str(prov.get("title") or (r.get("parameters") or {}).get("title") or r["_folder"])


def _params_table(params: dict[str, Any]) -> str:
    if not params:
        return "<p class='muted'>No parameters set (the notebook's defaults).</p>"
    rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td><code>{html.escape(repr(v))}</code></td></tr>"
        for k, v in sorted(params.items())
    )
    return f"<table class='params'>{rows}</table>"


def _card(r: dict[str, Any], now: datetime) -> str:
    status = str(r.get("status", "?"))
    ok = status == "ok"
    title = html.escape(_title(r))
    link = r.get("_link")
    head = f"<a href='{html.escape(link)}'>{title}</a>" if link else title
    when = _when(r)
    age = age_text(_parse(r.get("finished_at") or r.get("started_at")), now)
    parts = [
        f"<article class='report {'ok' if ok else 'failed'}'>",
        f"<h3>{head} <span class='status'>{html.escape(status)}</span></h3>",
        f"<p class='meta'>{html.escape(r['_folder'])} · "
        f"<span title='{html.escape(when)} UTC'>{html.escape(age or when)}</span>"
        f" · {html.escape(when)} UTC"
        + (f" · {r['duration_s']:.1f} s" if isinstance(r.get("duration_s"), int | float) else "")
        + "</p>",
    ]
    if not ok:
        err = str(r.get("error") or "").strip()
        err = err if len(err) <= 500 else err[:500] + " …"
        parts.append(f"<p class='err trace'>{html.escape(err)}</p>")
        if link:
            since = _parse(r.get("last_success"))
            when_ok = f" is from {since.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if since else ""
            parts.append(
                f"<p class='err'><a href='{html.escape(link)}'>The last good report</a>"
                f"{html.escape(when_ok)}; its findings:</p>"
            )
    lines = ((r.get("_metrics") or {}).get("summary") or [])[:N_SUMMARY_LINES]
    if lines and (ok or link):
        parts.append("<ul>" + "".join(f"<li>{summary_html(x)}</li>" for x in lines) + "</ul>")
    if ok or link:  # what moved since the previous good run (crm_helpers.report.changes)
        parts.append(changes.changes_html(str(r.get("name") or ""), r.get("_history") or []))
    parts.append(
        "<details><summary>Parameters</summary>"
        f"{_params_table(r.get('parameters') or {})}</details></article>"
    )
    return "\n".join(parts)


def _groups(runs: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    by: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        by.setdefault(str(r.get("name") or r["_folder"].split("--")[0]), []).append(r)
    out = []
    for name in sorted(by):
        members = sorted(by[name], key=lambda r: ("--" in r["_folder"], r["_folder"]))
        base = members[0] if "--" not in members[0]["_folder"] else None
        out.append((_title(base) if base else name, members))
    return out


def _report_lock(r: dict[str, Any]) -> dict[str, Any] | None:
    """The lock of the report shown on ``r``'s card (its ``metrics.json``), or None."""
    lock = ((r.get("_metrics") or {}).get("provenance") or {}).get("lock")
    return lock if isinstance(lock, dict) and lock.get("sha256") else None


def lock_note(runs: list[dict[str, Any]]) -> str:
    """One line naming the reports made under another lock than the latest report's.

    Reports are those with a ``metrics.json`` (the card shows it); the latest is the one
    with the latest ``last_success``. Reports that recorded no lock are named as such when
    others did; reports whose environment differed from their lock are named too.
    ``""`` when every report was made under one lock, in an environment that matched it.
    """
    shown = [r for r in runs if r.get("_metrics")]
    locked = [r for r in shown if _report_lock(r)]
    if not locked:
        return ""
    latest = max(locked, key=lambda r: str(r.get("last_success") or r.get("finished_at") or ""))
    ref = _report_lock(latest)["sha256"]
    other: dict[str, list[str]] = {}
    for r in shown:
        lock = _report_lock(r)
        key = "no lock recorded" if lock is None else f"lock {lock['sha256'][:12]}"
        if lock is None or lock["sha256"] != ref:
            other.setdefault(key, []).append(r["_folder"])
    drift = [r["_folder"] for r in locked if _report_lock(r).get("matches_environment") is False]
    parts = [f"{', '.join(names)} ({key})" for key, names in sorted(other.items())]
    out = ""
    if parts:
        out = (
            f"Made under another dependency lock than the latest report "
            f"(lock {ref[:12]}): {'; '.join(parts)}."
        )
    if drift:
        out += (" " if out else "") + (
            f"Made in an environment that differed from its lock: {', '.join(drift)}."
        )
    return out


def render_index(runs: list[dict[str, Any]], now: datetime | None = None) -> str:
    """The front page (plain HTML, no scripts) for the given run records.

    Parameters
    ----------
    runs
        :func:`collect_runs` output.
    now
        The time ages are measured to (default: now, UTC).
    """
    now = now or datetime.now(UTC)
    sections = []
    for heading, members in _groups(runs):
        cards = "\n".join(_card(r, now) for r in members)
        sections.append(
            f"<section><h2>{html.escape(heading)}</h2>\n<div class='cards'>\n{cards}\n</div></section>"
        )
    n_failed = sum(r.get("status") != "ok" for r in runs)
    status = (
        f"{len(runs)} report(s)"
        + (f", <strong class='bad'>{n_failed} failed</strong>" if n_failed else ", all ok")
        + f" · page made {now:%Y-%m-%d %H:%M} UTC"
    )
    compared = any(len(r.get("_history") or []) >= 2 for r in runs)
    rule = f"<p class='meta'>{html.escape(changes.RULE)}</p>\n" if compared else ""
    note = lock_note(runs)
    note_html = f"<p class='meta lock-note'>{html.escape(note)}</p>" if note else ""
    body = "\n".join(sections) or "<p>No reports yet: run <code>crm run</code>.</p>"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{INDEX_CSP}">
<title>CRM Workbench reports</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }}
h2 {{ margin-top: 1.6em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }}
.cards {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(330px, 1fr)); gap: 14px; }}
article.report {{ border: 1px solid #d0d7de; border-radius: 8px; padding: 10px 14px; }}
article.report h3 {{ margin: 0.2em 0; font-size: 1.05em; }}
article.failed {{ border-color: #cf222e; }}
.status {{ font-size: 0.75em; padding: 1px 7px; border-radius: 10px; color: #fff; background: #1a7f37; vertical-align: middle; }}
article.failed .status {{ background: #cf222e; }}
.meta, .muted {{ color: #666; font-size: 0.85em; margin: 0.2em 0; }}
.err {{ font-size: 0.85em; color: #8a1c1c; }}
.trace {{ white-space: pre-line; overflow-wrap: anywhere; }}
.bad {{ color: #cf222e; }}
.moved {{ color: #9a6700; }}
.changes ul {{ font-size: 0.85em; }}
ul {{ padding-left: 1.2em; margin: 0.5em 0; font-size: 0.92em; }}
details {{ font-size: 0.85em; color: #444; }}
table.params th, table.params td {{ text-align: left; padding: 1px 8px 1px 0; vertical-align: top; }}
code {{ font-size: 0.9em; }}
</style></head>
<body><h1>CRM Workbench reports</h1>
<p class="meta">{status}</p>
{note_html}
{rule}{body}
</body></html>
"""


def write_index(reports_dir: str | Path | None = None) -> Path:
    """Rewrite ``index.html`` of ``reports_dir`` (atomically) and return its path."""
    root = Path(reports_dir) if reports_dir else config.reports_dir()
    root.mkdir(parents=True, exist_ok=True)
    target = root / "index.html"
    tmp = root / f".index.html.{os.getpid()}-{os.urandom(4).hex()}.tmp"  # one per writer
    try:
        tmp.write_text(render_index(collect_runs(root)), encoding="utf-8")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target
