"""``reports/index.html``: one row per report with date, parameters, status, duration, link."""

from __future__ import annotations

import html
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from crm_helpers import config


def collect_runs(reports_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """The ``run.json`` records under ``reports_dir/*/``, sorted by folder name."""
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
        runs.append(rec)
    return runs


def _when(rec: dict[str, Any]) -> str:
    raw = rec.get("finished_at") or rec.get("started_at") or ""
    try:
        return datetime.fromisoformat(raw).strftime("%Y-%m-%d %H:%M")
    except (TypeError, ValueError):
        return str(raw)


def _params_text(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in sorted((params or {}).items()))


#: The index page runs no script and loads nothing: only its inline style is allowed.
INDEX_CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


def render_index(runs: list[dict[str, Any]]) -> str:
    """The index page (plain HTML, no scripts) for the given run records."""
    rows = []
    for r in runs:
        status = r.get("status", "?")
        colour = "#1a7f37" if status == "ok" else "#cf222e"
        link = (
            f"<a href='{html.escape(r['_link'])}'>{html.escape(r['_folder'])}</a>"
            if r.get("_link")
            else html.escape(r["_folder"])
        )
        note = ""
        if status != "ok":
            note = f"<div class='err'>{html.escape(str(r.get('error') or ''))}</div>"
            if r.get("_link"):
                note += (
                    "<div class='err'>(the link shows the last good report"
                    f"{', from ' + html.escape(r['last_success']) if r.get('last_success') else ''})"
                    "</div>"
                )
        dur = r.get("duration_s")
        rows.append(
            "<tr>"
            f"<td class='nowrap'>{link}</td>"
            f"<td class='nowrap'>{html.escape(_when(r))}</td>"
            f"<td class='status' style='color:{colour}'>{html.escape(status)}{note}</td>"
            f"<td>{'' if dur is None else f'{dur:.1f} s'}</td>"
            f"<td><code>{html.escape(_params_text(r.get('parameters') or {}))}</code></td>"
            "</tr>"
        )
    body = (
        "\n".join(rows) or "<tr><td colspan='5'>No reports yet: run <code>crm run</code>.</td></tr>"
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>CRM Workbench reports</title>
<meta http-equiv="Content-Security-Policy" content="{INDEX_CSP}">
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ text-align: left; padding: 6px 10px; border-bottom: 1px solid #ddd; vertical-align: top; }}
.err {{ font-size: 0.85em; color: #555; }}
.nowrap {{ white-space: nowrap; }}
code {{ font-size: 0.85em; }}
</style></head>
<body><h1>CRM Workbench reports</h1>
<table><thead><tr><th>Report</th><th>Date (UTC)</th><th>Status</th><th>Duration</th>
<th>Parameters</th></tr></thead>
<tbody>
{body}
</tbody></table></body></html>
"""


def write_index(reports_dir: str | Path | None = None) -> Path:
    """Rewrite ``index.html`` of ``reports_dir`` (atomically) and return its path."""
    root = Path(reports_dir) if reports_dir else config.reports_dir()
    root.mkdir(parents=True, exist_ok=True)
    target = root / "index.html"
    tmp = root / ".index.html.tmp"
    tmp.write_text(render_index(collect_runs(root)), encoding="utf-8")
    os.replace(tmp, target)
    return target
