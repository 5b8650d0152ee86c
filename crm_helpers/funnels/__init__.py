"""Funnels: per-user funnel progress and funnel tables computed in the engine.

>>> from crm_helpers.funnels import Step, FunnelSpec, user_funnel, funnel_table
>>> spec = FunnelSpec(["visit", "product_view", Step("purchase", where={"category": "sports"})])
>>> funnel_table(data.events, spec)            # one row per step (pandas)

See :mod:`crm_helpers.funnels.core` for the exact semantics and
:mod:`crm_helpers.funnels.reference` for the brute-force reference used by the tests.
"""

from crm_helpers.funnels.core import (
    Exclusion,
    FunnelSpec,
    Step,
    funnel_table,
    time_to_convert_histogram,
    user_funnel,
    validate_spec,
)

__all__ = [
    "Exclusion",
    "FunnelSpec",
    "Step",
    "funnel_table",
    "time_to_convert_histogram",
    "user_funnel",
    "validate_spec",
]
