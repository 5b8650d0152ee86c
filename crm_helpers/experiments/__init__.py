"""Experiment readouts: assignments, per-user metrics and sufficient statistics in the engine,
statistics on sufficient statistics, the readout tables, the decision memo.

>>> from crm_helpers.experiments import readout, analysis
>>> prep = readout.prepare(data, experiment_id="cart_abandoner_coupon", secondary_metrics=["revenue"])
>>> arms = analysis.arms_table(prep.stats, prep.control, primary="conversion", secondary=["revenue"])

Modules: :mod:`~crm_helpers.experiments.metrics` (metric names),
:mod:`~crm_helpers.experiments.core` (engine side: assignment hygiene, per-user metrics,
sufficient statistics), :mod:`~crm_helpers.experiments.statistics` (tests, intervals, CUPED,
Bayesian, sequential, SRM, corrections), :mod:`~crm_helpers.experiments.analysis` (readout
tables), :mod:`~crm_helpers.experiments.decision` (power, economics, decision rule),
:mod:`~crm_helpers.experiments.narrative` (memo, ``metrics.json`` records),
:mod:`~crm_helpers.experiments.split` (the planned split and the sample-ratio check),
:mod:`~crm_helpers.experiments.readout` (parameters to statistics in one call) and
:mod:`~crm_helpers.experiments.reference` (the pandas brute force used by the tests).
"""

from crm_helpers.experiments.metrics import ExperimentError, MetricSpec, parse_metric

__all__ = ["ExperimentError", "MetricSpec", "parse_metric"]
