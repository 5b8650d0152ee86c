"""Journeys: paths, transition graphs, step matrices and conformance computed in the engine.

>>> from crm_helpers.journeys import JourneySpec, prepare, transitions, paths
>>> prep = prepare(data, JourneySpec(collapse_repeats=True, session_gap_minutes=30))
>>> transitions(prep)                       # one row per edge (pandas)
>>> paths(prep, "product_view", depth=3)    # path counts after the first product_view
>>> flow(prep, "product_view", depth=5)     # both counts in one pass (large logs)

See :mod:`crm_helpers.journeys.core` for the journey semantics and the tie rule,
:mod:`crm_helpers.journeys.defaults` for the report's defaults derived from the data (the
session gap, the goal and its window, the AARRR stages) and
:mod:`crm_helpers.journeys.reference` for the brute-force reference used by the tests.
"""

from crm_helpers.journeys.core import CHURNED, END, START, JourneySpec, Prepared, prepare
from crm_helpers.journeys.graph import Flow, flow, loops_table, node_reach, transitions
from crm_helpers.journeys.paths import (
    between,
    conformance,
    conformance_table,
    goal_flags,
    node_users,
    paths,
    step_matrix,
    variants,
)

__all__ = [
    "CHURNED",
    "END",
    "Flow",
    "START",
    "JourneySpec",
    "Prepared",
    "between",
    "conformance",
    "conformance_table",
    "flow",
    "goal_flags",
    "loops_table",
    "node_reach",
    "node_users",
    "paths",
    "prepare",
    "step_matrix",
    "transitions",
    "variants",
]
