"""Parameter checks before a report runs: types from the parameters cell, ranges per notebook.

``crm run`` checks every value given with ``-p`` or ``-f`` here, before a kernel starts, so a
wrong value costs no run and the message names the parameter, what it expects and the value
given (the CLI exits with status 2).

Types
-----
A parameter's type is its annotation in the notebook's parameters cell (``x: int = 3``), else
the type of its default. Numbers may be written in any notation (``2e9``, ``1_000``,
``0.5``; text such as YAML's ``2e9`` is parsed); ``int`` takes whole numbers (``2e9`` too, not
``true`` or ``2.5``), ``float`` any finite number (not ``nan`` or ``inf``),
``bool`` only ``true``/``false``, ``str`` text (a YAML date such as ``2024-03-01`` is taken as
its ISO text), ``list`` a list (``[a, b]``; a tuple is taken as a list), ``dict`` a mapping.
``x: str | None`` also takes ``null``. A parameter without annotation whose default is
``None`` takes anything.

Ranges
------
Every range is declared here, read before a kernel starts (a wrong value is refused with
exit 2, never found by a notebook cell). :data:`COMMON_CHECKS` holds the checks of a
parameter of that name in every notebook (windows are days in ``[0, 36525]``, periods are
``day``/``week``/``month``, dates are ISO dates, ``start_date`` is before ``end_date``),
:data:`NOTEBOOK_RANGES` those of one notebook (notebook name -> parameter name -> check),
mostly a declarative :class:`Range` (``Range(0, 1, high_open=True)`` is ``[0, 1)``).
A check is ``check(value, params) -> problem``: ``params`` are all effective values
(defaults with overrides), the result is ``None`` when the value is fine, else a short phrase
that completes "must ...", e.g. ``"be in [0, 1)"``. A notebook without declared ranges still
runs (its types and the common checks are checked); a new notebook adds its entry to
:data:`NOTEBOOK_RANGES`, or calls :func:`register` next to its helpers. Checks of
parameters that were not given are run too, so a params file that changes ``steps`` is
checked against the default ``audience_step``. A default that fails its check on its own (a
sentinel such as ``0`` or ``[]`` for "derive from the data") is left to the notebook.
"""

from __future__ import annotations

import ast
import datetime as _dt
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from crm_helpers.report.currency import check_currency

__all__ = [
    "COMMON_CHECKS",
    "NOTEBOOK_CHECKS",
    "NOTEBOOK_RANGES",
    "Check",
    "Range",
    "annotations",
    "check_parameters",
    "check_type",
    "default_type",
    "register",
    "yaml_problem",
]

#: ``check(value, params) -> None | "what the value must be"``.
Check = Callable[[Any, Mapping[str, Any]], "str | None"]

_TYPES: dict[str, type | tuple[type, ...]] = {
    "int": int,
    "float": float,
    "bool": bool,
    "str": str,
    "list": list,
    "dict": dict,
    "tuple": tuple,
}
_WORDS = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "str": "text",
    "list": "a list, e.g. [a, b]",
    "tuple": "a list, e.g. [a, b]",
    "dict": "a mapping, e.g. {key: value}",
    "None": "null",
}


def annotations(source: str) -> dict[str, tuple[str, ...]]:
    """The type names of each annotated parameter of a parameters cell's ``source``.

    ``x: int = 3`` -> ``{"x": ("int",)}``; ``x: str | None = None`` -> ``("str", "None")``;
    ``x: Optional[str]`` -> ``("str", "None")``. Unknown annotations (``x: Path``) and
    unannotated assignments are left out (their default's type is used).
    """
    out: dict[str, tuple[str, ...]] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names = _type_names(node.annotation)
            if names and all(n in _TYPES or n == "None" for n in names):
                out[node.target.id] = names
    return out


def _type_names(node: ast.expr) -> tuple[str, ...]:
    if isinstance(node, ast.Name):
        return (node.id,)
    if isinstance(node, ast.Constant) and node.value is None:
        return ("None",)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _type_names(node.left) + _type_names(node.right)
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
        if node.value.id == "Optional":
            return (*_type_names(node.slice), "None")
        if node.value.id in _TYPES:  # list[str], dict[str, int]: the container is checked
            return (node.value.id,)
    return ()


def default_type(default: Any) -> tuple[str, ...]:
    """The type name of a default value (``()`` for ``None`` or an unknown type)."""
    if default is None:
        return ()
    for name in ("bool", "int", "float", "str", "list", "dict", "tuple"):
        if type(default) is _TYPES[name]:
            return (name,)
    return ()


def _as(value: Any, name: str) -> tuple[bool, Any]:
    """Whether ``value`` is acceptable as type ``name``, and the value converted."""
    if name == "None":
        return value is None, None
    if name == "bool":
        return isinstance(value, bool), value
    if name in ("int", "float"):
        number = _number(value)
        if number is None:
            return False, value
        if name == "float":
            return True, float(number)
        if isinstance(number, float) and not number.is_integer():
            return False, value
        return True, int(number)
    if name == "str":
        if isinstance(value, _dt.date | _dt.datetime):
            return True, value.isoformat()
        return isinstance(value, str), value
    if name in ("list", "tuple"):
        return isinstance(value, list | tuple), list(value) if isinstance(value, tuple) else value
    if name == "dict":
        return isinstance(value, dict), value
    return True, value


def _number(value: Any) -> int | float | None:
    """A finite number from a number or a numeric text in any notation, else ``None``.

    ``3``, ``2.5``, ``"2e9"``, ``"1_000"``, ``"-0.5"``; not a bool, ``nan`` or ``inf``. YAML
    reads ``2e9`` (no dot) as text, so text is parsed here.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    return None


def check_type(name: str, value: Any, types: tuple[str, ...]) -> Any:
    """``value`` converted to the first of ``types`` it fits; ``ValueError`` if none.

    An empty ``types`` accepts anything. The message names the parameter, the expected type
    and the value given.
    """
    if not types:
        return value
    for t in types:
        ok, converted = _as(value, t)
        if ok:
            return converted
    want = " or ".join(_WORDS.get(t, t) for t in types)
    raise ValueError(f"parameter {name!r} must be {want}; got {value!r} ({type(value).__name__})")


def yaml_problem(exc: Exception) -> str:
    """``line L, column C: what is wrong`` of a YAML error (1-based, as editors count)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    cmark = getattr(exc, "context_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    if context and cmark is not None and (mark is None or cmark.line != mark.line):
        context += f" that starts on line {cmark.line + 1}"
    what = f"{problem} ({context})" if context else problem
    return f"{where}not valid YAML: {what}"


# --- range checks ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Range:
    """A declarative range check of a number: ``low``/``high`` (``None``: no limit).

    ``low_open``/``high_open`` exclude the bound; ``allowed`` values are always fine (a
    sentinel such as ``0`` for "derive"); ``note`` explains the bound in the message.
    Values that are not numbers (``None``, text) are left to the type check.
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    allowed: tuple[float, ...] = ()
    note: str = ""

    def __call__(self, value: Any, params: Mapping[str, Any]) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        if value in self.allowed:
            return None
        if not math.isfinite(value):
            return f"be a finite number{self._note()}"
        below = self.low is not None and (value < self.low or (self.low_open and value == self.low))
        above = self.high is not None and (
            value > self.high or (self.high_open and value == self.high)
        )
        if not (below or above):
            return None
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            what = f"in {left}{_num(self.low)}, {_num(self.high)}{right}"
        elif below:
            what = f"a number {'>' if self.low_open else '>='} {_num(self.low)}"
        else:
            what = f"a number {'<' if self.high_open else '<='} {_num(self.high)}"
        if self.allowed:
            what += " or " + " or ".join(_num(a) for a in self.allowed)
        return f"be {what}{self._note()}"

    def _note(self) -> str:
        return f" ({self.note})" if self.note else ""


def _num(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


#: Days (windows, horizons): at most 100 years, beyond which dates overflow.
DAYS = Range(0, 36_525, note="days; at most 100 years")
#: A share that excludes 1: ``[0, 1)``.
SHARE = Range(0, 1, high_open=True)
#: A probability strictly between 0 and 1.
PROBABILITY = Range(0, 1, low_open=True, high_open=True)
#: A count of at least 1.
COUNT = Range(1)
#: A number that is not negative (costs, sizes).
NON_NEGATIVE = Range(0)


def _one_of(*allowed: str) -> Check:
    def check(value: Any, params: Mapping[str, Any]) -> str | None:
        if isinstance(value, str) and value not in allowed:
            return "be one of " + ", ".join(repr(a) for a in allowed)
        return None

    return check


def _iso_date(value: Any, params: Mapping[str, Any]) -> str | None:
    if not isinstance(value, str) or value == "":
        return None
    try:
        _dt.datetime.fromisoformat(value)
    except ValueError:
        return "be an ISO date such as '2024-03-01' (or empty for no limit)"
    start, end = params.get("start_date"), params.get("end_date")
    if isinstance(start, str) and isinstance(end, str) and start and end:
        try:
            if _dt.datetime.fromisoformat(start) >= _dt.datetime.fromisoformat(end):
                return f"make start_date ({start}) come before end_date ({end})"
        except ValueError:
            return None  # the other date is reported on its own
    return None


_PERIOD = _one_of("day", "week", "month")

#: Parameter name -> check, in every notebook that has a parameter of that name.
COMMON_CHECKS: dict[str, Check] = {
    "conversion_window_days": DAYS,
    "lookback_days": DAYS,
    "horizon_days": DAYS,
    "freq": _PERIOD,
    "trend_period": _PERIOD,
    "start_date": _iso_date,
    "end_date": _iso_date,
    "top_n_events": COUNT,
    "min_group_users": NON_NEGATIVE,
    "coupon_cost": NON_NEGATIVE,
    "send_cost": NON_NEGATIVE,
    "average_order_value": NON_NEGATIVE,
    "currency": check_currency,
}

#: Notebook name -> parameter name -> check (see :func:`register`).
NOTEBOOK_CHECKS: dict[str, dict[str, Check]] = {}


def register(notebook: str, parameter: str, check: Check) -> Check:
    """Add the range check of ``parameter`` in ``notebook`` (replacing any earlier one)."""
    NOTEBOOK_CHECKS.setdefault(notebook, {})[parameter] = check
    return check


def _funnel_checks() -> None:
    from crm_helpers.funnels.core import MODES

    def steps(value: Any, params: Mapping[str, Any]) -> str | None:
        if isinstance(value, list) and (
            not value or not all(isinstance(s, str) and s for s in value)
        ):
            return "be a non-empty list of event names"
        return None

    def audience_step(value: Any, params: Mapping[str, Any]) -> str | None:
        n = len(params.get("steps") or [])
        if value == 0:  # 0: the notebook derives it (the step with the largest drop-off)
            return None
        if isinstance(value, int) and value < 0:
            return "be 0 (derive it from the data) or a step number from 1"
        if isinstance(value, int) and n >= 2 and not 1 <= value <= n - 1:
            return (
                f"be between 1 and {n - 1} (the step after which users drop off; "
                f"steps has {n} events)"
            )
        return None

    def per_step(value: Any, params: Mapping[str, Any]) -> str | None:
        n = len(params.get("steps") or [])
        if not isinstance(value, list) or not value:
            return None
        if len(value) != n - 1:
            return f"be [] or have one entry per step after the first ({n - 1})"
        if any(not (v is None or (isinstance(v, int | float) and v >= 0)) for v in value):
            return "hold hours >= 0 (or null for no limit)"
        return None

    for name, check in {
        "steps": steps,
        "audience_step": audience_step,
        "per_step_max_hours": per_step,
        "mode": _one_of(*MODES),
        "breakdown_source": _one_of("first_touch", "each_step", "user"),
    }.items():
        register("funnel_dropoff", name, check)


_funnel_checks()


def _expansion_size(value: Any, params: Mapping[str, Any]) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or value <= 0:
        return "be a share of eligible users in (0, 1) or a number of users >= 1"
    if value > 1 and not float(value).is_integer():
        return "be a whole number of users when above 1 (or a share in (0, 1))"
    return None


def _clusters(value: Any, params: Mapping[str, Any]) -> str | None:
    if not isinstance(value, str) or value == "auto":
        return None
    if value.strip().isdigit() and int(value) >= 2:
        return None
    return "be 'auto' or a whole number of clusters >= 2, such as '5'"


def _at_most(other: str) -> Check:
    def check(value: Any, params: Mapping[str, Any]) -> str | None:
        limit = params.get(other)
        num = (int, float)
        if isinstance(value, num) and isinstance(limit, num) and value > limit:
            return f"be at most {other} ({limit})"
        return None

    return check


def _all(*checks: Check) -> Check:
    def check(value: Any, params: Mapping[str, Any]) -> str | None:
        for c in checks:
            problem = c(value, params)
            if problem:
                return problem
        return None

    return check


def _timezone(value: Any, params: Mapping[str, Any]) -> str | None:
    import zoneinfo

    if not isinstance(value, str) or value == "":
        return None
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return "be an IANA time zone such as 'Europe/Berlin' (or empty: the data's)"
    return None


#: The declared ranges of each notebook's parameters (notebook -> parameter -> check), read
#: before a kernel starts. A notebook that is not listed here still runs: only its types and
#: :data:`COMMON_CHECKS` are checked.
NOTEBOOK_RANGES: dict[str, dict[str, Check]] = {
    "experiment_readout": {
        "analysis_window_days": Range(0, 36_525, low_open=True, note="days; at most 100 years"),
        "pre_period_days": DAYS,
        "alpha": PROBABILITY,
        "power": PROBABILITY,
        "alternative": _one_of("two-sided", "greater", "less"),
        "correction": _one_of("holm", "bh", "none"),
        "winsorize_percentile": Range(0, 100, note="0: no capping"),
        "sequential_tuning": Range(0, low_open=True),
        "non_inferiority_margin": SHARE,
        "min_relative_lift": Range(-1, low_open=True),
        "min_segment_users": NON_NEGATIVE,
        "coupon_value": NON_NEGATIVE,
        "gross_margin": Range(0, 1),
        "eligible_audience": NON_NEGATIVE,
    },
    "journey_mapping": {
        "session_gap_minutes": Range(0, 52_596_000, note="minutes; at most 100 years"),
        "churn_days": DAYS,
        "goal_window_days": DAYS,
        "path_depth": Range(1, 100),
        "top_n": Range(1, 10_000),
        "variant_steps": Range(1, 100),
        "unmapped": _one_of("keep", "drop", "other"),
    },
    "lookalike_expansion": {
        "lookback_days": Range(1, 36_525, note="days; at most 100 years"),
        "expansion_size": _expansion_size,
        "model": _one_of("pu", "centroid", "centroids", "random"),
        "n_centroids": Range(1, 1_000),
        "holdout_share": SHARE,
        "recent_purchase_days": DAYS,
        "audience_holdout_share": SHARE,
        "random_state": Range(0, 2**32 - 1),
    },
    "segment_profiling": {
        "time_unit_days": Range(0, 36_525, low_open=True, note="days"),
        "model_horizon_days": Range(1, 36_525, note="days; at most 100 years"),
        "dormant_after_days": DAYS,
        "churned_after_days": DAYS,
        "active_window_days": Range(1, 36_525, note="days"),
        "super_active_min_days": _all(COUNT, _at_most("active_window_days")),
        "churn_precision": Range(0, 1, low_open=True),
        "dormant_precision": _all(Range(0, 1, low_open=True), _at_most("churn_precision")),
        "clusters": _clusters,
        "cluster_min_active_days": NON_NEGATIVE,
        "export_format": _one_of("parquet", "csv"),
        "retention_cohort": _one_of("first_purchase", "signup"),
    },
    "campaign_performance": {
        "attribution_days": DAYS,
        "fatigue_window_days": Range(0, 36_525, low_open=True, note="days; at most 100 years"),
        "machine_open_seconds": NON_NEGATIVE,
        "fatigue_threshold": NON_NEGATIVE,
        "fatigued_days": Range(0, 36_525, low_open=True, note="days; at most 100 years"),
        "fatigued_min_messages": COUNT,
        "min_hour_sends": NON_NEGATIVE,
        "hour_metric": _one_of("", "open_rate", "click_rate", "conversion_rate"),
        "timezone": _timezone,
    },
}
for _nb, _checks in NOTEBOOK_RANGES.items():
    for _name, _check in _checks.items():
        register(_nb, _name, _check)


def check_parameters(
    notebook: str,
    given: Mapping[str, Any],
    defaults: Mapping[str, Any],
    types: Mapping[str, tuple[str, ...]],
) -> dict[str, Any]:
    """Check the given parameters of a notebook; return them converted to their types.

    Parameters
    ----------
    notebook
        The notebook's name (``funnel_dropoff``), for :data:`NOTEBOOK_CHECKS`.
    given
        Values set with ``-p``/``-f`` (name -> value; names already known to the notebook).
    defaults
        The parameters cell's defaults.
    types
        :func:`annotations` of the parameters cell.

    Returns
    -------
    dict
        ``given`` with values converted (a whole number for a ``float`` becomes a float).

    Raises
    ------
    ValueError
        Every problem found, one per line, each naming the parameter and the value.
    """
    problems: list[str] = []
    out: dict[str, Any] = {}
    for name, value in given.items():
        try:
            out[name] = check_type(name, value, types.get(name) or default_type(defaults[name]))
        except ValueError as exc:
            problems.append(str(exc))
            out[name] = value
    if problems:  # ranges only make sense once the types are right
        raise ValueError("\n".join(problems))
    effective = {**defaults, **out}
    checks = {**COMMON_CHECKS, **NOTEBOOK_CHECKS.get(notebook, {})}
    for name, check in checks.items():
        if name not in effective:
            continue
        problem = check(effective[name], effective)
        if problem and name in defaults and effective[name] == defaults[name]:
            # the notebook's own default failing on its own is its sentinel (e.g. 0 or []
            # for "derive from the data"): not refused; it is checked against given values
            if check(defaults[name], defaults) is not None:
                problem = None
        if problem:
            how = "given" if name in given else "default"
            problems.append(f"parameter {name!r} must {problem}; got {effective[name]!r} ({how})")
    if problems:
        raise ValueError("\n".join(problems))
    return out
