"""``crm``: generate the synthetic data, run notebooks as reports, rebuild the index.

crm generate [--users N] [--seed S] [--out DIR] [--dirt] [--overwrite]
crm run NOTEBOOK [-p name value]... [-f params.yaml] [--data DIR] [--engine E] [--schema F]
        [--out DIR] [--allow-shrink] [--shrink-share S]    (exit: 0 built, 1 failed, 2 refused)
crm run-all [--data DIR] [--engine E] [--out DIR] [--jobs N] [--allow-shrink] [--shrink-share S]
crm rerun REPORT_DIR [--force] [--out DIR] [--data DIR]
        (exit: 0 identical metrics.json, 1 different or failed, 2 refused)
crm index [--out DIR]
crm prepare [--data DIR]      (exit: 0 fresh or built, 1 the data do not load, 2 not applicable)
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from crm_helpers import config

RUN_EXIT_CODES = """\
exit status:
  0  the report was built and published
  1  the notebook failed (also: an empty extract, a sudden shrink of the data); the last
     good report is kept and the reason is in run.json and on the index page
  2  refused before running: unknown notebook or parameter, a value of the wrong type or
     out of range, a malformed or too large params file, an unsafe --name, an --out
     folder that is unwritable or is, contains or lies inside the data folder, another
     run of the same report in progress with --no-wait
130  interrupted (Ctrl-C); the last good report is kept

One run per report folder at a time: a second run of the same report waits for the first
(or, with --no-wait, is refused). Nothing is written outside --out, except the prepared
event store (built before the kernel starts, reused while the data are unchanged) in the
cache: $CRM_CACHE_DIR, else .cache/ of the checkout (see crm prepare).
"""


RERUN_EXIT_CODES = """\
exit status:
  0  the rerun's metrics.json is identical to the recorded one ("identical")
  1  it differs (the keys that differ are listed), or the rerun failed
  2  refused before running: no run.json / metrics.json, a failed last run, the data's
     fingerprint or the lock hash differ from the recorded ones (--force runs anyway and
     says what differs), an --out folder that is not empty
A different commit, uncommitted changes, other package versions or an unknown lock hash
are warnings. The recorded report is never written: the rerun goes to REPORT_DIR/rerun-<time>.
"""


def _guard_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--allow-shrink",
        action="store_true",
        help="publish even if a table has far fewer rows than in the previous good run",
    )
    p.add_argument(
        "--shrink-share",
        type=float,
        default=None,
        metavar="SHARE",
        help="fail when a table has under SHARE of the previous good run's rows "
        "(default $CRM_SHRINK_SHARE or 0.10)",
    )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="crm", description="CRM Workbench command line.")
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="generate the seeded synthetic CRM data set")
    g.add_argument("--users", type=int, default=config.DEFAULT_N_USERS, help="number of users")
    g.add_argument("--seed", type=int, default=config.DEFAULT_SEED, help="random seed")
    g.add_argument("--out", type=Path, default=config.DEFAULT_DATA_DIR, help="output folder")
    g.add_argument("--dirt", action="store_true", help="inject realistic data-quality problems")
    g.add_argument("--overwrite", action="store_true", help="replace an existing data set")

    r = sub.add_parser(
        "run",
        help="run one notebook and render its report",
        description="Run one notebook with papermill and publish its report.",
        epilog=RUN_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    r.add_argument("notebook", help="notebook name in notebooks/ (data_overview) or a path")
    r.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="set a parameter (repeatable)",
    )
    r.add_argument("-f", "--params-file", type=Path, help="YAML file of parameters (named run)")
    r.add_argument("--data", type=Path, help="data folder (default: $CRM_DATA_DIR or built-in)")
    r.add_argument("--engine", help="duckdb, spark or an Ibis connection URL")
    r.add_argument(
        "--schema", type=Path, help="schema.yaml for warehouse tables (sets $CRM_SCHEMA)"
    )
    r.add_argument("--out", type=Path, help="reports folder (default: reports/)")
    r.add_argument(
        "--name",
        help="run name (report folder <notebook>--<name>): letters, digits, '_', '-', '.'",
    )
    r.add_argument(
        "--no-wait",
        action="store_true",
        help="refuse (exit 2) instead of waiting when the same report is being run",
    )
    _guard_options(r)

    a = sub.add_parser("run-all", help="run every notebook and named run, then the index")
    a.add_argument("--data", type=Path)
    a.add_argument("--engine")
    a.add_argument("--out", type=Path)
    a.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="reports run at once (default $CRM_JOBS, else 2, at most the CPU count)",
    )
    _guard_options(a)

    rr = sub.add_parser(
        "rerun",
        help="run a report again from its run.json and compare its metrics.json",
        description="Run a report again from its record (run.json: notebook, parameters, "
        "data fingerprint, lock hash, commit) into a fresh folder, and compare the new "
        "metrics.json with the recorded one.",
        epilog=RERUN_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    rr.add_argument("report_dir", type=Path, help="the report folder (reports/<notebook>...)")
    rr.add_argument(
        "--force",
        action="store_true",
        help="run even when the data fingerprint or the lock hash differ (says what differs)",
    )
    rr.add_argument(
        "--out", type=Path, help="fresh folder for the rerun (default REPORT_DIR/rerun-<time>)"
    )
    rr.add_argument("--data", type=Path, help="read the data from here, not the recorded folder")

    pr = sub.add_parser(
        "prepare",
        help="build the prepared event store of a data folder (or say it is fresh)",
        description="Build the prepared event store (events sorted by user and time, coded "
        "to integers, in the cache outside the data folder) that the reports' kernels read, "
        "or say it is fresh. crm run and run-all do this by themselves before the kernels "
        "start.",
    )
    pr.add_argument("--data", type=Path, help="data folder (default: $CRM_DATA_DIR or built-in)")

    i = sub.add_parser("index", help="rebuild reports/index.html")
    i.add_argument("--out", type=Path)
    return p


def _generate(args: argparse.Namespace) -> int:
    try:
        from crm_helpers import synth
    except ImportError as exc:
        print(f"crm generate: the synthetic generator is not available ({exc}).", file=sys.stderr)
        return 2
    cfg = synth.SynthConfig(n_users=args.users, seed=args.seed, dirt=args.dirt)
    try:
        if hasattr(synth, "generate_to"):  # same rows as generate + write_world, bounded memory
            synth.generate_to(cfg, args.out, fmt="parquet", overwrite=args.overwrite)
        else:
            synth.write_world(
                synth.generate(cfg), args.out, fmt="parquet", overwrite=args.overwrite
            )
    except FileExistsError as exc:
        print(f"crm generate: {exc} (use --overwrite to replace it)", file=sys.stderr)
        return 1
    print(f"wrote {args.users:,} users (seed {args.seed}) to {args.out}")
    return 0


def _print_result(res) -> None:
    if res.ok:
        print(f"ok      {res.out_dir}  ({res.duration_s:.1f} s)  -> {res.html}")
    else:
        print(f"FAILED  {res.out_dir or res.name}: {res.error}", file=sys.stderr)
        if res.executed:
            print(f"        executed notebook with the error: {res.executed}", file=sys.stderr)
        if res.html:
            print(f"        the last good report is kept: {res.html}", file=sys.stderr)
        if getattr(res, "log", None):
            print(f"        what the kernel said: {res.log}", file=sys.stderr)


def _run(args: argparse.Namespace) -> int:
    from crm_helpers.report.run import RunRefused, run_notebook

    cli_params: dict[str, str] = {}
    for name, value in args.parameter:
        cli_params[name] = value
    try:
        res = run_notebook(
            args.notebook,
            cli_parameters=cli_params,
            params_file=args.params_file,
            data_dir=args.data,
            engine=args.engine,
            out_dir=args.out,
            run_name=args.name,
            allow_shrink=args.allow_shrink,
            shrink_share=args.shrink_share,
            schema_file=args.schema,
            wait=not args.no_wait,
        )
    except (RunRefused, FileNotFoundError) as exc:
        print(f"crm run: refused: {exc}", file=sys.stderr)
        return 2
    _print_result(res)
    return 0 if res.ok else 1


def _run_all(args: argparse.Namespace) -> int:
    from crm_helpers.report.batch import run_all
    from crm_helpers.report.run import RunRefused

    try:
        results = run_all(
            data_dir=args.data,
            engine=args.engine,
            out_dir=args.out,
            allow_shrink=args.allow_shrink,
            shrink_share=args.shrink_share,
            jobs=args.jobs,
        )
    except RunRefused as exc:
        print(f"crm run-all: refused: {exc}", file=sys.stderr)
        return 2
    for res in results:
        _print_result(res)
    failed = [r for r in results if not r.ok]
    names = ", ".join(Path(r.out_dir).name if r.out_dir else r.name for r in failed)
    when = datetime.now(UTC).isoformat(timespec="seconds")
    print(  # one line per scheduled run in an appended log: when, how many, which failed
        f"crm run-all {when}: {len(results) - len(failed)} ok, {len(failed)} failed"
        + (f": {names}" if failed else ""),
        file=sys.stderr if failed else sys.stdout,
    )
    return 1 if failed else 0


def _rerun(args: argparse.Namespace) -> int:
    from crm_helpers.report.rerun import RerunRefused, rerun
    from crm_helpers.report.run import RunRefused

    def say(line: str) -> None:
        print(f"crm rerun: {line}", file=sys.stderr, flush=True)

    try:
        res = rerun(args.report_dir, force=args.force, out=args.out, data_dir=args.data, say=say)
    except (RerunRefused, RunRefused, FileNotFoundError) as exc:
        print(f"crm rerun: refused: {exc}", file=sys.stderr)
        return 2
    if not res.status == "ok":
        print(f"FAILED  {res.out_dir}: {res.error}", file=sys.stderr)
        return 1
    recorded = res.record.report_dir / "metrics.json"
    if res.identical:
        extra = ""
        if res.ignored_keys:
            extra = f" (apart from run-specific {', '.join(res.ignored_keys)}; see RUN_SPECIFIC)"
        print(f"identical{extra}: {res.out_dir}/metrics.json = {recorded}")
        return 0
    shown = res.differing_keys[:50]
    more = len(res.differing_keys) - len(shown)
    print(
        f"differs: {len(res.differing_keys)} key(s) of {recorded} differ in the rerun's "
        f"{res.out_dir}/metrics.json:"
    )
    for key in shown:
        print(f"  {key}")
    if more:
        print(f"  ... and {more} more")
    return 1


def _prepare(args: argparse.Namespace) -> int:
    from crm_helpers.data import DataContractError
    from crm_helpers.store import StoreInsideData, prepare_data_dir

    try:
        prepared = prepare_data_dir(args.data, "duckdb")
    except DataContractError as exc:
        print(f"crm prepare: the data do not load: {exc}", file=sys.stderr)
        return 1
    except StoreInsideData as exc:
        print(f"crm prepare: refused: {exc}", file=sys.stderr)
        return 2
    if prepared is None:
        print("crm prepare: the data have no events table: no store to prepare", file=sys.stderr)
        return 2
    m = prepared.manifest
    what = (
        f"built in {m.get('build_seconds', 0):.1f} s ({prepared.reason})"
        if prepared.status == "built"
        else "fresh (reused)"
    )
    print(
        f"{prepared.status:<7} {prepared.path}  {m['n_events']:,} events, {m['n_users']:,} "
        f"users, {len(m['event_names'])} event names, {len(m['files'])} part(s); {what}; "
        f"manifest {prepared.manifest_sha256}"
    )
    return 0


def _index(args: argparse.Namespace) -> int:
    from crm_helpers.report.index import write_index

    print(write_index(args.out))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``crm``; returns the exit status."""
    args = _parser().parse_args(argv)
    handler = {
        "generate": _generate,
        "run": _run,
        "run-all": _run_all,
        "rerun": _rerun,
        "index": _index,
        "prepare": _prepare,
    }
    try:
        return handler[args.command](args)
    except KeyboardInterrupt:  # Ctrl-C: one line, no traceback; published reports untouched
        kept = {
            "run": "; the last good report is kept",
            "run-all": "; reports not finished keep their last good version",
            "rerun": "; the recorded report is untouched",
        }.get(args.command, "")
        print(f"crm {args.command}: interrupted{kept}", file=sys.stderr)
        # the kernel client's cancelled tasks would log their tracebacks when collected
        logging.getLogger("asyncio").disabled = True
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
