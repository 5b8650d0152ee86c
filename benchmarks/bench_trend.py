"""Funnel trend benchmark: every period's funnel in one query vs one query per period.

Prints a Markdown table: for each period (day, week, month), the wall time of
``crm_helpers.funnels.core.period_step_counts`` (one engine query for all periods) and of the
reference it replaced in ``analysis.trend_table`` (one ``user_funnel`` query per period,
still used for strict / exclusion / attempt funnels), in the same process, with a check
that both give the same counts.

    python benchmarks/bench_trend.py                          # data/synthetic (make data)
    python benchmarks/bench_trend.py --data DIR --repeat 3
    python benchmarks/bench_trend.py --engine spark --periods week
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

from crm_helpers import config, load
from crm_helpers.funnels import FunnelSpec
from crm_helpers.funnels.analysis import _period_counts_per_query
from crm_helpers.funnels.core import period_step_counts

STEPS = ["visit", "product_view", "add_to_cart", "checkout", "purchase"]


def one_pass(events, spec: FunnelSpec, period: str) -> pd.DataFrame:
    """All periods in one query."""
    wide = period_step_counts(events, spec, period, check_events=False).to_pandas()
    wide["period"] = pd.to_datetime(wide["period"]).astype("datetime64[us]")
    return wide.astype({c: "int64" for c in wide.columns if c != "period"})


def per_period(events, spec: FunnelSpec, period: str) -> pd.DataFrame:
    """One ``user_funnel`` query per period (entry restricted to the period)."""
    return _period_counts_per_query(events, spec, period)


def best_of(fn, repeat: int) -> tuple[float, pd.DataFrame]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=config.DEFAULT_DATA_DIR)
    p.add_argument("--engine", default="duckdb")
    p.add_argument("--periods", default="week,day,month")
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--window-days", type=float, default=7)
    args = p.parse_args(argv)
    data = load(args.data, engine=args.engine, validate=False)
    spec = FunnelSpec(STEPS, conversion_window_days=args.window_days)
    n_events = int(data.events.count().to_pandas())
    print(
        f"Funnel trend, {pd.Timestamp.now(tz='UTC'):%Y-%m-%d %H:%M} UTC, {args.engine}, "
        f"{n_events:,} events, {len(STEPS)}-step ordered funnel, {args.window_days:g}-day "
        f"window, best of {args.repeat}\n"
    )
    print(
        "| period | periods | one query (s) | one query per period (s) | speed-up | same counts |"
    )
    print("|---|---:|---:|---:|---:|---|")
    ok = True
    for period in args.periods.split(","):
        t1, a = best_of(lambda: one_pass(data.events, spec, period), args.repeat)  # noqa: B023
        t2, b = best_of(lambda: per_period(data.events, spec, period), args.repeat)  # noqa: B023
        same = a.reset_index(drop=True).equals(b.reset_index(drop=True))
        ok &= same
        print(f"| {period} | {len(a)} | {t1:.2f} | {t2:.2f} | {t2 / t1:.1f}x | {same} |")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
