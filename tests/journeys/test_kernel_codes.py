"""The journey kernel's step codes: the one-add shortcut (every event its own step, codes
shifted by a constant, e.g. the raw names) and the lookup gather give each row the code of
its step name in the vocabulary (checked row by row against ``spec.step_of``), and journeys
built either way agree with the brute-force reference."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from crm_helpers.journeys import JourneySpec
from crm_helpers.journeys import kernel as K
from crm_helpers.journeys import reference as R
from crm_helpers.store.arrays import from_frame


def _log() -> pd.DataFrame:
    ts = pd.Timestamp("2024-01-01")
    rows = [
        ("u1", "visit", 0),
        ("u1", "add", 0),  # a tie with visit: the arrays order it by event code
        ("u1", "buy", 60),
        ("u2", "visit", 5),
        ("u2", "visit", 6),
        ("u2", "zoom", 7),
        ("u3", "buy", 1),
    ]
    return pd.DataFrame(
        {
            "user_id": [r[0] for r in rows],
            "event": [r[1] for r in rows],
            "ts": [ts + pd.Timedelta(seconds=r[2]) for r in rows],
        }
    )


SPECS = {
    "raw names (shift)": JourneySpec(),
    "renamed in order (shift)": JourneySpec(
        mapping={"add": "a_add", "buy": "b_buy", "visit": "c_visit", "zoom": "d_zoom"}
    ),
    "renamed out of order (gather)": JourneySpec(
        mapping={"add": "z_add", "buy": "b_buy", "visit": "c_visit", "zoom": "a_zoom"}
    ),
    "merged (gather)": JourneySpec(mapping={"add": "shop", "buy": "shop"}),
    "dropped (gather)": JourneySpec(mapping={"visit": "visit", "buy": "buy"}, unmapped="drop"),
}


@pytest.mark.parametrize("name", list(SPECS))
def test_step_codes_are_the_vocabulary_positions_of_each_rows_step(name):
    spec = SPECS[name]
    arrays = from_frame(_log())
    vocab = K.vocab_of(arrays, spec)
    code, _ = K._step_codes(arrays, spec, vocab)
    want = [
        -1 if spec.step_of(arrays.event_names[e]) is None else vocab.index(spec.step_of(n))
        for e, n in ((e, arrays.event_names[e]) for e in arrays.event.tolist())
    ]
    assert code.dtype == np.int32 and code.tolist() == want
    assert not np.shares_memory(code, arrays.event)


@pytest.mark.parametrize("name", list(SPECS))
@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"start_end": True},  # the journeys' first / last times: [start] and [end] rows
        {"start_end": True, "churn_days": 0.0005, "session_gap_minutes": 0.5},
        {"collapse_repeats": True, "start_end": True},
    ],
)
def test_built_journeys_equal_the_reference(name, extra):
    spec = replace(SPECS[name], **extra)
    df = _log()
    kj = K.build(from_frame(df), spec)
    got = sorted(
        (
            str(kj.user_ids[kj.user[j]]),
            [
                (t, kj.vocab[c])
                for t, c in zip(kj.t[a:b].tolist(), kj.code[a:b].tolist(), strict=True)
            ],
        )
        for j, (a, b) in enumerate(zip(kj.offsets[:-1], kj.offsets[1:], strict=True))
    )
    want = sorted((str(user), steps) for (user, _), steps in R.reference_journeys(df, spec).items())
    assert got == want
