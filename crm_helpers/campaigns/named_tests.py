"""Message tests named by the user: several ``campaign_id`` s read as the arms of one test.

A CRM tool often runs a message test as separate campaigns (one per subject line or
creative) with no assignments table. The report's ``message_test_campaigns`` parameter
names them; nothing is derived: an empty parameter leaves the section to the experiments
in the assignments (:func:`crm_helpers.campaigns.holdout.message_tests`).

Semantics
---------
*Spec* (:func:`normalise_spec`): a list of campaign ids is one test named ``message test``;
a mapping ``{test name: [campaign ids]}`` names several. Each test has at least two
distinct campaigns; ids are matched to the data's ``campaign_id`` as text (``100`` and
``"100"`` are the same campaign). The first campaign listed is the test's baseline arm.

*Arms* (:func:`named_message_tests`): per test and campaign, one row ``experiment_id``
(the test's name), ``variant`` (the campaign id as text), ``campaign_id`` (as in the data),
``users`` (distinct recipients), ``overlap_users`` (recipients of the arm who also got
another arm of the same test) and ``shared_users`` (the test's distinct users who got more
than one arm; the same on every arm of a test). A campaign absent from the messages is an error naming the
campaigns the data have.

*Read-out*: the arms go through
:func:`crm_helpers.campaigns.holdout.message_test_table` with the baseline as control:
messages as units, each arm's click and conversion rate against the baseline with the
binary metric of :func:`crm_helpers.experiments.statistics.compare` (difference, 95%
interval, two-sided p-value) and Holm across the arms of one test (the experiments
module's statistics, not a second implementation). Unlike an experiment, named campaigns
were not necessarily sent to randomly split audiences: the report says so beside the table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import ibis.expr.types as ir
import pandas as pd

__all__ = ["DEFAULT_NAME", "named_message_tests", "normalise_spec"]

#: The name of the test given as a plain list of campaign ids.
DEFAULT_NAME = "message test"


def normalise_spec(
    spec: Sequence[Any] | Mapping[str, Sequence[Any]] | None,
) -> dict[str, list[str]]:
    """``{test name: [campaign id as text, ...]}`` from the parameter (module docstring).

    Raises ``ValueError`` for a test with fewer than two distinct campaigns or a value that
    is neither a list nor a mapping of lists.
    """
    if not spec:
        return {}
    if isinstance(spec, Mapping):
        items = list(spec.items())
    elif isinstance(spec, Sequence) and not isinstance(spec, str):
        items = [(DEFAULT_NAME, spec)]
    else:
        raise ValueError(
            "message_test_campaigns must be a list of campaign ids or a mapping "
            f"{{test name: [campaign ids]}}, got {spec!r}"
        )
    out: dict[str, list[str]] = {}
    for name, ids in items:
        if isinstance(ids, str) or not isinstance(ids, Sequence):
            raise ValueError(f"message test {name!r}: give a list of campaign ids, got {ids!r}")
        arms = list(dict.fromkeys(str(i) for i in ids))
        if len(arms) < 2:
            raise ValueError(f"message test {name!r} needs at least two campaigns, got {arms}")
        out[str(name)] = arms
    return out


def named_message_tests(
    messages: ir.Table, spec: Sequence[Any] | Mapping[str, Sequence[Any]] | None
) -> tuple[pd.DataFrame, dict[str, str]]:
    """The arms of the named tests and each test's baseline arm (module docstring).

    Returns
    -------
    (pandas.DataFrame, dict)
        ``experiment_id, variant, campaign_id, users, overlap_users, shared_users`` (tests in
        the order
        given, arms in the order listed) and ``{test name: baseline variant}``.
    """
    tests = normalise_spec(spec)
    cols = ["experiment_id", "variant", "campaign_id", "users", "overlap_users", "shared_users"]
    if not tests:
        return pd.DataFrame(columns=cols), {}
    wanted = sorted({c for arms in tests.values() for c in arms})
    m = messages.select("user_id", "campaign_id", _cid=messages.campaign_id.cast("string"))
    m = m.filter(m._cid.isin(wanted)).distinct()
    got = m.to_pandas()
    ids = dict(zip(got["_cid"], got["campaign_id"], strict=False))
    missing = [c for c in wanted if c not in ids]
    if missing:
        known = messages.select(c=messages.campaign_id.cast("string")).distinct().limit(21)
        names = sorted(known.to_pandas()["c"].dropna().tolist())
        more = ", ..." if len(names) > 20 else ""
        raise ValueError(
            f"message_test_campaigns names campaigns the messages do not have: {missing}; "
            f"the data's campaigns: {names[:20]}{more}"
        )
    rows = []
    for name, arms in tests.items():
        g = got[got["_cid"].isin(arms)]
        per_user = g.groupby("user_id")["_cid"].nunique()
        shared = set(per_user[per_user > 1].index)
        for arm in arms:
            users = set(g.loc[g["_cid"] == arm, "user_id"])
            rows.append(
                {"experiment_id": name, "variant": arm, "campaign_id": ids[arm],
                 "users": len(users), "overlap_users": len(users & shared),
                 "shared_users": len(shared)}
            )  # fmt: skip
    return pd.DataFrame(rows, columns=cols), {name: arms[0] for name, arms in tests.items()}
