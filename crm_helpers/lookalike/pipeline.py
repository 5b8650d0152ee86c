"""From a data set and notebook parameters to an :class:`~crm_helpers.lookalike.analysis.Expansion`.

:func:`default_seed` chooses the seed when the parameter is empty; :func:`run` builds the
features (engine-side), the seeds, the population filter and the exclusions, and calls
:func:`~crm_helpers.lookalike.analysis.expand`.

Population filter: empty (everyone), or a rule in the seed grammar
(:func:`crm_helpers.lookalike.seeds.parse_seed`) except files — e.g. ``"app_open >= 1 in 90
days"`` (people active in the app) or ``"users.country == DE"``. Seeds outside the filtered
population count as missing from it.

Leakage rule (:mod:`crm_helpers.lookalike.leakage`): no feature sees the events that define
the seed. For a count rule the rule's event (resolved with the shared vocabulary:
``purchase`` finds ``buy``, ``order``, …) is **excluded from every feature** — totals,
per-event counts, recency, active days, shares and ratios are computed without its rows —
and a purchase rule counted on ``orders`` also removes the order features (``orders``,
``revenue``, ``avg_order_value``, ``order_recency_days``) and the purchase events. Otherwise
the model would only relearn the rule, the audit would be trivially perfect (held-out seeds
meet the rule by definition) and the audience would be "users who almost meet the rule".
For every seed kind, :func:`~crm_helpers.lookalike.analysis.expand` then leaves out any
feature that is nearly a copy of the seed label (univariate AUC above 0.95), with a note.
The lookalikes are found by everything else the seeds do and are.
"""

from __future__ import annotations

from dataclasses import dataclass

import ibis.expr.datatypes as dt
import pandas as pd

from crm_helpers.events import known_events
from crm_helpers.funnels.defaults import choose_steps
from crm_helpers.lookalike import seeds as _seeds
from crm_helpers.lookalike.analysis import Expansion, expand
from crm_helpers.lookalike.features import FeatureSpec, feature_frame, feature_spec

__all__ = ["LookalikeRun", "default_seed", "rule_features", "run"]

_ORDER_FEATURES = ("orders", "revenue", "avg_order_value", "order_recency_days")

#: The seed rule used when the data carry no seed list: frequent buyers.
FALLBACK_SEED = "purchase >= 3 in 90 days"


def default_seed(data) -> tuple[str, str]:
    """``(rule, how it was chosen)`` for an empty seed parameter.

    A true/false ``users`` column whose name contains ``seed`` is a seed list shipped with
    the data (``users.<column>``); otherwise frequent buyers, :data:`FALLBACK_SEED`, when the
    events have a ``purchase``; otherwise the users who did the last step of the funnel
    chosen from the data (:func:`crm_helpers.funnels.defaults.choose_steps`, e.g. ``buy`` in
    a ``pv, cart, buy`` clickstream) at least once in 90 days.
    """
    if data.has("users"):
        for col, typ in data.users.schema().items():
            if "seed" in col.lower() and isinstance(typ, dt.Boolean):
                return f"users.{col}", f"the true/false users column {col!r} marks a seed list"
    if not data.has("events") or "purchase" in known_events(data.events):
        return FALLBACK_SEED, "no seed list in the data: frequent buyers"
    try:
        goal = choose_steps(data)[0][-1]
    except ValueError:
        return FALLBACK_SEED, "no seed list in the data: frequent buyers"
    return (
        f"{goal} >= 1 in 90 days",
        f"no seed list and no purchase event: users who did {goal!r} (the last step of "
        "the funnel chosen from the data)",
    )


@dataclass
class LookalikeRun:
    """What :func:`run` built: the feature spec and frame, the rule texts and the expansion."""

    spec: FeatureSpec
    features: pd.DataFrame
    seed_rule: str
    population_size: int
    population_filtered_out: int
    excluded: int
    expansion: Expansion
    dropped_features: tuple[str, ...] = ()
    #: Event names no feature saw (they define the seed), and how the rule's event was found.
    excluded_events: tuple[str, ...] = ()
    seed_event_how: str = ""

    def leakage_guard(self) -> dict:
        """``metrics.json``'s ``leakage_guard``: what was kept from the features and why.

        ``rule`` (``"exclude seed-defining events from every feature"``), ``excluded_events``,
        ``excluded_orders`` (order features not built), ``near_copy_auc`` (the threshold) and
        ``near_copies`` (``[{feature, auc}]`` left out as copies of the seed label).
        """
        from crm_helpers.lookalike.leakage import NEAR_COPY_AUC

        nc = self.expansion.near_copies
        return {
            "rule": "exclude seed-defining events from every feature",
            "excluded_events": list(self.excluded_events),
            "excluded_orders": "orders" in self.dropped_features,
            "near_copy_auc": NEAR_COPY_AUC,
            "near_copies": []
            if nc is None
            else [{"feature": f, "auc": float(a)} for f, a in zip(nc.feature, nc.auc, strict=True)],
        }


def run(
    data,
    *,
    seed: str,
    lookback_days: int = 90,
    as_of: str = "",
    population_filter: str = "",
    expansion_size: float = 0.1,
    model: str = "pu",
    n_centroids: int = 3,
    holdout_share: float = 0.2,
    exclude_seeds: bool = True,
    opted_out_column: str = "",
    recent_purchase_days: int = 0,
    random_state: int = 0,
    progress: bool = False,
) -> LookalikeRun:
    """Build features, seeds, filter and exclusions, then :func:`expand` (see module doc)."""
    rule = _seeds.parse_seed(seed)
    exclude = {rule.column} if rule.kind == "column" else set()
    if opted_out_column:
        exclude.add(opted_out_column)
    source = _seeds.defining_events(data, rule)
    spec = feature_spec(
        data,
        lookback_days,
        as_of or None,
        exclude_attributes=exclude,
        exclude_events=source.events,
        exclude_orders=source.orders,
    )
    feats = feature_frame(data, spec)
    dropped = rule_features(rule, source)
    n_all = len(feats)
    if population_filter:
        frule = _seeds.parse_seed(population_filter)
        if frule.kind == "file":
            raise ValueError("the population filter is a rule, not a file of ids")
        keep = _seeds.match_seeds(_seeds.seed_ids(data, frule, spec.as_of), feats["user_id"])
        feats = feats.iloc[keep.index].reset_index(drop=True)
        if not len(feats):
            raise ValueError(f"the population filter {population_filter!r} keeps no user")
    excluded = _seeds.exclusion_ids(
        data,
        spec.as_of,
        opted_out_column=opted_out_column,
        recent_purchase_days=recent_purchase_days,
    )
    ids = _seeds.seed_ids(data, rule, spec.as_of)
    if rule.kind == "count" and not len(ids):
        from crm_helpers.events import known_events

        what = "orders" if source.orders else repr(source.events[0])
        raise ValueError(
            f"seed {rule.text!r} matches no user: nobody has {rule.min_count}+ {what} in the "
            f"{rule.days} days before {spec.as_of.date()}"
            + (f" ({source.how})" if source.how else "")
            + f"; the events the data have: {sorted(known_events(data.events))}"
        )
    ex = expand(
        feats,
        ids,
        size=expansion_size,
        model=model,
        holdout_share=holdout_share,
        exclude_ids=excluded,
        exclude_seeds=exclude_seeds,
        n_centroids=n_centroids,
        random_state=random_state,
        progress=progress,
    )
    return LookalikeRun(
        spec=spec,
        features=feats,
        seed_rule=rule.text,
        population_size=len(feats),
        population_filtered_out=n_all - len(feats),
        excluded=len(excluded),
        expansion=ex,
        dropped_features=dropped,
        excluded_events=source.events,
        seed_event_how=source.how,
    )


def rule_features(rule: _seeds.SeedRule, source: _seeds.SeedSource) -> tuple[str, ...]:
    """Feature names a count rule keeps out (they would see its events): ``count:<event>``
    of each excluded event and, for a purchase rule on ``orders``, the order features."""
    if rule.kind != "count":
        return ()
    names = tuple(f"count:{e}" for e in source.events)
    return names + (_ORDER_FEATURES if source.orders else ())
