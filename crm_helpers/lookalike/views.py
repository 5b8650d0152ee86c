"""The lookalike report's tables as a reader sees them (display only; the frames, and
``metrics.json``, keep their raw names and values).

Each function takes a frame of :mod:`crm_helpers.lookalike` and returns an
``IPython.display.HTML`` built with :func:`crm_helpers.report.tables.to_html`: recall and
shares as percentages, lifts as multiples of random (``7.61``), indices against the
population (100 = like everyone), user counts of the segment overlap in a collapsed block.
"""

from __future__ import annotations

import pandas as pd

from crm_helpers.report import tables

__all__ = ["audience", "audit", "calibration", "profile", "segment_overlap"]


def _html(df: pd.DataFrame, **options):
    from IPython.display import HTML

    return HTML(tables.to_html(df, **options))


def audit(df: pd.DataFrame):
    """Held-out quality per model: recall at the audience size, lift in the top shares, AUC."""
    lifts = {c: f"Lift in the top {c.removeprefix('lift_at_')} (× random)" for c in df.columns}
    return _html(
        df,
        percent=[c for c in ("recall_at_n",) if c in df.columns],
        digits=2,
        labels={
            **{c: v for c, v in lifts.items() if c.startswith("lift_at_")},
            "model": "Model",
            "n": "Audience size",
            "held_out": "Seeds held out",
            "recall_at_n": "Held-out seeds found",
            "auc": "AUC",
        },
    )


def calibration(df: pd.DataFrame):
    """Per score decile: users, mean predicted chance, expected vs observed held-out seeds."""
    return _html(
        df,
        percent=["mean_proba"],
        labels={
            "decile": "Score decile",
            "mean_proba": "Mean predicted chance",
            "expected_held_out": "Held-out seeds expected",
            "observed_held_out": "Held-out seeds found",
        },
    )


def profile(df: pd.DataFrame):
    """Feature means of seeds, lookalikes and everyone, with indices (100 = everyone)."""
    cols = ["label", *[c for c in df.columns if c not in ("label", "feature")]]
    return _html(
        df[cols],
        labels={
            "label": "Feature",
            "seeds_mean": "Seeds' mean",
            "lookalikes_mean": "Lookalikes' mean",
            "population_mean": "Everyone's mean",
            "seeds_index": "Index of the seeds (100 = everyone)",
            "lookalikes_index": "Index of the lookalikes (100 = everyone)",
        },
    )


def segment_overlap(df: pd.DataFrame):
    """Share of seeds, lookalikes and everyone per segment; user counts collapsed."""
    return _html(
        df,
        percent=[c for c in df.columns if c.endswith("_share")],
        details=[c for c in df.columns if c.endswith("_users")],
        keys=["segmentation", "segment"],
        details_title="Users per segment",
        labels={
            "segmentation": "Segmentation",
            "population_share": "Share of everyone",
            "lookalikes_share": "Share of the lookalikes",
            "seeds_share": "Share of the seeds",
            "population_users": "Everyone",
            "lookalikes_users": "Lookalikes",
            "seeds_users": "Seeds",
            "lookalikes_index": "Index of the lookalikes (100 = everyone)",
            "seeds_index": "Index of the seeds (100 = everyone)",
        },
    )


def audience(df: pd.DataFrame):
    """The first users of the audience with their score, rank and decile."""
    return _html(
        df,
        digits=3,
        labels={"user_id": "User", "score": "Score", "decile": "Score decile"},
    )
