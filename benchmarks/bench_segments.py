"""Segment benchmarks: RFM and the feature table in the engine vs hand-written DuckDB SQL,
and the BG/NBD fit time per 100k customers, with peak memory of the process tree.

    python benchmarks/bench_segments.py --users 1M          # the issue's size (quiet machine)
    python benchmarks/bench_segments.py --data data/synthetic --repeat 1

Each step runs ``--repeat`` times (best wall time kept, with the CPU seconds of that run:
``getrusage`` of this process, all its threads, DuckDB's included, which other jobs on a
shared machine disturb less than the wall time; both ratios are printed). The helper path is
exactly what the notebook runs (``crm_helpers.segments.core.rfm_table`` + ``segment_summary``,
``clusters.feature_table``, ``analysis.fit_models``); the hand-written SQL computes the same
RFM segment summary on the same Parquet files in one DuckDB query (all three scores, as the
helper computes them) and the cluster feature table in two (the top 8 categories, then every
feature per user), and the results are checked equal (exit status 1 if not). The helper reads through the
loaded view (contract names, types, naive-UTC timestamps), the SQL the raw file; both run on
a ``crm_helpers.engine.connect`` DuckDB connection (the same memory bound), and the helper's
time includes its pandas result (sorted by user, no missing values). Peak memory is the largest RSS of this process and its children, polled
every 50 ms with psutil.

*What each side reads* (printed with the table). The feature table runs three ways: the
Ibis path and the hand-written SQL read the raw Parquet files (events, orders, messages);
the kernel path (``clusters.feature_table(prepared=segments.kernel.prepared_inputs(data))``,
what runs on the embedded engine) reads the events from the prepared event store, built
once per data set beforehand (its build time is printed: it is paid once and shared by every
report of the data set; only its ``user``, ``t`` and ``category`` columns are read, part by
part, inside the timed run), and orders and messages from the raw files.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np
import pandas as pd
from procmem import TreePoller  # noqa: E402


def PeakRSS() -> TreePoller:  # noqa: N802 - kept the name the code below uses
    """Peak RSS of this process tree, polled every 50 ms (benchmarks/procmem.py)."""
    return TreePoller(os.getpid(), 0.05)


RFM_SQL = """
WITH o AS (
  SELECT user_id, revenue, CAST(floor(epoch_us(ts) / 86400000000) AS BIGINT) AS day
  FROM read_parquet('{orders}') WHERE CAST(floor(epoch_us(ts) / 86400000000) AS BIGINT) <= {end}
), per AS (
  SELECT user_id,
         SUM(CASE WHEN revenue >= 0 THEN 1 ELSE 0 END) AS frequency,
         SUM(revenue) AS monetary,
         {end} - MAX(CASE WHEN revenue >= 0 THEN day END) AS recency_days
  FROM o GROUP BY user_id HAVING SUM(CASE WHEN revenue >= 0 THEN 1 ELSE 0 END) > 0
), s AS (
  SELECT *,
    1 + (5 * (2 * (RANK() OVER (ORDER BY recency_days DESC) - 1)
              + COUNT(*) OVER (PARTITION BY recency_days))) // (2 * COUNT(*) OVER ()) AS r,
    1 + (5 * (2 * (RANK() OVER (ORDER BY frequency) - 1)
              + COUNT(*) OVER (PARTITION BY frequency))) // (2 * COUNT(*) OVER ()) AS f,
    1 + (5 * (2 * (RANK() OVER (ORDER BY monetary) - 1)
              + COUNT(*) OVER (PARTITION BY monetary))) // (2 * COUNT(*) OVER ()) AS m
  FROM per
), seg AS (
  SELECT *, CASE {cases} ELSE 'Other' END AS segment FROM s
)
SELECT segment, COUNT(*) AS customers, SUM(monetary) AS revenue, SUM(frequency) AS purchases,
       SUM(m) AS m_total
FROM seg GROUP BY segment
"""


FEATURES_SQL = """
WITH e AS (
  SELECT user_id, {event_cols} CAST(floor(epoch_us(ts) / 86400000000) AS BIGINT) AS day
  FROM read_parquet('{events}')
), ev AS (
  SELECT user_id, COUNT(*)::DOUBLE AS events, COUNT(DISTINCT day)::DOUBLE AS active_days,
         {event_aggs}
         MAX(day) AS last
  FROM e WHERE day <= {end} GROUP BY user_id
), o AS (
  SELECT user_id, revenue, {order_cols} CAST(floor(epoch_us(ts) / 86400000000) AS BIGINT) AS day
  FROM read_parquet('{orders}')
), od AS (
  SELECT user_id,
         SUM(CASE WHEN revenue >= 0 THEN 1.0 ELSE 0.0 END) AS orders,
         SUM(revenue)::DOUBLE AS revenue,
         {order_aggs}
         MAX(CASE WHEN revenue >= 0 THEN day END) AS last
  FROM o WHERE day <= {end} GROUP BY user_id
), ms AS ({messages_sql}
), u AS (SELECT user_id FROM ev UNION SELECT user_id FROM od)
SELECT u.user_id,
       COALESCE(ev.events, 0) AS events, COALESCE(ev.active_days, 0) AS active_days,
       {event_selects}
       COALESCE(od.orders, 0) AS orders, COALESCE(od.revenue, 0) AS revenue,
       {order_selects}
       {message_selects}
       COALESCE(({end} - GREATEST(ev.last, od.last))::DOUBLE, 0) AS recency_days
FROM u LEFT JOIN ev USING (user_id) LEFT JOIN od USING (user_id) LEFT JOIN ms USING (user_id)
"""

MESSAGES_SQL = """
  SELECT user_id, AVG(CASE WHEN opened_at IS NOT NULL THEN 1.0 ELSE 0.0 END) AS open_rate,
         AVG(CASE WHEN clicked_at IS NOT NULL THEN 1.0 ELSE 0.0 END) AS click_rate
  FROM read_parquet('{messages}')
  WHERE CAST(floor(epoch_us(sent_at) / 86400000000) AS BIGINT) <= {end} GROUP BY user_id"""

TOP_CATEGORIES_SQL = """
SELECT category, COUNT(*) AS n FROM read_parquet('{orders}')
WHERE revenue >= 0 AND category IS NOT NULL
  AND CAST(floor(epoch_us(ts) / 86400000000) AS BIGINT) <= {end}
GROUP BY category ORDER BY n DESC, category LIMIT 8
"""

TOP_EVENT_CATEGORIES_SQL = """
SELECT category, COUNT(*) AS n FROM read_parquet('{events}')
WHERE category IS NOT NULL AND CAST(floor(epoch_us(ts) / 86400000000) AS BIGINT) <= {end}
GROUP BY category ORDER BY n DESC, category LIMIT 8
"""


def _q(v: str) -> str:
    return "'" + str(v).replace("'", "''") + "'"


def features_sql(
    con, files: dict[str, str], columns: set[str], end: int, event_columns: set[str] = frozenset()
) -> pd.DataFrame:
    """The cluster feature table (``clusters.feature_table``) by hand in DuckDB SQL.

    Two queries, both timed: the 8 most frequent event categories (or, when events have no
    category, purchase categories), then one query for every feature (the same definitions
    as the helper's module docstring).
    """
    from crm_helpers.segments.clusters import _safe

    event_cols, eaggs, eselects = "", [], []
    browsing = "category" in event_columns
    if browsing:
        event_cols = "category, "
        top = con.raw_sql(TOP_EVENT_CATEGORIES_SQL.format(events=files["events"], end=end)).df()
        ncat = "NULLIF(SUM(CASE WHEN category IS NOT NULL THEN 1.0 ELSE 0.0 END), 0)"
        for v in top["category"]:
            name = f"browse_{_safe(str(v))}"
            eaggs.append(
                f"SUM(CASE WHEN category = {_q(v)} THEN 1.0 ELSE 0.0 END) / {ncat} AS {name}"
            )
            eselects.append(f"COALESCE(ev.{name}, 0) AS {name}")
    order_cols, aggs, selects = "", [], []
    buys = "NULLIF(SUM(CASE WHEN revenue >= 0 THEN 1.0 ELSE 0.0 END), 0)"
    if "coupon" in columns:
        order_cols += "coupon, "
        aggs.append("SUM(CASE WHEN revenue >= 0 AND coupon IS NOT NULL AND coupon <> '' "
                    f"THEN 1.0 ELSE 0.0 END) / {buys} AS coupon_share")  # fmt: skip
        selects.append("COALESCE(od.coupon_share, 0) AS coupon_share")
    if "category" in columns and not browsing:
        order_cols += "category, "
        top = con.raw_sql(TOP_CATEGORIES_SQL.format(orders=files["orders"], end=end)).df()
        for v in top["category"]:
            name = f"cat_{_safe(str(v))}"
            aggs.append(f"SUM(CASE WHEN revenue >= 0 AND category = {_q(v)} THEN 1.0 ELSE 0.0 END)"
                        f" / {buys} AS {name}")  # fmt: skip
            selects.append(f"COALESCE(od.{name}, 0) AS {name}")
    if "messages" in files:
        msql = MESSAGES_SQL.format(messages=files["messages"], end=end)
        msel = "COALESCE(ms.open_rate, 0) AS open_rate, COALESCE(ms.click_rate, 0) AS click_rate,"
    else:
        msql, msel = "SELECT NULL::BIGINT AS user_id WHERE false", ""
    sql = FEATURES_SQL.format(
        events=files["events"], orders=files["orders"], end=end, order_cols=order_cols,
        event_cols=event_cols, event_aggs="".join(a + ",\n         " for a in eaggs),
        event_selects="".join(x + ", " for x in eselects),
        order_aggs="".join(a + ",\n         " for a in aggs), messages_sql=msql,
        order_selects="".join(x + ", " for x in selects), message_selects=msel,
    )  # fmt: skip
    return con.raw_sql(sql).df()


def same_features(helper: pd.DataFrame, ref: pd.DataFrame) -> bool:
    """Equal user sets, column sets and values (relative 1e-9) after sorting by user."""
    if set(helper.columns) != set(ref.columns) or len(helper) != len(ref):
        return False
    a = helper.sort_values("user_id").reset_index(drop=True)
    b = ref.sort_values("user_id").reset_index(drop=True)[list(a.columns)]
    if not (a["user_id"].astype(str).to_numpy() == b["user_id"].astype(str).to_numpy()).all():
        return False
    cols = [c for c in a.columns if c != "user_id"]
    return bool(
        np.allclose(a[cols].to_numpy(float), b[cols].to_numpy(float), rtol=1e-9, atol=1e-12)
    )


def _cases() -> str:
    from crm_helpers.segments.core import DEFAULT_RULES

    return " ".join(
        f"WHEN r BETWEEN {x.r[0]} AND {x.r[1]} AND f BETWEEN {x.f[0]} AND {x.f[1]} "
        f"THEN '{x.segment.replace(chr(39), chr(39) * 2)}'"
        for x in DEFAULT_RULES
    )


def _best(fn, repeat: int):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def _cpu() -> float:
    """CPU seconds of this process so far, all threads (user + system, ``getrusage``)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _best_cpu(fn, repeat: int, before=None):
    """Best wall time, the CPU seconds of this process (all its threads) in that run, result.

    The CPU time is less sensitive than the wall time to other jobs on the machine.
    ``before`` (untimed) runs before each repeat.
    """
    best, cpu, out = float("inf"), float("nan"), None
    for _ in range(repeat):
        if before is not None:
            before()
        c, t = _cpu(), time.perf_counter()
        out = fn()
        wall, used = time.perf_counter() - t, _cpu() - c
        if wall < best:
            best, cpu = wall, used
    return best, cpu, out


def _src(files: Path) -> str:
    """A read_parquet pattern for a table's file or partitioned directory."""
    return str(files if files.is_file() else files / "**" / "*.parquet")


def parse_size(text: str) -> int:
    t = text.strip().upper()
    mult = {"K": 1_000, "M": 1_000_000}.get(t[-1], 1)
    return int(float(t[:-1] if t[-1] in "KM" else t) * mult)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, help="an existing data directory (else one is generated)")
    p.add_argument("--users", default="100k", help="users of the generated world (e.g. 1M)")
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--no-features", action="store_true", help="skip the feature table")
    args = p.parse_args(argv)

    from crm_helpers import load
    from crm_helpers.engine import connect
    from crm_helpers.segments import analysis, core
    from crm_helpers.segments import clusters as cl

    tmp = None
    data_dir = args.data
    if data_dir is None:
        from crm_helpers.synth import SynthConfig, generate_to

        tmp = tempfile.TemporaryDirectory(prefix="bench_segments_")
        data_dir = Path(tmp.name)
        t = time.perf_counter()
        generate_to(SynthConfig(n_users=parse_size(args.users), seed=1), data_dir)
        print(f"generated {args.users} users in {time.perf_counter() - t:.1f} s -> {data_dir}")
    rows = []
    with PeakRSS() as mem:
        data = load(data_dir, require=["orders"], validate=False)
        orders = data.orders
        as_of = core.last_order_date(orders)
        n_orders = orders.count().execute()

        def helper():
            return core.segment_summary(core.rfm_table(orders, as_of))

        t_helper, c_helper, summary = _best_cpu(helper, args.repeat)
        con = connect("duckdb")
        files = data.files["orders"]
        src = _src(files)
        sql = RFM_SQL.format(orders=src, end=core.day_number(as_of), cases=_cases())
        t_sql, c_sql, ref = _best_cpu(lambda: con.raw_sql(sql).df(), args.repeat)
        ref = ref.set_index("segment").reindex(summary["segment"]).fillna(0)
        same = bool(
            (ref["customers"].astype(int).to_numpy() == summary["customers"].to_numpy()).all()
            and np.allclose(
                ref["revenue"].to_numpy(float), summary["revenue"].to_numpy(), rtol=1e-9
            )
        )
        rows.append(("RFM segment summary (helper; raw orders file)", t_helper,
                     f"{t_helper / t_sql:.2f}x SQL (CPU {c_helper:.2f} s: "
                     f"{c_helper / c_sql:.2f}x SQL)"))  # fmt: skip
        rows.append(("RFM segment summary (hand-written SQL; raw orders file)", t_sql,
                     f"equal: {same} (CPU {c_sql:.2f} s)"))  # fmt: skip
        n_customers = int(summary["customers"].sum())
        if not args.no_features and data.has("events"):
            msgs = data.tables.get("messages")
            if msgs is not None and not data.has("messages", "sent_at", "opened_at", "clicked_at"):
                msgs = None
            from crm_helpers import store
            from crm_helpers.segments import kernel

            t, c = time.perf_counter(), _cpu()
            built = store.ensure_store(data)
            t_store, c_store = time.perf_counter() - t, _cpu() - c
            build_s = built.manifest.get("build_seconds")
            rows.append((f"prepared event store ({built.manifest['n_events']:,} events): "
                         f"{built.status} now, build {build_s or float('nan'):.1f} s", t_store,
                         f"{'built here' if built.status == 'built' else 'checked fresh'} "
                         f"(CPU {c_store:.1f} s); paid once per data set"))  # fmt: skip
            tables = {"events": data.events, "orders": orders, "messages": msgs}
            t_feat, c_feat, feats = _best_cpu(
                lambda: cl.feature_table(as_of=as_of, **tables), args.repeat
            )
            t_kread, c_kread, kfeats = _best_cpu(
                lambda: cl.feature_table(
                    as_of=as_of, **tables, prepared=kernel.prepared_inputs(data)
                ),
                args.repeat,
            )
            fsrc = {"orders": src, "events": _src(data.files["events"])}
            if msgs is not None:
                fsrc["messages"] = _src(data.files["messages"])
            t_fsql, c_fsql, fref = _best_cpu(
                lambda: features_sql(
                    con, fsrc, set(orders.columns), core.day_number(as_of), set(data.events.columns)
                ),
                args.repeat,
            )
            f_same = all(same_features(f, fref) for f in (feats, kfeats))
            same = same and f_same

            def vs(w: float, c: float) -> str:
                return f"{w / t_fsql:.2f}x SQL (CPU {c:.1f} s: {c / c_fsql:.2f}x SQL)"

            n = f"{len(feats):,} users"
            rows.append((f"feature table, Ibis path ({n}; raw files)", t_feat, vs(t_feat, c_feat)))
            rows.append(("feature table, kernel path (events: the prepared store's parts, read "
                         "in the run; orders, messages: raw files)", t_kread,
                         vs(t_kread, c_kread)))  # fmt: skip
            rows.append(("feature table, hand-written SQL (raw files)", t_fsql,
                         f"all equal: {f_same} (CPU {c_fsql:.1f} s)"))  # fmt: skip
        summ = core.btyd_summary(orders, as_of, time_unit_days=7.0)
        t_group, stats = _best(lambda: analysis._grouped(summ, ["frequency", "recency", "T"]), 1)
        rows.append((f"BTYD summary grouped ({len(stats):,} distinct rows)", t_group, ""))
        from crm_helpers.segments.models import BetaGeoFitter

        t_fit, _ = _best(
            lambda: BetaGeoFitter().fit(
                stats["frequency"], stats["recency"], stats["T"], weights=stats["n"]
            ),
            args.repeat,
        )
        per100k = t_fit / (n_customers / 100_000)
        rows.append(("BG/NBD fit", t_fit, f"{per100k:.2f} s per 100k customers"))
    print(f"\n{n_orders:,} orders, {n_customers:,} customers, data {data_dir}, best of "
          f"{args.repeat}, load average {os.getloadavg()[0]:.1f} at the end\n")  # fmt: skip
    print("| step | seconds | note |\n|---|---:|---|")
    for name, sec, note in rows:
        print(f"| {name} | {sec:.2f} | {note} |")
    print(f"\npeak RSS of the process tree: {mem.peak / 1e9:.2f} GB")
    if tmp is not None:
        tmp.cleanup()
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
