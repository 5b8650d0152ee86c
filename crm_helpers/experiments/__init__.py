"""Experiment readouts: assignments, per-user metrics and sufficient statistics in the engine,
statistics on sufficient statistics, the readout tables, the decision memo.

>>> from crm_helpers.experiments import readout
>>> r = readout(data, "cart_abandoner_coupon", metrics=["conversion", "revenue"])

See :mod:`crm_helpers.experiments.core` (engine side), :mod:`~crm_helpers.experiments.statistics`
(tests and intervals), :mod:`~crm_helpers.experiments.analysis` (readout tables) and
:mod:`~crm_helpers.experiments.reference` (the pandas brute force used by the tests).
"""

from crm_helpers.experiments.metrics import ExperimentError, MetricSpec, parse_metric

__all__ = ["ExperimentError", "MetricSpec", "parse_metric"]
