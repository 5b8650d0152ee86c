"""Lookalike audience expansion: seeds -> the most similar users, with an audited quality.

>>> from crm_helpers.lookalike import pipeline
>>> res = pipeline.run(data, seed="purchase >= 3 in 90 days", expansion_size=0.1)
>>> res.expansion.audience            # user_id, score, rank, decile

Modules: :mod:`~.features` (engine-side features, Ibis) and :mod:`~.reference` (pandas),
:mod:`~.seeds` (rules, files, exclusions), :mod:`~.leakage` (no feature sees what defines
the seed: a rule's events are excluded from every feature; near copies of the label are
left out), :mod:`~.models` (PU classifier, centroid and
random baselines), :mod:`~.audit` (held-out recall, lift, AUC, calibration),
:mod:`~.analysis` (the expansion and export), :mod:`~.profile` (profiles, drivers),
:mod:`~.pipeline` (from notebook parameters), :mod:`~.narrative` (summary, metrics).
"""

from crm_helpers.lookalike.analysis import Expansion, expand, export, holdout_assignments
from crm_helpers.lookalike.features import FeatureSpec, feature_frame, feature_spec, feature_table
from crm_helpers.lookalike.models import CentroidSimilarity, PUClassifier, RandomScorer
from crm_helpers.lookalike.seeds import parse_seed, seed_ids

__all__ = [
    "CentroidSimilarity",
    "Expansion",
    "FeatureSpec",
    "PUClassifier",
    "RandomScorer",
    "expand",
    "export",
    "feature_frame",
    "feature_spec",
    "feature_table",
    "holdout_assignments",
    "parse_seed",
    "seed_ids",
]
