"""The holdout skip note suggests a real experiment and arm of the data, or no command."""

from __future__ import annotations

import html
import re
import shlex

import pandas as pd

from crm_helpers.campaigns import narrative
from tests.notebooks.words_checks import PLACEHOLDER


def test_several_candidates_give_the_first_real_pair():
    cands = pd.DataFrame(
        {"experiment_id": ["exp_b", "exp_a"], "control_variant": ["none", "ctl x"],
         "campaign_id": ["c2", "c1"]}
    )  # fmt: skip
    got = narrative.holdout_hint(cands)
    cmds = [shlex.split(html.unescape(m)) for m in re.findall(r"<code>(.*?)</code>", got)]
    assert cmds == [["-p", "holdout_experiment", "exp_a"], ["-p", "control_variant", "ctl x"]]
    assert got.startswith("2 experiments") and not PLACEHOLDER.search(got)


def test_no_candidate_gives_no_command():
    for cands in (None, pd.DataFrame(columns=["experiment_id", "control_variant"])):
        got = narrative.holdout_hint(cands)
        assert "-p" not in got and "assignments.parquet" in got


def test_measured_candidates_say_so():
    cands = pd.DataFrame({"experiment_id": ["e1", "e2"], "control_variant": ["h", "h"]})
    got = narrative.holdout_hint(cands, measured=True)
    assert "each is measured below" in got and "<code>-p holdout_experiment e1</code>" in got
