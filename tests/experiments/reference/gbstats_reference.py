"""Golden values from GrowthBook's gbstats for tests/experiments/test_statistics.py.

gbstats pins old pandas/numpy, so it runs in a throwaway virtual environment, never in the
project's:

    python3 -m venv /tmp/gbs && /tmp/gbs/bin/pip install gbstats==0.8.0
    /tmp/gbs/bin/python tests/experiments/reference/gbstats_reference.py > \
        tests/experiments/reference/gbstats_golden.json

The cases are sufficient statistics (control ``a``, treatment ``b``); the output holds the
gbstats version and, per case, the relative-lift results of ``EffectBayesianABTest`` (flat
prior), ``SequentialTwoSidedTTest`` (tuning 5000) and ``TwoSidedTTest``, and ``check_srm``.
"""

import json
from importlib.metadata import version

from gbstats.bayesian.tests import EffectBayesianABTest, EffectBayesianConfig
from gbstats.frequentist.tests import (
    FrequentistConfig,
    SequentialConfig,
    SequentialTwoSidedTTest,
    TwoSidedTTest,
)
from gbstats.models.statistics import (
    ProportionStatistic,
    RatioStatistic,
    RegressionAdjustedStatistic,
    SampleMeanStatistic,
)
from gbstats.utils import check_srm

CASES = [
    {
        "name": "proportion",
        "kind": "proportion",
        "a": {"n": 9845, "sum": 2940},
        "b": {"n": 38985, "sum": 13252},
    },
    {
        "name": "proportion_small",
        "kind": "proportion",
        "a": {"n": 120, "sum": 14},
        "b": {"n": 130, "sum": 22},
    },
    {
        "name": "mean",
        "kind": "mean",
        "a": {"n": 9845, "sum": 360039.77, "sum_sq": 112361400.0},
        "b": {"n": 38985, "sum": 1480914.41, "sum_sq": 465750800.0},
    },
    {
        "name": "mean_negative_lift",
        "kind": "mean",
        "a": {"n": 500, "sum": 5200.0, "sum_sq": 310000.0},
        "b": {"n": 480, "sum": 4700.0, "sum_sq": 290000.0},
    },
    {
        "name": "ratio",
        "kind": "ratio",
        "a": {
            "n": 9845,
            "sum": 360039.77,
            "sum_sq": 112361400.0,
            "den_sum": 16793,
            "den_sum_sq": 51659,
            "num_den_sum": 1211947.57,
        },
        "b": {
            "n": 38985,
            "sum": 1480914.41,
            "sum_sq": 465750800.0,
            "den_sum": 68118,
            "den_sum_sq": 211768,
            "num_den_sum": 4966939.2,
        },
    },
    {
        "name": "cuped_mean",
        "kind": "cuped",
        "a": {
            "n": 9845,
            "sum": 360039.77,
            "sum_sq": 112361400.0,
            "pre_sum": 470465.8,
            "pre_sum_sq": 150234000.0,
            "cross_sum": 28928440.0,
        },
        "b": {
            "n": 38985,
            "sum": 1480914.41,
            "sum_sq": 465750800.0,
            "pre_sum": 1879284.0,
            "pre_sum_sq": 694844200.0,
            "cross_sum": 119537500.0,
        },
    },
]
SRM_CASES = [
    {"users": [11414, 10588], "weights": [0.5, 0.5]},
    {"users": [9845, 38985], "weights": [0.2, 0.8]},
    {"users": [7665, 7545, 7895], "weights": [1, 1, 1]},
]


def _stat(kind, s):
    if kind == "proportion":
        return ProportionStatistic(n=s["n"], sum=s["sum"])
    post = SampleMeanStatistic(n=s["n"], sum=s["sum"], sum_squares=s["sum_sq"])
    if kind == "mean":
        return post
    if kind == "ratio":
        den = SampleMeanStatistic(n=s["n"], sum=s["den_sum"], sum_squares=s["den_sum_sq"])
        return RatioStatistic(
            n=s["n"], m_statistic=post, d_statistic=den, m_d_sum_of_products=s["num_den_sum"]
        )
    pre = SampleMeanStatistic(n=s["n"], sum=s["pre_sum"], sum_squares=s["pre_sum_sq"])
    return RegressionAdjustedStatistic(
        n=s["n"],
        post_statistic=post,
        pre_statistic=pre,
        post_pre_sum_of_products=s["cross_sum"],
        theta=0,
    )


def main():
    out = {"gbstats_version": version("gbstats"), "cases": [], "srm": []}
    for case in CASES:
        k = case["kind"]
        bay = EffectBayesianABTest(
            _stat(k, case["a"]), _stat(k, case["b"]), EffectBayesianConfig()
        ).compute_result()
        seq = SequentialTwoSidedTTest(
            _stat(k, case["a"]), _stat(k, case["b"]), SequentialConfig()
        ).compute_result()
        tt = TwoSidedTTest(
            _stat(k, case["a"]), _stat(k, case["b"]), FrequentistConfig()
        ).compute_result()
        out["cases"].append(
            {
                **case,
                "bayesian": {
                    "chance_to_win": float(bay.chance_to_win),
                    "ci": [float(x) for x in bay.ci],
                    "risk": [float(x) for x in bay.risk],
                    "expected": float(bay.expected),
                },
                "sequential": {
                    "ci": [float(x) for x in seq.ci],
                    "p_value": float(seq.p_value),
                    "expected": float(seq.expected),
                },
                "ttest_relative": {
                    "ci": [float(x) for x in tt.ci],
                    "p_value": float(tt.p_value),
                    "expected": float(tt.expected),
                },
            }
        )
    for c in SRM_CASES:
        out["srm"].append({**c, "p_value": float(check_srm(c["users"], c["weights"]))})
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
