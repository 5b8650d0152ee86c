"""Hints that suggest a command carry a real value from the data, or no command at all.

Markdown renders ``<column>`` as nothing, so a hint written with a placeholder reads
``-p breakdown_property .`` in the report; these tests pin the helper that replaces such
placeholders (``crm_helpers.report.hints``) and scan every notebook and helper for a
command hint that still holds one.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import ibis
import pandas as pd
import pytest

from crm_helpers import config
from crm_helpers.experiments import narrative as exp_narrative
from crm_helpers.report import hints
from tests.notebooks.words_checks import PLACEHOLDER

ROOT = Path(__file__).parents[2]


def _unescape(code_html: str) -> str:
    """The command inside ``<code>…</code>`` as a reader sees it (entities decoded)."""
    import html

    inner = re.search(r"<code>(.*)</code>", code_html).group(1)
    return html.unescape(inner)


@pytest.mark.parametrize("value", [None, "", "  ", [], {}, [""], {"activation": [""]}, {"a": []}])
def test_an_empty_value_gives_no_hint(value):
    assert hints.pass_param("stages", value) == ""


def test_a_real_value_gives_a_runnable_command():
    assert hints.pass_param("segment_column", "device") == (
        "or pass <code>-p segment_column device</code>"
    )
    got = hints.pass_param("stages", {"activation": ["pv"]}, prefix="Pass ")
    assert got.startswith("Pass <code>")
    cmd = shlex.split(_unescape(got))
    assert cmd[:2] == ["-p", "stages"] and json.loads(cmd[2]) == {"activation": ["pv"]}
    # a value with quotes, spaces and markup survives the shell and the Markdown
    odd = "it's <b>*x*</b>"
    got = hints.pass_param("segment_column", odd)
    assert "<b>" not in got and "*" not in got
    assert shlex.split(_unescape(got)) == ["-p", "segment_column", odd]
    with pytest.raises(ValueError, match="parameter name"):
        hints.pass_param("bad name", "x")


def test_groupable_column_picks_a_real_column():
    events = ibis.memtable(
        pd.DataFrame(
            {
                "user_id": [1, 2, 3, 4],
                "event": ["a", "b", "a", "b"],
                "ts": pd.date_range("2024-01-01", periods=4),
                "page": ["p1", "p2", "p3", "p4"],  # 4 values: too many for max_levels=3
                "platform": ["web", "app", "web", "web"],
                "flag": [True, True, True, True],  # one value: nothing to compare
            }
        )
    )
    users = ibis.memtable(pd.DataFrame({"user_id": [1, 2], "country": ["de", "fr"]}))
    assert hints.groupable_column([events], exclude=["event"], max_levels=3) == "platform"
    assert hints.groupable_column([events], max_levels=3) == "event"
    assert hints.groupable_column([None, users]) == "country"
    only_keys = ibis.memtable(
        pd.DataFrame({"user_id": [1, 2], "signup_at": pd.date_range("2024-01-01", periods=2)})
    )
    assert hints.groupable_column([only_keys, None]) is None
    assert hints.groupable_column([]) is None


def test_split_hint_names_the_real_variants():
    got = exp_narrative._split_hint(["b_big", "a_small"])
    cmd = shlex.split(_unescape(got))
    assert json.loads(cmd[2]) == {"b_big": 0.8, "a_small": 0.2}
    assert "treatment" not in got and "holdout" not in got


def test_funnel_steps_error_names_real_events():
    from crm_helpers.funnels import defaults

    ev = pd.DataFrame(
        {"user_id": list(range(200)) + [0], "event": ["visit"] * 200 + ["rare"],
         "ts": pd.date_range("2024-01-01", periods=201, freq="h")}
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"""-p steps '\["visit", "rare"\]'"""):
        defaults.choose_steps(ibis.memtable(ev), min_share=0.5)


# --- no placeholder left anywhere -----------------------------------------------------------


def _sources() -> list[tuple[str, str]]:
    out = []
    for p in sorted(config.NOTEBOOKS_DIR.glob("*.ipynb")):
        cells = json.loads(p.read_text())["cells"]
        out += [(f"{p.name}[{i}]", "".join(c["source"])) for i, c in enumerate(cells)]
    for p in sorted((ROOT / "crm_helpers").rglob("*.py")):
        out.append((str(p.relative_to(ROOT)), p.read_text()))
    return out


def test_placeholder_pattern_catches_the_old_hints():
    for old in (
        "or pass -p breakdown_property <column>.",
        "or pass -p segment_column <column>.",
        """Pass -p stages '{"activation": ["<event>"]}'.""",
        """-p stages '{"activation": [""]}'""",
        "-p breakdown_property .",
    ):
        assert PLACEHOLDER.search(old), old
    assert not PLACEHOLDER.search("pass -p average_order_value 40.")


def test_no_command_hint_holds_a_placeholder():
    found = [
        (where, m.group(0))
        for where, text in _sources()
        if "hints.py" not in where
        for m in PLACEHOLDER.finditer(text)
    ]
    assert not found, found


def test_the_suggested_commands_fit_the_notebooks_parameters():
    """What ``crm run`` would do with each suggested ``-p name value``: the typed value."""
    from crm_helpers.report.notebook import coerce_value

    for name, value, default in (
        ("stages", {"activation": ["seite"]}, {}),
        ("planned_split", {"b": 0.8, "a": 0.2}, {}),
        ("segment_column", "plan", ""),
        ("breakdown_property", "platform", ""),
    ):
        _, got_name, raw = shlex.split(_unescape(hints.pass_param(name, value)))
        assert got_name == name
        assert coerce_value(raw, default, name=name) == value
