"""Skip notes that suggest a command name a real column or event of the data.

The events-only shape of ``test_foreign_shapes`` with what real exports add: an event column
(``platform``) whose groups are too small to be derived as the funnel's breakdown, a users
table whose only attribute is not ``device``, and event names in another language (none in
the AARRR stages). Each skip note must suggest ``-p <parameter> <value>`` with that real
column or event, and the command must parse back to it (no empty placeholder).
"""

from __future__ import annotations

import html
import json
import re
import shlex

import nbformat
import pandas as pd
import pytest

from tests.notebooks.test_foreign_shapes import FUNNEL_STEPS, SHAPES, SKIP_MARK
from tests.notebooks.words_checks import no_placeholder

pytestmark = pytest.mark.slow


def _notes(executed: str) -> list[str]:
    nb = nbformat.read(executed, as_version=4)
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            text = (o.get("data") or {}).get("text/markdown", "")
            text = "".join(text) if isinstance(text, list) else text
            if SKIP_MARK in text:
                out.append(text.split(SKIP_MARK, 1)[1])
    return out


def _command(note: str) -> list[str]:
    """The ``-p name value`` of a note, as the shell splits it (entities decoded)."""
    code = re.findall(r"<code>(-p .*?)</code>", note)
    assert len(code) == 1, note
    return shlex.split(html.unescape(code[0]))


def _run(notebook: str, data_dir, out, **params):
    from crm_helpers.report.run import run_notebook

    res = run_notebook(
        notebook, data_dir=data_dir, out_dir=out, parameters=params, update_index=False
    )
    assert res.ok, res.error
    return _notes(res.executed)


def test_funnel_breakdown_hint_names_a_real_column(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    SHAPES["events_only"](d)
    ev = pd.read_csv(d / "events.csv")
    ev["platform"] = ["web" if i % 3 else "app" for i in range(len(ev))]  # 2 small groups
    ev.to_csv(d / "events.csv", index=False)
    notes = _run("funnel_dropoff", d, tmp_path / "out", steps=FUNNEL_STEPS)
    note = next(n for n in notes if n.startswith("an event property or user attribute"))
    no_placeholder(note)
    assert _command(note) == ["-p", "breakdown_property", "platform"]


def test_journey_hints_name_a_real_column_and_event(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    SHAPES["events_only"](d)
    ev = pd.read_csv(d / "events.csv")
    names = {"pv": "seite", "cart": "korb", "buy": "kauf", "search": "suche"}
    ev["event"] = ev["event"].map(names)
    ev.to_csv(d / "events.csv", index=False)
    users = pd.DataFrame({"user_id": sorted(ev["user_id"].unique())})
    users["plan"] = ["free" if i % 2 else "pro" for i in range(len(users))]  # no device column
    users.to_csv(d / "users.csv", index=False)
    notes = _run("journey_mapping", d, tmp_path / "out")
    for n in notes:
        no_placeholder(n)
    seg = next(n for n in notes if n.startswith("a users table with a segment column"))
    assert _command(seg) == ["-p", "segment_column", "plan"]
    stage = next(n for n in notes if n.startswith("events that belong to a stage"))
    cmd = _command(stage)
    most = ev["event"].value_counts()  # the most frequent step (ties: the first name)
    top = sorted(most[most == most.max()].index)[0]
    assert cmd[:2] == ["-p", "stages"] and json.loads(cmd[2]) == {"activation": [top]}
