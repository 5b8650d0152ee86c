"""Every notebook on data in the shapes real exports have, with only its essential parameters.

Shapes (tiny data directories, written per test session):

* ``events_only``: one ``events.csv``; text user ids (``u007``), event names other than the
  synthetic world's (``pv``, ``cart``, ``buy``, ``search``), no properties, timestamps as
  local-time text with an offset (``2024-03-04 10:15:00+02:00``); no other table.
* ``orders_only``: one ``orders.csv`` with naive local-time text (``schema.yaml`` says
  ``timezone: America/New_York``) and a refund (negative revenue).
* ``users_assignments``: ``users.parquet`` with only ``user_id`` and ``assignments.parquet``.
* ``order_lines``: the committed Online Retail II extract (one row per invoice line, ids as
  floats with nulls, local-time text) with only its ``schema.yaml``.
* message logs (``tests/notebooks/message_shapes.py``): ``sms_no_opens`` (SMS, clicks, no
  opens; ``pv``/``buy`` events, no orders), ``clicks_no_opens`` (e-mail, clicks without
  logged opens; orders), ``email_opens_no_clicks`` (opens with machine opens, no clicks, no
  other table) and ``impressions`` (one row per impression with a 0/1 click flag, own
  column names mapped by ``schema.yaml``, no other table).

The registry below says, per notebook and shape, which parameters are essential and which
sections must step aside (each says why with ``text.skipped``: "Skipped: this section needs
<what>"), or that the shape lacks the notebook's core table (the run must then fail with a
message naming it). Its ``check`` compares the report's ``metrics.json`` with a brute-force
reference on the same frames. **A notebook in notebooks/ without an entry fails
test_every_notebook_is_registered**: a new analysis joins with one entry here.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from crm_helpers import config
from crm_helpers.funnels.narrative import spec_from_params
from crm_helpers.funnels.reference import reference_funnel_counts
from tests.notebooks.message_shapes import MESSAGE_SHAPES, campaign_check
from tests.notebooks.words_checks import no_placeholder, overview_words, segments_words

SKIP_MARK = "Skipped: this section needs "

# --- shapes ----------------------------------------------------------------------------------


def _events_only(d: Path) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(11)
    rows = []
    start = pd.Timestamp("2024-03-04 08:00")  # a Monday; 8 weeks of entries
    for u in range(60):
        uid = f"u{u:03d}"
        t = start + pd.Timedelta(minutes=int(rng.integers(0, 8 * 7 * 24 * 60)))
        if rng.random() < 0.5:
            rows.append((uid, "search", t - pd.Timedelta(hours=1)))
        rows.append((uid, "pv", t))
        if rng.random() < 0.6:
            t = t + pd.Timedelta(minutes=int(rng.integers(1, 600)))
            rows.append((uid, "cart", t))
            if rng.random() < 0.5:
                t = t + pd.Timedelta(days=float(rng.uniform(0, 9)))  # some beyond 7 days
                t = t.floor("s")  # as the CSV text has it
                rows.append((uid, "buy", t))
    local = pd.DataFrame(rows, columns=["user_id", "event", "ts"])
    text = local.assign(ts=local.ts.dt.strftime("%Y-%m-%d %H:%M:%S") + "+02:00")
    text.to_csv(d / "events.csv", index=False)
    utc = local.assign(ts=local.ts - pd.Timedelta(hours=2))  # the instants, as naive UTC
    return {"events": utc}


def _orders_only(d: Path) -> dict[str, pd.DataFrame]:
    orders = pd.DataFrame(
        {
            "order_id": [101, 102, 103, 104, 105, 106],
            "user_id": [1, 1, 2, 3, 3, 3],
            "ts": ["2024-01-05 10:00:00", "2024-01-20 18:30:00", "2024-02-01 09:00:00",
                   "2024-02-03 12:00:00", "2024-02-04 12:00:00", "2024-03-10 02:30:00"],
            "revenue": [25.0, 40.0, 12.5, 80.0, -80.0, 33.0],
        }
    )  # fmt: skip
    orders.to_csv(d / "orders.csv", index=False)
    (d / "schema.yaml").write_text("timezone: America/New_York\n")
    return {"orders": orders}


def _users_assignments(d: Path) -> dict[str, pd.DataFrame]:
    users = pd.DataFrame({"user_id": [f"c{i}" for i in range(12)]})
    assignments = pd.DataFrame(
        {
            "experiment_id": ["welcome"] * 10 + ["pricing"] * 2,
            "user_id": [f"c{i}" for i in range(10)] + ["c0", "c11"],
            "variant": ["control", "treatment"] * 6,
            "assigned_at": pd.date_range("2024-05-01", periods=12, freq="D").astype(
                "datetime64[us]"
            ),
        }
    )
    users.to_parquet(d / "users.parquet", index=False)
    assignments.to_parquet(d / "assignments.parquet", index=False)
    return {"users": users, "assignments": assignments}


def _order_lines(d: Path) -> dict[str, pd.DataFrame]:
    """The committed Online Retail II extract with its schema.yaml (order lines)."""
    sample = Path(__file__).parents[1] / "data" / "online_retail_ii_sample"
    for f in ("online_retail_ii.parquet", "schema.yaml"):
        shutil.copy(sample / f, d / f)
    lines = pd.read_parquet(d / "online_retail_ii.parquet")
    lines = lines[lines["Customer ID"].notna()]
    amount = lines["Quantity"] * lines["Price"]
    g = lines.assign(revenue=amount).groupby("Invoice")
    orders = pd.DataFrame({"user_id": g["Customer ID"].first(), "revenue": g["revenue"].sum()})
    return {"orders": orders.reset_index()}


SHAPES: dict[str, Callable[[Path], dict[str, pd.DataFrame]]] = {
    "events_only": _events_only,
    "orders_only": _orders_only,
    "users_assignments": _users_assignments,
    "order_lines": _order_lines,
    **MESSAGE_SHAPES,  # message logs: tests/notebooks/message_shapes.py
}

# --- checks of the numbers against brute force -------------------------------------------------


def _funnel_check(steps: list[str]) -> Callable[[dict, dict], None]:
    def check(m: dict, frames: dict[str, pd.DataFrame]) -> None:
        spec = spec_from_params(steps)  # the notebook's default window and mode
        want = reference_funnel_counts(frames["events"], spec)
        assert [s["users"] for s in m["metrics"]["steps"]] == want
        assert want[0] > want[-1] > 0  # the fixture has a real drop-off

    return check


def _overview_check(m: dict, frames: dict[str, pd.DataFrame]) -> None:
    got = m["metrics"]
    for name, df in frames.items():
        assert got[f"rows.{name}"] == len(df), name
    if "events" in frames:
        assert got["n_event_types"] == frames["events"]["event"].nunique()
    if "orders" in frames:
        o = frames["orders"]
        assert got["orders.orders"] == len(o)
        assert got["orders.revenue"] == pytest.approx(o.revenue.sum(), abs=1e-9)
        assert got["orders.refunds"] == int((o.revenue < 0).sum())
    if "assignments" in frames:
        assert got["n_experiments"] == frames["assignments"]["experiment_id"].nunique()
    overview_words(m, frames)


def _journey_check(m: dict, frames: dict[str, pd.DataFrame]) -> None:
    from crm_helpers.journeys import JourneySpec
    from tests.notebooks.test_journey_notebook import _check_against_reference, _defaults

    p = _defaults()
    gap = m["provenance"]["parameters"]["session_gap_minutes"]  # derived from the data
    spec = JourneySpec(session_gap_minutes=gap or None, start_end=True, churn_days=p["churn_days"])
    _check_against_reference(m, frames["events"], spec)


def _segments_check(m: dict, frames: dict[str, pd.DataFrame]) -> None:
    orders = frames["orders"]
    rows = m["metrics"]["rfm_segments"]
    assert sum(r["revenue_share"] for r in rows) == pytest.approx(1.0)
    if "user_id" in orders.columns:  # ids kept in the frame: customers (buyers) counted exactly
        buyers = orders.loc[orders["revenue"] >= 0, "user_id"].nunique()
        assert sum(r["customers"] for r in rows) == buyers
    segments_words(m, frames)


def _lookalike_check(m: dict, frames: dict[str, pd.DataFrame]) -> None:
    ev = frames["events"]
    seeds = ev.loc[ev["event"] == "buy", "user_id"].nunique()  # the derived rule's seeds
    assert m["provenance"]["parameters"]["seed"] == "buy >= 1 in 90 days"
    assert "seed" in m["provenance"]["derived"]
    assert m["metrics"]["seeds"]["found"] == seeds > 0
    assert m["metrics"]["leakage_guard"]["excluded_events"] == ["buy"]  # no feature sees it
    assert m["metrics"]["audit_at_audience_size"]["n"] == m["metrics"]["audience_size"]


# --- the registry -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """A notebook on a shape: its essential parameters, the sections that step aside
    (the start of each skip note's "needs <what>"), and a check of metrics.json."""

    params: dict = field(default_factory=dict)
    skips: tuple[str, ...] = ()
    check: Callable[[dict, dict], None] | None = None
    #: a known bug of the notebook on this shape (strict xfail: the test fails once fixed)
    xfail: str | None = None


@dataclass(frozen=True)
class Fails:
    """The shape lacks the notebook's core table: the run fails and names it (``match``: the
    message expected instead of the loader's "needs the '<table>' table")."""

    table: str
    match: str | None = None


FUNNEL_STEPS = ["pv", "cart", "buy"]

CAMPAIGN_NO_HOLDOUT = "an assignments table with a randomized no-message holdout"
CAMPAIGN_NO_TEST = "an assignments table with a message test"
CAMPAIGN_NO_RFM = "an orders table with revenue for the RFM segments"
CAMPAIGN_NO_OPTOUT = "an opt-out event (unsubscribe, opt_out, ...)"
CAMPAIGN_NO_CONVERSIONS = (
    "an orders table or a purchase event for conversions",
    "conversions (orders or a purchase event) to measure an effect",
)

#: notebook -> shape -> Case or Fails. A notebook added to notebooks/ adds one entry here.
REGISTRY: dict[str, dict[str, Case | Fails]] = {
    "funnel_dropoff": {
        "events_only": Case(
            params={"steps": FUNNEL_STEPS},
            skips=(
                "an event property or user attribute",  # breakdown: no properties, no users
                "the revenue of a conversion",  # sizing: no orders
                "a users table",  # the audience's attributes
            ),
            check=_funnel_check(FUNNEL_STEPS),
        ),
        "orders_only": Fails("events"),
        "users_assignments": Fails("events"),
        "order_lines": Fails("events"),
        "sms_no_opens": Case(
            params={"steps": ["pv", "buy"]},
            skips=(
                "an event property or user attribute",
                "the revenue of a conversion",
                "a users table",
                "user attributes",  # drivers: no users, no events besides the steps
            ),
            check=_funnel_check(["pv", "buy"]),
        ),
        "clicks_no_opens": Fails("events"),
        "email_opens_no_clicks": Fails("events"),
        "impressions": Fails("events"),
    },
    "data_overview": {
        "events_only": Case(
            skips=("a users table", "an orders table", "an assignments table"),
            check=_overview_check,
        ),
        "orders_only": Case(
            skips=("an events table", "an events table", "a users table", "an assignments table"),
            check=_overview_check,
        ),
        "users_assignments": Case(
            skips=("an events table", "an events table", "a users attribute", "an orders table"),
            check=_overview_check,
        ),
        "order_lines": Case(
            skips=("an events table", "an events table", "a users table", "an assignments table"),
            check=_overview_check,
        ),
        "sms_no_opens": Case(
            skips=("a users table", "an orders table", "an assignments table"),
            check=_overview_check,
        ),
        "clicks_no_opens": Case(
            skips=("an events table", "an events table", "a users table", "an assignments table"),
            check=_overview_check,
        ),
        "email_opens_no_clicks": Case(
            skips=(
                "an events table",
                "an events table",
                "a users table",
                "an orders table",
                "an assignments table",
            ),
            check=_overview_check,
        ),
        "impressions": Case(
            skips=(
                "an events table",
                "an events table",
                "a users table",
                "an orders table",
                "an assignments table",
            ),
            check=_overview_check,
        ),
    },
    "journey_mapping": {
        "events_only": Case(skips=("a users table with a segment column",), check=_journey_check),
        "orders_only": Fails("events"),
        "users_assignments": Fails("events"),
        "order_lines": Fails("events"),
        # its events (pv, buy) map to AARRR stages (the shared vocabulary): no stage skip
        "sms_no_opens": Case(skips=("a users table with a segment column",), check=_journey_check),
        "clicks_no_opens": Fails("events"),
        "email_opens_no_clicks": Fails("events"),
        "impressions": Fails("events"),
    },
    "segment_profiling": {
        "events_only": Fails("orders"),
        "orders_only": Case(
            skips=(
                "customers with repeat purchases and positive spend",  # CLV: too few repeats
                "an events table",  # clusters
                "a users table with attribute columns",  # profiles
                "a messages table",  # engagement
            ),
            check=_segments_check,
        ),
        "users_assignments": Fails("orders"),
        "order_lines": Case(
            skips=("an events table", "a users table with attribute columns", "a messages table"),
            check=_segments_check,
        ),
        "sms_no_opens": Fails("orders"),
        "clicks_no_opens": Case(
            skips=("an events table", "a users table with attribute columns"),
            check=_segments_check,
        ),
        "email_opens_no_clicks": Fails("orders"),
        "impressions": Fails("orders"),
    },
    "experiment_readout": {
        "events_only": Fails("assignments"),
        "orders_only": Fails("assignments"),
        "users_assignments": Fails("orders", match="need the orders table, which the data lack"),
        "order_lines": Fails("assignments"),
        "sms_no_opens": Fails("assignments"),
        "clicks_no_opens": Fails("assignments"),
        "email_opens_no_clicks": Fails("assignments"),
        "impressions": Fails("assignments"),
    },
    "lookalike_expansion": {
        "events_only": Case(
            skips=("an orders table for the RFM segments",), check=_lookalike_check
        ),
        "orders_only": Fails("events"),
        "users_assignments": Fails("events"),
        "order_lines": Fails("events"),
        "sms_no_opens": Case(
            skips=("an orders table for the RFM segments",), check=_lookalike_check
        ),
        "clicks_no_opens": Fails("events"),
        "email_opens_no_clicks": Fails("events"),
        "impressions": Fails("events"),
    },
    "campaign_performance": {
        "events_only": Fails("messages"),
        "orders_only": Fails("messages"),
        "users_assignments": Fails("messages"),
        "order_lines": Fails("messages"),
        "sms_no_opens": Case(
            skips=(
                "an opened_at column",
                CAMPAIGN_NO_HOLDOUT,
                CAMPAIGN_NO_TEST,
                CAMPAIGN_NO_RFM,
                CAMPAIGN_NO_OPTOUT,
            ),
            check=campaign_check,
        ),
        "clicks_no_opens": Case(
            skips=(CAMPAIGN_NO_HOLDOUT, CAMPAIGN_NO_TEST, CAMPAIGN_NO_OPTOUT), check=campaign_check
        ),
        "email_opens_no_clicks": Case(
            skips=(
                CAMPAIGN_NO_CONVERSIONS[0],
                "a clicked_at column",
                CAMPAIGN_NO_CONVERSIONS[1],
                CAMPAIGN_NO_TEST,
                CAMPAIGN_NO_RFM,
                CAMPAIGN_NO_OPTOUT,
            ),
            check=campaign_check,
        ),
        "impressions": Case(
            skips=(
                CAMPAIGN_NO_CONVERSIONS[0],
                "an opened_at column",
                CAMPAIGN_NO_CONVERSIONS[1],
                CAMPAIGN_NO_TEST,
                CAMPAIGN_NO_RFM,
                CAMPAIGN_NO_OPTOUT,
            ),
            check=campaign_check,
        ),
    },
}


def _executed_fails() -> set[tuple[str, str]]:
    """The (notebook, shape) pairs whose failure is shown by running the notebook: per notebook,
    the first shape of each distinct :class:`Fails` (its table and message)."""
    first: dict[tuple[str, Fails], str] = {}
    for nb, by_shape in REGISTRY.items():
        for shape, case in by_shape.items():
            if isinstance(case, Fails):
                first.setdefault((nb, case), shape)
    return {(nb, shape) for (nb, _), shape in first.items()}


#: A notebook fails on a shape without its core table in its load cell, the same way on every
#: such shape: ``progress.load(data_dir, engine=engine, require=[...])``, the loader's
#: "needs the '<table>' table" before any table is read. One kernel run per notebook and
#: failure shows that the notebook says so (through papermill and run_notebook's error);
#: the other shapes are checked with the notebook's own load call in-process (each shape's
#: files read by run_notebook and the loader: data_overview runs on every shape).
EXECUTED_FAILS = _executed_fails()


def _required(notebook: str) -> list[str]:
    """The ``require=[...]`` of the notebook's one ``progress.load`` call."""
    import ast
    import re

    nb = nbformat.read(config.NOTEBOOKS_DIR / f"{notebook}.ipynb", as_version=4)
    calls = [
        m.group(1)
        for c in nb.cells
        if c.cell_type == "code"
        for m in re.finditer(r"progress\.load\([^)]*require=(\[[^\]]*\])", c.source)
    ]
    assert len(calls) == 1, f"{notebook}: expected one progress.load(..., require=[...])"
    return ast.literal_eval(calls[0])


def _marks(case: Case | Fails) -> list:
    if isinstance(case, Case) and case.xfail:
        return [pytest.mark.xfail(reason=case.xfail, strict=True)]
    return []


CASES = [
    pytest.param(nb, shape, id=f"{nb}-{shape}", marks=_marks(case))
    for nb, by_shape in REGISTRY.items()
    if (config.NOTEBOOKS_DIR / f"{nb}.ipynb").is_file()
    for shape, case in by_shape.items()
]


def test_every_notebook_is_registered():
    missing = sorted(p.stem for p in config.NOTEBOOKS_DIR.glob("*.ipynb") if p.stem not in REGISTRY)
    assert not missing, (
        f"notebook(s) {missing} have no entry in REGISTRY of {Path(__file__).name}: add, per "
        f"shape {sorted(SHAPES)}, its essential parameters, the sections that must step aside "
        "and a check of metrics.json against a reference (or Fails(<core table>))."
    )
    for nb, by_shape in REGISTRY.items():
        assert set(by_shape) == set(SHAPES), f"{nb}: give a case for every shape {sorted(SHAPES)}"


@pytest.fixture(scope="session")  # cheap: built per worker, so the runs spread over workers
def shapes(tmp_path_factory) -> dict[str, tuple[Path, dict[str, pd.DataFrame]]]:
    out = {}
    for name, build in SHAPES.items():
        d = tmp_path_factory.mktemp(f"shape_{name}")
        out[name] = (d, build(d))
    return out


def _skip_notes(executed: str) -> list[str]:
    nb = nbformat.read(executed, as_version=4)
    notes = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            text = (o.get("data") or {}).get("text/markdown", "")
            text = "".join(text) if isinstance(text, list) else text
            if SKIP_MARK in text:
                notes.append(text.split(SKIP_MARK, 1)[1])
    return notes


@pytest.mark.slow
@pytest.mark.parametrize(("notebook", "shape"), CASES)
def test_notebook_on_foreign_shape(notebook, shape, shapes, tmp_path):
    from crm_helpers.report.run import run_notebook

    case = REGISTRY[notebook][shape]
    data_dir, frames = shapes[shape]
    before = sorted((p.name, p.stat().st_size) for p in data_dir.iterdir())
    if isinstance(case, Fails) and (notebook, shape) not in EXECUTED_FAILS:
        from crm_helpers.report import progress

        assert case.match is None, "a failure of its own is shown by running the notebook"
        with pytest.raises(Exception, match=f"needs the '{case.table}' table"):
            progress.load(data_dir, engine="duckdb", require=_required(notebook))
        assert sorted((p.name, p.stat().st_size) for p in data_dir.iterdir()) == before
        return
    res = run_notebook(
        notebook,
        data_dir=data_dir,
        out_dir=tmp_path,
        parameters=case.params if isinstance(case, Case) else {},
        update_index=False,
    )
    assert sorted((p.name, p.stat().st_size) for p in data_dir.iterdir()) == before
    if isinstance(case, Fails):
        assert not res.ok
        assert (case.match or f"needs the '{case.table}' table") in (res.error or ""), res.error
        return
    assert res.ok, res.error
    assert Path(res.html).is_file()
    notes = _skip_notes(res.executed)
    assert len(notes) == len(case.skips), notes
    for want, got in zip(case.skips, notes, strict=True):
        assert got.startswith(want), (want, got)
        assert ". " in got, f"the note must say how to add it: {got!r}"
        no_placeholder(got)
    m = json.loads(Path(res.metrics).read_text())
    if case.check is not None:
        case.check(m, frames)
