"""Write a world to a data directory: contract tables, ``truth/`` and ``ground_truth.json``.

Parquet is written through pyarrow with fixed schemas, so the
same config gives byte-identical files. :func:`generate_to` streams chunk by chunk
(one Parquet row group per chunk): chunk i is written by a background thread while chunk
i + 1 is generated, so at most one finished chunk waits in memory besides the one being
generated. Tables are written two at a time (pyarrow encodes and compresses without the
GIL): ``events`` on one thread, the smaller tables on another. Each file is still written
by one thread at a time, in chunk order, with the same writer settings, so the bytes do
not depend on the threads.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from crm_helpers.synth.config import SynthConfig
from crm_helpers.synth.generate import make_globals
from crm_helpers.synth.world import (
    TABLE_NAMES,
    World,
    build_ground_truth,
    iter_chunks,
    merge_counters,
)

TS = pa.timestamp("us", tz="UTC")
#: Arrow schema of every file written (contract tables and truth tables).
SCHEMAS: dict[str, pa.Schema] = {
    "users": pa.schema(
        [
            ("user_id", pa.int64()),
            ("signup_at", TS),
            ("country", pa.string()),
            ("gender", pa.string()),
            ("age_band", pa.string()),
            ("acquisition_channel", pa.string()),
            ("device", pa.string()),
            ("lookalike_seed", pa.bool_()),
        ]
    ),
    "events": pa.schema(
        [
            ("user_id", pa.int64()),
            ("event", pa.string()),
            ("ts", TS),
            ("session_id", pa.int64()),
            ("category", pa.string()),
            ("product_id", pa.int64()),
            ("platform", pa.string()),
            ("channel", pa.string()),
        ]
    ),
    "orders": pa.schema(
        [
            ("order_id", pa.int64()),
            ("user_id", pa.int64()),
            ("ts", TS),
            ("revenue", pa.float64()),
            ("category", pa.string()),
            ("coupon", pa.string()),
            ("quantity", pa.int64()),
        ]
    ),
    "messages": pa.schema(
        [
            ("message_id", pa.int64()),
            ("user_id", pa.int64()),
            ("campaign_id", pa.int64()),
            ("channel", pa.string()),
            ("sent_at", TS),
            ("opened_at", TS),
            ("clicked_at", TS),
        ]
    ),
    "assignments": pa.schema(
        [
            ("experiment_id", pa.string()),
            ("user_id", pa.int64()),
            ("variant", pa.string()),
            ("assigned_at", TS),
        ]
    ),
    "truth_users": pa.schema(
        [
            ("user_id", pa.int64()),
            ("customer_type", pa.string()),
            ("is_seed", pa.bool_()),
            ("session_rate", pa.float64()),
            ("churn_at", TS),
            ("n_sessions", pa.int64()),
            ("n_orders", pa.int64()),
            ("activity", pa.float64()),
            ("propensity", pa.float64()),
            ("dropout_at", TS),
        ]
    ),
    "truth_assignments": pa.schema(
        [
            ("experiment_id", pa.string()),
            ("user_id", pa.int64()),
            ("variant", pa.string()),
            ("assigned_at", TS),
            ("logged", pa.bool_()),
            ("planted_response", pa.bool_()),
        ]
    ),
}
FORMATS = ("parquet", "csv")


def _paths(out_dir: Path, fmt: str) -> dict[str, Path]:
    ext = "parquet" if fmt == "parquet" else "csv"
    paths = {name: out_dir / f"{name}.{ext}" for name in TABLE_NAMES}
    paths["truth_users"] = out_dir / "truth" / "users.parquet"
    paths["truth_assignments"] = out_dir / "truth" / "assignments.parquet"
    return paths


def _prepare_dir(out_dir: str | Path, fmt: str, overwrite: bool) -> Path:
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out} exists and is not a directory")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(
            f"{out} is not empty; pass overwrite=True to replace the synthetic data in it"
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / "truth").mkdir(exist_ok=True)
    if overwrite:  # remove stale files of the other format
        for p in list(_paths(out, "parquet").values()) + list(_paths(out, "csv").values()):
            if p.exists():
                p.unlink()
    return out


def to_arrow(df: pd.DataFrame, name: str) -> pa.Table:
    """A table's DataFrame as an Arrow table with the fixed schema.

    The pandas metadata is kept, so ``pd.read_parquet`` restores nullable integers.
    """
    schema = SCHEMAS[name]
    return pa.Table.from_pandas(df[schema.names], schema=schema, preserve_index=False)


def _write_csv(df: pd.DataFrame, path: Path, header: bool = True) -> None:
    df.to_csv(path, index=False, header=header, mode="w" if header else "a")


def _write_parallel(
    pool: ThreadPoolExecutor, names: list[str], write_one: Callable[[str], None]
) -> list[Future]:
    """Submit ``write_one(name)`` for ``events`` alone and for the other tables in turn.

    Two tasks, so on a pool of two workers the large ``events`` table is encoded while the
    small tables are, one after another.
    """
    big = [n for n in names if n == "events"]
    rest = [n for n in names if n != "events"]

    def run(group: list[str]) -> None:
        for name in group:
            write_one(name)

    return [pool.submit(run, g) for g in (big, rest) if g]


def _wait(futures: list[Future]) -> None:
    """Wait for every future (so no write is still running), then re-raise the first error."""
    errors = [f.exception() for f in futures]
    for e in errors:
        if e is not None:
            raise e


def _write_json(gt: dict, path: Path) -> None:
    path.write_text(json.dumps(gt, indent=2, sort_keys=True) + "\n")


def write_world(
    world: World, out_dir: str | Path, fmt: str = "parquet", *, overwrite: bool = False
) -> Path:
    """Write ``world`` to ``out_dir``.

    Writes ``users``, ``events``, ``orders``, ``messages``, ``assignments`` (``.parquet`` or
    ``.csv``), ``truth/users.parquet``, ``truth/assignments.parquet`` and
    ``ground_truth.json``. Refuses a non-empty directory unless ``overwrite=True``.

    Returns
    -------
    Path
        ``out_dir``.
    """
    out = _prepare_dir(out_dir, fmt, overwrite)
    paths = _paths(out, fmt)
    frames = {**world.tables(), "truth_users": world.truth["users"],
              "truth_assignments": world.truth["assignments"]}  # fmt: skip

    def write_one(name: str) -> None:
        df = frames[name]
        if fmt == "csv" and not name.startswith("truth_"):
            _write_csv(df[SCHEMAS[name].names], paths[name])
        else:
            pq.write_table(to_arrow(df, name), paths[name], compression="zstd")

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="write_world") as pool:
        _wait(_write_parallel(pool, list(frames), write_one))
    _write_json(world.ground_truth, out / "ground_truth.json")
    return out


def generate_to(
    cfg: SynthConfig, out_dir: str | Path, fmt: str = "parquet", *, overwrite: bool = False
) -> dict:
    """Generate ``cfg`` chunk by chunk straight into ``out_dir`` (bounded memory).

    Each chunk of ``cfg.chunk_size`` users becomes one Parquet row group (or appended CSV
    rows); the rows are identical to :func:`~crm_helpers.synth.generate` of the same
    config. Use it for 10M users. Chunk i is written by background threads while chunk
    i + 1 is generated (at most one finished chunk waits to be written).

    Returns
    -------
    dict
        The ground truth (also written to ``out_dir/ground_truth.json``).
    """
    out = _prepare_dir(out_dir, fmt, overwrite)
    paths = _paths(out, fmt)
    gl = make_globals(cfg)
    writers: dict[str, pq.ParquetWriter] = {}
    counters = []

    def write_chunk(i: int, frames: dict[str, pd.DataFrame]) -> Callable[[str], None]:
        def write_one(name: str) -> None:
            df = frames[name]
            if fmt == "csv" and not name.startswith("truth_"):
                _write_csv(df[SCHEMAS[name].names], paths[name], header=i == 0)
                return
            table = to_arrow(df, name)
            if name not in writers:  # each name is written by one task at a time
                writers[name] = pq.ParquetWriter(paths[name], table.schema, compression="zstd")
            writers[name].write_table(
                table.replace_schema_metadata(writers[name].schema.metadata),
                row_group_size=max(len(df), 1),
            )

        return write_one

    pending: list[Future] = []
    try:
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="generate_to") as pool:
            try:
                for i, chunk in enumerate(iter_chunks(cfg, gl)):
                    names = (*TABLE_NAMES, "truth_users", "truth_assignments")
                    frames = {name: getattr(chunk, name) for name in names}
                    counters.append(chunk.counters)
                    del chunk
                    _wait(pending)  # chunk i - 1 is written before chunk i is submitted
                    pending = _write_parallel(pool, list(frames), write_chunk(i, frames))
                    del frames
                _wait(pending)
            finally:
                for f in pending:  # an error while generating: let the writes finish
                    f.exception()
    finally:
        for w in writers.values():
            w.close()
    gt = build_ground_truth(gl, merge_counters(counters))
    _write_json(gt, out / "ground_truth.json")
    return gt
