"""Campaign performance: scorecards, send time, frequency and incrementality of CRM messages.

:mod:`~crm_helpers.campaigns.core` counts in the engine (Ibis: DuckDB and Spark),
:mod:`~crm_helpers.campaigns.analysis` turns the counts into tables with intervals and
tests, :mod:`~crm_helpers.campaigns.narrative` writes the report's sentences and
:mod:`~crm_helpers.campaigns.reference` is the brute force the tests compare with.
"""

from crm_helpers.campaigns.core import (
    Conversions,
    Responses,
    conversions_of,
    frequency_counts,
    hour_counts,
    message_facts,
    responses_of,
    scorecard_counts,
    weekly_counts,
)

__all__ = [
    "Conversions",
    "Responses",
    "conversions_of",
    "frequency_counts",
    "hour_counts",
    "message_facts",
    "responses_of",
    "scorecard_counts",
    "weekly_counts",
]
