"""Segments: RFM, health states, buy-till-you-die models, migration, retention, clusters.

>>> from crm_helpers.segments import rfm_table, segment_summary
>>> rfm = rfm_table(data.orders, "2025-06-29")          # per customer, in the engine
>>> segment_summary(rfm)                                  # one row per segment (pandas)

See :mod:`crm_helpers.segments.core` for the exact RFM / summary semantics,
:mod:`crm_helpers.segments.models` for BG/NBD and Gamma-Gamma,
:mod:`crm_helpers.segments.model_states` for the model's health states (thresholds chosen on
the calibration period, checked on the holdout),
:mod:`crm_helpers.segments.states` for the rule states and the migration between states or
RFM segments, and
:mod:`crm_helpers.segments.reference` for the pandas reference used by the tests.
"""

from crm_helpers.segments.core import (
    DEFAULT_RULES,
    SegmentRule,
    btyd_summary,
    parse_rules,
    rfm_table,
    segment_summary,
)
from crm_helpers.segments.models import BetaGeoFitter, GammaGammaFitter

__all__ = [
    "DEFAULT_RULES",
    "BetaGeoFitter",
    "GammaGammaFitter",
    "SegmentRule",
    "btyd_summary",
    "parse_rules",
    "rfm_table",
    "segment_summary",
]
