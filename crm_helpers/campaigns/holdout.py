"""What a campaign really added: conversions of its recipients against a randomized holdout.

Semantics
---------
*Holdout campaigns* (:func:`holdout_candidates`). An experiment (``assignments``) holds out
a campaign when its arms split exactly into recipients and non-recipients: every user of
some arm(s) got at least one message of the campaign, no user of the other arm(s) got one,
and a *control* arm is a non-recipient arm whose users got no message of any campaign that
reached a whole arm of that experiment (so a three-arm message test, where every arm gets
its own message, has no control). Each (experiment, campaign, control) that satisfies this
is a candidate; a default is *derived* only when exactly one experiment and one control
qualify.

*Incremental effect* (:func:`incremental_counts`, :func:`incremental_table`). Per user of
the treated arm(s) and of the control: converted = 1 when the user has a conversion in
``(t0, t0 + attribution_days]``, where ``t0`` is the user's first message of the campaign
(treated) or the user's assignment time (control); revenue = the revenue of those
conversions. The difference of the arms' conversion shares and of their revenue per user
(treated minus control) comes from :func:`crm_helpers.experiments.statistics.compare`
(the binary metric with the normal reference, revenue with Welch's t), scaled per 1000
recipients; incremental conversions = difference x treated users, with its interval.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from crm_helpers import events as _ev
from crm_helpers.engine import epoch_us as _epoch_us
from crm_helpers.exact import exact_sum
from crm_helpers.experiments import statistics as S

__all__ = [
    "INCREMENTAL_FIELDS",
    "holdout_candidates",
    "holdout_rows",
    "message_tests",
    "incremental_counts",
    "incremental_report",
    "incremental_table",
]

#: The fields of ``metrics.json`` ``incremental`` (an interface: never rename).
INCREMENTAL_FIELDS: tuple[str, ...] = (
    "campaign_id",
    "control_variant",
    "treated_rate",
    "control_rate",
    "incremental_per_1000",
    "ci_low",
    "ci_high",
)

US_PER_DAY = 86_400 * 1_000_000


def _coverage(messages: ir.Table, assignments: ir.Table) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Arm sizes (``experiment_id, variant, n``) and, per arm and campaign, the arm's users
    who got at least one message of it (``experiment_id, variant, campaign_id, k``)."""
    a = assignments.select("experiment_id", "user_id", "variant").distinct()
    sizes = a.group_by(["experiment_id", "variant"]).aggregate(n=a.count()).to_pandas()
    got = messages.select("user_id", "campaign_id").distinct()
    j = a.join(got, a.user_id == got.user_id)
    cov = j.group_by(["experiment_id", "variant", "campaign_id"]).aggregate(k=j.count())
    return sizes, cov.to_pandas()


def message_tests(messages: ir.Table, assignments: ir.Table) -> pd.DataFrame:
    """Experiments that test messages: every arm got its own campaign, entirely.

    An experiment with two or more arms is a message test when each arm has a campaign that
    reached every user of that arm and no user of the other arms. Returns
    ``experiment_id, variant, campaign_id, users`` (one row per arm; the first such
    campaign of an arm by id), sorted.
    """
    sizes, cov = _coverage(messages, assignments)
    rows = []
    for exp, arms in sizes.groupby("experiment_id", sort=True):
        n = dict(zip(arms["variant"], arms["n"].astype(int), strict=True))
        if len(n) < 2:
            continue
        ce = cov[cov["experiment_id"] == exp]
        own = {}
        for camp, g in ce.groupby("campaign_id", sort=True):
            k = dict(zip(g["variant"], g["k"].astype(int), strict=True))
            full = [v for v in n if k.get(v, 0) == n[v]]
            if len(full) == 1 and all(k.get(v, 0) == 0 for v in n if v != full[0]):
                own.setdefault(full[0], camp)
        if set(own) == set(n):
            for v in sorted(n, key=str):
                rows.append({"experiment_id": exp, "variant": v, "campaign_id": own[v],
                             "users": n[v]})  # fmt: skip
    return pd.DataFrame(rows, columns=["experiment_id", "variant", "campaign_id", "users"])


def holdout_candidates(messages: ir.Table, assignments: ir.Table) -> pd.DataFrame:
    """Every (experiment, campaign, control) that is a randomized no-message holdout.

    Returns ``experiment_id, campaign_id, control_variant, treated_variants`` (a list),
    ``treated_users, control_users``; one row per candidate, sorted.
    """
    sizes, cov = _coverage(messages, assignments)
    cols = ["experiment_id", "campaign_id", "control_variant", "treated_variants",
            "treated_users", "control_users"]  # fmt: skip
    rows = []
    for exp, arms in sizes.groupby("experiment_id", sort=True):
        n = dict(zip(arms["variant"], arms["n"].astype(int), strict=True))
        if len(n) < 2:
            continue
        ce = cov[cov["experiment_id"] == exp]
        full = ce[ce["k"].to_numpy() == ce["variant"].map(n).to_numpy()]
        exp_campaigns = set(full["campaign_id"])
        reached = {v: set(ce.loc[ce["variant"] == v, "campaign_id"]) for v in n}
        for camp in sorted(exp_campaigns, key=str):
            k = {v: int(ce.loc[(ce["variant"] == v) & (ce["campaign_id"] == camp), "k"].sum())
                 for v in n}  # fmt: skip
            if any(0 < k[v] < n[v] for v in n):
                continue
            treated = sorted((v for v in n if k[v] == n[v]), key=str)
            for v in sorted((v for v in n if k[v] == 0), key=str):
                if reached[v] & exp_campaigns:
                    continue
                rows.append(
                    {"experiment_id": exp, "campaign_id": camp, "control_variant": v,
                     "treated_variants": treated, "treated_users": sum(n[t] for t in treated),
                     "control_users": n[v]}
                )  # fmt: skip
    return pd.DataFrame(rows, columns=cols)


def incremental_counts(
    messages: ir.Table,
    assignments: ir.Table,
    conversions: ir.Table,
    experiment_id: str,
    campaign_id,
    control_variant: str,
    attribution_days: float = 3.0,
) -> pd.DataFrame:
    """Sufficient statistics per arm (``treated`` pools the treated variants) in the engine.

    Returns ``arm`` (``"treated"``/``"control"``), ``users, converted, revenue,
    revenue_sq`` (revenue per user summed and squared-summed).
    """
    backend = _ev.backend_name(messages)
    a = assignments.filter(assignments.experiment_id == experiment_id)
    a = a.group_by(["user_id", "variant"]).aggregate(_at=a.assigned_at.min())
    m = messages.filter(messages.campaign_id == campaign_id)
    first = m.group_by("user_id").aggregate(_sent=m.sent_at.min())
    u = a.left_join(first, a.user_id == first.user_id).drop("user_id_right")
    is_ctl = u.variant == control_variant
    u = u.filter(is_ctl | u._sent.notnull())
    u = u.mutate(
        arm=is_ctl.ifelse("control", "treated"),
        _t0=_epoch_us(is_ctl.ifelse(u._at, u._sent), backend),
    )
    rev = (
        conversions.revenue.cast("float64")
        if "revenue" in conversions.columns
        else ibis.null("float64")
    )
    c = conversions.select(cu=conversions.user_id, _ct=_epoch_us(conversions.ts, backend), _r=rev)
    w = int(round(attribution_days * US_PER_DAY))
    jj = u.join(c, [u.user_id == c.cu, c._ct > u._t0, c._ct <= u._t0 + w])
    per = jj.group_by("user_id").aggregate(_k=jj.count(), _rv=exact_sum(jj._r))
    uu = u.left_join(per, u.user_id == per.user_id)
    rv = uu._rv.fill_null(0.0)
    out = uu.group_by("arm").aggregate(
        users=uu.count(),
        converted=(uu._k.fill_null(0) > 0).ifelse(1, 0).sum(),
        revenue=exact_sum(rv),
        revenue_sq=exact_sum(rv * rv),
    )
    df = out.to_pandas().set_index("arm").reindex(["treated", "control"]).reset_index()
    return df.fillna({"users": 0, "converted": 0, "revenue": 0.0, "revenue_sq": 0.0})


def incremental_table(
    counts: pd.DataFrame,
    campaign_id,
    control_variant: str,
    attributed: float | None = None,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """The incremental effect of one holdout campaign (module docstring), one row.

    Parameters
    ----------
    counts
        :func:`incremental_counts`.
    attributed
        The campaign's last-touch attributed conversions, shown beside the effect.

    Returns
    -------
    pandas.DataFrame
        ``campaign_id, control_variant, treated_users, control_users, treated_rate,
        control_rate, incremental_per_1000, ci_low, ci_high, p_value,
        incremental_conversions, conversions_ci_low, conversions_ci_high,
        revenue_per_1000, revenue_ci_low, revenue_ci_high, attributed_conversions``.
    """
    r = counts.set_index("arm")
    arms = {}
    for arm in ("control", "treated"):
        n, x = float(r.loc[arm, "users"]), float(r.loc[arm, "converted"])
        conv = S.MeanStats(n=n, sum=x, sum_sq=x, binary=True)
        rev = S.MeanStats(n=n, sum=float(r.loc[arm, "revenue"]),
                          sum_sq=float(r.loc[arm, "revenue_sq"]))  # fmt: skip
        arms[arm] = (n, conv, rev)
    (nc, cc, rc), (nt, ct, rt) = arms["control"], arms["treated"]
    cmp = S.compare(cc, ct, alpha=alpha)
    rcmp = S.compare(rc, rt, alpha=alpha)
    f = lambda v: float(np.asarray(v, float))  # noqa: E731
    row = {
        "campaign_id": campaign_id,
        "control_variant": control_variant,
        "treated_users": int(nt),
        "control_users": int(nc),
        "treated_rate": f(ct.mean),
        "control_rate": f(cc.mean),
        "incremental_per_1000": 1000.0 * f(cmp.diff),
        "ci_low": 1000.0 * f(cmp.diff_ci_low),
        "ci_high": 1000.0 * f(cmp.diff_ci_high),
        "p_value": f(cmp.p_value),
        "incremental_conversions": nt * f(cmp.diff),
        "conversions_ci_low": nt * f(cmp.diff_ci_low),
        "conversions_ci_high": nt * f(cmp.diff_ci_high),
        "revenue_per_1000": 1000.0 * f(rcmp.diff),
        "revenue_ci_low": 1000.0 * f(rcmp.diff_ci_low),
        "revenue_ci_high": 1000.0 * f(rcmp.diff_ci_high),
        "attributed_conversions": attributed,
    }
    return pd.DataFrame([row])


def holdout_rows(
    candidates: pd.DataFrame, experiment_id: str, control_variant: str = ""
) -> pd.DataFrame:
    """The candidates of one experiment (and control, when given); ``ValueError`` if none.

    Ids are compared as text (parameters are strings, ids in the data may be numbers).
    """
    rows = candidates[candidates["experiment_id"].astype(str) == str(experiment_id)]
    if control_variant:
        rows = rows[rows["control_variant"].astype(str) == str(control_variant)]
    if not len(rows):
        known = sorted(
            {
                f"{e} / {v}"
                for e, v in zip(
                    candidates["experiment_id"], candidates["control_variant"], strict=True
                )
            }
        )
        raise ValueError(
            f"experiment {experiment_id!r} (control {control_variant or 'any'!r}) holds out no "
            "campaign: no arm of it got no message of a campaign another arm got entirely; "
            f"holdouts in the data (experiment / control): {known or 'none'}"
        )
    return rows


def incremental_report(
    messages: ir.Table,
    assignments: ir.Table,
    conversions: ir.Table,
    rows: pd.DataFrame,
    attributed: dict | None = None,
    attribution_days: float = 3.0,
) -> pd.DataFrame:
    """:func:`incremental_table` for every campaign of ``rows`` (:func:`holdout_rows`, one
    experiment); ``attributed`` maps campaign -> last-touch attributed conversions."""
    parts = []
    for _, r in rows.iterrows():
        ic = incremental_counts(
            messages, assignments, conversions, r["experiment_id"], r["campaign_id"],
            r["control_variant"], attribution_days,
        )  # fmt: skip
        att = (attributed or {}).get(r["campaign_id"])
        parts.append(incremental_table(ic, r["campaign_id"], r["control_variant"], att))
    return pd.concat(parts, ignore_index=True)


def _per_campaign(scorecard: pd.DataFrame) -> pd.DataFrame:
    """The scorecard indexed by ``campaign_id``, rows of one campaign's channels summed."""
    if not scorecard["campaign_id"].duplicated().any():
        return scorecard.set_index("campaign_id")
    counts = [c for c in ("sent", "clicked", "converted") if c in scorecard.columns]
    sc = scorecard.groupby("campaign_id", sort=False)[counts].sum(min_count=1)
    sent = pd.to_numeric(sc["sent"], errors="coerce").astype(float)
    for rate, num in (("click_rate", "clicked"), ("conversion_rate", "converted")):
        sc[rate] = (
            pd.to_numeric(sc[num], errors="coerce").astype(float) / sent if num in sc else np.nan
        )
    return sc


def message_test_table(
    tests: pd.DataFrame, scorecard: pd.DataFrame, controls: dict[str, str] | None = None
) -> pd.DataFrame:
    """Each arm of each message test with its campaign's rates, against the test's control.

    Parameters
    ----------
    tests
        :func:`message_tests`.
    scorecard
        :func:`crm_helpers.campaigns.analysis.rates_table` of the campaign counts: one row
        per campaign, or per campaign and channel (a campaign sent on several channels is
        summed over them, its rates recomputed from the sums).
    controls
        ``{experiment_id: variant}``: the control arm of a test (default: the arm named
        ``control``, else the first by name).

    Returns
    -------
    pandas.DataFrame
        ``experiment_id, variant, campaign_id, sent, click_rate, conversion_rate`` and, per
        rate, ``<rate>_diff, <rate>_ci_low, <rate>_ci_high, <rate>_p`` against the control
        arm (``controls``, else the arm named ``control``, else the first by name; messages
        as units, binary
        metric of :func:`crm_helpers.experiments.statistics.compare`), ``<rate>_p_holm``
        (Holm across the arms of one test) and ``baseline`` (the control arm).
    """
    cols = ["experiment_id", "variant", "campaign_id", "sent", "click_rate", "conversion_rate"]
    rates = {"click_rate": "clicked", "conversion_rate": "converted"}
    out = []
    sc = _per_campaign(scorecard)
    for exp, arms in tests.groupby("experiment_id", sort=True):
        t = arms.merge(sc, left_on="campaign_id", right_index=True, how="left")
        names = t["variant"].astype(str).tolist()
        named = (controls or {}).get(exp)
        if named is not None:
            ctl = names.index(str(named))
        else:
            ctl = names.index("control") if "control" in names else 0
        for rate, num in rates.items():
            n = pd.to_numeric(t["sent"], errors="coerce").to_numpy(float)
            x = pd.to_numeric(t[num], errors="coerce").to_numpy(float)
            a = S.MeanStats(n=n[ctl], sum=x[ctl], sum_sq=x[ctl], binary=True)
            b = S.MeanStats(n=n, sum=x, sum_sq=x, binary=True)
            c = S.compare(a, b)
            diff = np.where(np.arange(len(t)) == ctl, np.nan, np.asarray(c.diff, float))
            keep = ~np.isnan(diff)
            t[f"{rate}_diff"] = diff
            t[f"{rate}_ci_low"] = np.where(keep, c.diff_ci_low, np.nan)
            t[f"{rate}_ci_high"] = np.where(keep, c.diff_ci_high, np.nan)
            t[f"{rate}_p"] = np.where(keep, c.p_value, np.nan)
            t[f"{rate}_p_holm"] = S.adjust_p_values(t[f"{rate}_p"].to_numpy(float), "holm")
        t["experiment_id"] = exp
        t["baseline"] = np.arange(len(t)) == ctl
        out.append(t)
    extra = [f"{r}{s}" for r in rates for s in ("_diff", "_ci_low", "_ci_high", "_p", "_p_holm")]
    extra.append("baseline")
    if not out:
        return pd.DataFrame(columns=cols + extra)
    return pd.concat(out, ignore_index=True)[cols + extra]
