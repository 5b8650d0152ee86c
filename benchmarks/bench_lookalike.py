"""Benchmark: lookalike expansion, 10k seeds -> top 1M of 10M users x 32 float32 features.

Usage::

    python benchmarks/bench_lookalike.py                         # 10M users (quiet machine!)
    python benchmarks/bench_lookalike.py --users 1M --top 100k   # the 1M-population case
    python benchmarks/bench_lookalike.py --users 1M --features-data data/synthetic

Part 1, models and audit on a feature matrix in memory (seeded, planted seed class: a
``--class-share`` of users whose features are shifted in a few dimensions; ``--seeds`` of
them are the seed). Timed: one memory read of the matrix (``X.sum(axis=0)``, best of 3);
the PU model's fit, chunked scoring and top-N; the centroid baseline; and
``lookalike.expand`` end to end from the matrix, audit included (4 audited models + final
fit and scoring). Peak memory is polled (every 10 ms, psutil) from this process tree and
reported above the level before the matrix existed, as a multiple of the matrix's bytes.
Quality: share of the planted class among the top N (precision) per model.

Part 2 (``--features-data DIR``): the engine-side feature table
(``feature_frame``) against hand-written DuckDB SQL computing the same columns over the
same Parquet files (checked equal), as a time ratio. Both run on the same DuckDB
connection, the engine's (``--sql-connection engine``, default: the same memory_limit and
threads), or the SQL on a fresh connection with DuckDB's defaults (``fresh``); with
``--repeat`` they alternate and the best of each is kept.

Prints Markdown tables. Goals (issue #8): end to end < 5 s at 10M, scoring < 3x one memory
read, peak memory < 2.5x the matrix, feature build <= 1.25x the SQL.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from procmem import TreePoller, tree_rss  # noqa: E402

from crm_helpers.lookalike.analysis import expand  # noqa: E402
from crm_helpers.lookalike.models import (  # noqa: E402
    CentroidSimilarity,
    PUClassifier,
    score_in_chunks,
    top_n,
)


def parse_size(text: str) -> int:
    text = text.strip().lower()
    mult = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text[:-1] if mult > 1 else text) * mult)


def PeakRSS() -> TreePoller:  # noqa: N802 - kept the name the code below uses
    """Peak RSS of this process tree, polled every 10 ms (benchmarks/procmem.py)."""
    return TreePoller(os.getpid(), 0.01)


def planted_matrix(n: int, d: int, class_share: float, n_seeds: int, seed: int = 0):
    """(X float32 (n, d), planted class mask, seed mask): the class shifts 6 dimensions."""
    rng = np.random.default_rng(seed)
    X = np.empty((n, d), dtype=np.float32)
    step = 1_000_000
    for s in range(0, n, step):  # chunked: never a float64 copy of the whole matrix
        X[s : s + step] = rng.standard_normal((min(step, n - s), d), dtype=np.float32)
    cls = rng.random(n) < class_share
    shift = np.zeros(d, dtype=np.float32)
    shift[:6] = [0.8, -0.6, 0.5, 0.5, -0.4, 0.3]
    X[cls] += shift
    X[:, d // 2 :] = np.abs(X[:, d // 2 :]) * 3  # half the columns count-like (log1p applies)
    seeds = np.zeros(n, dtype=bool)
    seeds[rng.choice(np.flatnonzero(cls), size=min(n_seeds, int(cls.sum())), replace=False)] = True
    return X, cls, seeds


def timed(fn, repeat: int = 1):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def part_models(args) -> None:
    n, d, top = parse_size(args.users), args.features, parse_size(args.top)
    meter = PeakRSS()
    base = tree_rss(os.getpid())
    t_gen, (X, cls, seeds) = timed(
        lambda: planted_matrix(n, d, args.class_share, parse_size(args.seeds))
    )
    gb = X.nbytes / 1e9
    t_read, _ = timed(lambda: X.sum(axis=0), repeat=3)
    rows = [("generate planted matrix (not counted)", t_gen, "")]
    rows.append(("one memory read of X (`X.sum(axis=0)`)", t_read, "1.00x"))
    t_fit, pu = timed(lambda: PUClassifier().fit(X, seeds))
    rows.append(("PU fit (sample + logistic regression)", t_fit, ""))
    t_score, s = timed(lambda: score_in_chunks(pu, X), repeat=2)
    rows.append(("PU score, chunked", t_score, f"{t_score / t_read:.2f}x read"))
    t_top, best = timed(lambda: top_n(s, top, ~seeds))
    rows.append((f"top {top:,} (argpartition)", t_top, ""))
    prec = {"pu": cls[best].mean()}
    t_c, cen = timed(lambda: CentroidSimilarity(1).fit(X, seeds))
    t_cs, sc = timed(lambda: score_in_chunks(cen, X))
    prec["centroid"] = cls[top_n(sc, top, ~seeds)].mean()
    rows.append(("centroid fit + score", t_c + t_cs, ""))
    ids = np.arange(n, dtype=np.int64)
    seed_ids = pd.Series(ids[seeds])
    with meter:
        t_e2e, ex = timed(
            lambda: expand(
                ids,
                seed_ids,
                size=top,
                matrix=X,
                holdout_share=args.holdout,
                overwrite_matrix=True,  # log1p in place: memory holds X once
            )
        )
    rows.append(("`expand` end to end, audit of 4 models + final (from X, in place)", t_e2e, ""))
    prec["random"] = cls[np.random.default_rng(1).choice(np.flatnonzero(~seeds), top)].mean()
    prec["expand audience"] = cls[ex.audience_index].mean()
    peak_over = (meter.peak - base) / 1e9
    print(
        f"\n### {n:,} users x {d} float32 features ({gb:.2f} GB), {seeds.sum():,} seeds, top {top:,}\n"
    )
    print("| step | seconds | note |\n|---|---:|---|")
    for name, sec, note in rows:
        print(f"| {name} | {sec:.3f} | {note} |")
    print(
        f"\nPeak RSS of the process tree during `expand`: {meter.peak / 1e9:.2f} GB; "
        f"above the level before the matrix: {peak_over:.2f} GB = "
        f"**{peak_over / gb:.2f}x** the matrix (matrix included)."
    )
    rec = ex.recall_at_n()
    print(
        "\nHeld-out recall at N: "
        + ", ".join(f"{k} {v:.3f}" for k, v in rec.items())
        + f"; AUC {ex.audits['default'].auc:.3f}"
    )
    print(
        f"Precision of the planted class (share {cls.mean():.1%}) in the top {top:,}: "
        + ", ".join(f"{k} {v:.3f}" for k, v in prec.items())
    )


def _q(v: str) -> str:
    return "'" + str(v).replace("'", "''") + "'"


def hand_sql(files: dict[str, Path], spec) -> str:
    """The feature table of ``spec`` as one DuckDB query over the Parquet files."""
    start, end = _q(spec.start), _q(spec.as_of)
    lb = float(spec.lookback_days)
    e_aggs = ["count(*) AS n", "count(DISTINCT ts::DATE) AS days", "max(ts) AS last_ts"]
    e_aggs += [
        f"count(*) FILTER (WHERE event = {_q(v)}) AS e{i}" for i, v in enumerate(spec.event_types)
    ]
    for col, values in spec.shares.items():
        e_aggs.append(f"count({col}) AS {col}_n")
        e_aggs += [
            f"count(*) FILTER (WHERE {col} = {_q(v)}) AS {col}{i}" for i, v in enumerate(values)
        ]
    from crm_helpers.lookalike.features import HOUR_BINS

    e_aggs += [
        f"count(*) FILTER (WHERE hour(ts) >= {lo} AND hour(ts) < {hi}) AS h_{k}"
        for k, (lo, hi) in HOUR_BINS.items()
    ]
    share_cols = ", ".join(c for c in spec.shares)
    sel = [
        "u.user_id",
        "coalesce(a.n, 0)::DOUBLE",
        "coalesce(a.days, 0)::DOUBLE",
        f"coalesce((epoch({end}::TIMESTAMP) - epoch(a.last_ts)) / 86400, {lb})",
    ]
    sel += [f"coalesce(a.e{i}, 0)::DOUBLE" for i in range(len(spec.event_types))]
    for col, values in spec.shares.items():
        sel += [
            f"CASE WHEN a.{col}_n > 0 THEN a.{col}{i} / a.{col}_n ELSE 0 END::DOUBLE"
            for i in range(len(values))
        ]
    sel += [f"CASE WHEN a.n > 0 THEN a.h_{k} / a.n ELSE 0 END::DOUBLE" for k in HOUR_BINS]
    joins = [
        f"LEFT JOIN (SELECT user_id, {', '.join(e_aggs)} FROM (SELECT user_id, event, "
        f"timezone('UTC', ts) AS ts{', ' + share_cols if share_cols else ''} FROM "
        f"read_parquet({_q(files['events'])})) WHERE ts >= {start} AND ts < {end} "
        "GROUP BY user_id) a USING (user_id)"
    ]
    if spec.orders:
        joins.append(
            "LEFT JOIN (SELECT user_id, count(*) AS n, sum(revenue) AS rev, max(ts) AS last_ts "
            f"FROM (SELECT user_id, revenue, timezone('UTC', ts) AS ts FROM read_parquet({_q(files['orders'])})) "
            f"WHERE ts >= {start} AND ts < {end} GROUP BY user_id) o USING (user_id)"
        )
        sel += [
            "coalesce(o.n, 0)::DOUBLE",
            "coalesce(o.rev, 0)::DOUBLE",
            "CASE WHEN o.n > 0 THEN o.rev / o.n ELSE 0 END::DOUBLE",
            f"coalesce((epoch({end}::TIMESTAMP) - epoch(o.last_ts)) / 86400, {lb})",
        ]
    if spec.messages:
        rates = [f"count({r.replace('_rate', 'ed_at')}) AS {r}" for r in spec.message_rates]
        joins.append(
            f"LEFT JOIN (SELECT user_id, count(*) AS sent{''.join(', ' + r for r in rates)} FROM "
            f"(SELECT *, timezone('UTC', sent_at) AS s FROM read_parquet({_q(files['messages'])})) "
            f"WHERE s >= {start} AND s < {end} GROUP BY user_id) m USING (user_id)"
        )
        sel.append("coalesce(m.sent, 0)::DOUBLE")
        sel += [
            f"CASE WHEN m.sent > 0 THEN m.{r} / m.sent ELSE 0 END::DOUBLE"
            for r in spec.message_rates
        ]
    if spec.tenure:
        sel.append(
            f"coalesce((epoch({end}::TIMESTAMP) - epoch(timezone('UTC', u.signup_at))) / 86400, 0)"
        )
    for col, values in spec.attributes.items():
        sel += [f"CASE WHEN u.{col} = {_q(v)} THEN 1.0 ELSE 0.0 END" for v in values]
    names = ["user_id", *spec.names]
    cols = ",\n  ".join(f'{e} AS "{n}"' for e, n in zip(sel, names, strict=True))
    return (
        f"SELECT\n  {cols}\nFROM read_parquet({_q(files['users'])}) u\n"
        + "\n".join(joins)
        + "\nORDER BY u.user_id"
    )


def part_features(args) -> None:
    import duckdb

    from crm_helpers import load
    from crm_helpers.lookalike.features import feature_frame, feature_spec

    data = load(args.features_data, validate=False)
    spec = feature_spec(data, 90, exclude_attributes=[c for c in data.users.columns if "seed" in c])
    sql = hand_sql(data.files, spec)
    if args.sql_connection == "engine":
        # the engine's own DuckDB connection: the same memory_limit, threads and
        # temp_directory for both sides (crm_helpers.engine.connect's defaults)
        con = data.con.con
    else:  # a fresh DuckDB connection with DuckDB's defaults (no memory bound)
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
    settings = con.execute(
        "SELECT current_setting('memory_limit'), current_setting('threads')"
    ).fetchone()
    # alternate the two, best of --repeat each: load from other processes hits both alike
    t_helper = t_sql = float("inf")
    for _ in range(args.repeat):
        t, got = timed(lambda: feature_frame(data, spec))
        t_helper = min(t_helper, t)
        t, want = timed(lambda: con.execute(sql).df())
        t_sql = min(t_sql, t)
    diff = max(
        float(np.nanmax(np.abs(got[c].to_numpy(float) - want[c].to_numpy(float))))
        for c in got.columns
    )
    n_events = data.events.count().to_pandas()
    print(
        f"\n### Feature build: {len(got):,} users, {n_events:,} events, {len(spec.names)} features\n"
    )
    print(
        f"SQL on the {args.sql_connection} connection (memory_limit {settings[0]}, "
        f"threads {settings[1]}); best of {args.repeat}, alternating, load average "
        f"{os.getloadavg()[0]:.1f} at the end\n"
    )
    print("| implementation | seconds | ratio |\n|---|---:|---:|")
    print(f"| hand-written DuckDB SQL over Parquet | {t_sql:.2f} | 1.00x |")
    print(f"| `feature_frame` (Ibis -> DuckDB) | {t_helper:.2f} | {t_helper / t_sql:.2f}x |")
    print(
        f"\nSame table: max abs difference {diff:.2e} (days columns: whole vs fractional seconds)"
    )


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--users", default="10M")
    p.add_argument("--features", type=int, default=32)
    p.add_argument("--seeds", default="10k")
    p.add_argument("--top", default="1M")
    p.add_argument("--class-share", type=float, default=0.1)
    p.add_argument("--holdout", type=float, default=0.2)
    p.add_argument("--features-data", default="", help="data dir for the feature-build part")
    p.add_argument("--skip-models", action="store_true")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument(
        "--sql-connection",
        choices=("engine", "fresh"),
        default="engine",
        help="run the hand-written SQL on the engine's DuckDB connection (same settings as "
        "the helper) or on a fresh connection with DuckDB's defaults",
    )
    args = p.parse_args(argv)
    if not args.skip_models:
        part_models(args)
    if args.features_data:
        part_features(args)


if __name__ == "__main__":
    main()
