"""Parameter checks before a report runs: types from the parameters cell, ranges per notebook.

``crm run`` checks every value given with ``-p`` or ``-f`` here, before a kernel starts, so a
wrong value costs no run and the message names the parameter, what it expects and the value
given (the CLI exits with status 2).

Types
-----
A parameter's type is its annotation in the notebook's parameters cell (``x: int = 3``), else
the type of its default. ``int`` takes whole numbers (not ``true``), ``float`` any number,
``bool`` only ``true``/``false``, ``str`` text (a YAML date such as ``2024-03-01`` is taken as
its ISO text), ``list`` a list (``[a, b]``; a tuple is taken as a list), ``dict`` a mapping.
``x: str | None`` also takes ``null``. A parameter without annotation whose default is
``None`` takes anything.

Ranges
------
:data:`COMMON_CHECKS` holds range checks that apply to a parameter of that name in every
notebook (windows are not negative, periods are ``day``/``week``/``month``, dates are ISO
dates, ``start_date`` is before ``end_date``), :data:`NOTEBOOK_CHECKS` those of one notebook
(keyed by notebook name, then parameter name). A check is ``check(value, params) -> problem``:
``params`` are all effective values (defaults with overrides), the result is ``None`` when
the value is fine, else a short phrase that completes "must ...", e.g. ``"be between 1 and 4
(a step after which users drop off; steps has 5 events)"``. A new notebook adds its own with
:func:`register`, next to its helpers (they know the ranges); checks of parameters that were
not given are run too, so a params file that changes ``steps`` is checked against the
default ``audience_step``. A default that fails its check on its own (a sentinel such as
``0`` or ``[]`` for "derive from the data") is left to the notebook.
"""

from __future__ import annotations

import ast
import datetime as _dt
import math
from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "COMMON_CHECKS",
    "NOTEBOOK_CHECKS",
    "Check",
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
    if name == "int":
        return isinstance(value, int) and not isinstance(value, bool), value
    if name == "float":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if name == "str":
        if isinstance(value, _dt.date | _dt.datetime):
            return True, value.isoformat()
        return isinstance(value, str), value
    if name in ("list", "tuple"):
        return isinstance(value, list | tuple), list(value) if isinstance(value, tuple) else value
    if name == "dict":
        return isinstance(value, dict), value
    return True, value


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


def _non_negative(value: Any, params: Mapping[str, Any]) -> str | None:
    if isinstance(value, int | float) and not (math.isfinite(value) and value >= 0):
        return "be a number >= 0"
    return None


def _positive_int(value: Any, params: Mapping[str, Any]) -> str | None:
    if isinstance(value, int) and value < 1:
        return "be at least 1"
    return None


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


def _window(value: Any, params: Mapping[str, Any]) -> str | None:
    return _non_negative(value, params)


_PERIOD = _one_of("day", "week", "month")

#: Parameter name -> check, in every notebook that has a parameter of that name.
COMMON_CHECKS: dict[str, Check] = {
    "conversion_window_days": _window,
    "lookback_days": _window,
    "horizon_days": _window,
    "freq": _PERIOD,
    "trend_period": _PERIOD,
    "start_date": _iso_date,
    "end_date": _iso_date,
    "top_n_events": _positive_int,
    "min_group_users": _non_negative,
    "coupon_cost": _non_negative,
    "send_cost": _non_negative,
    "average_order_value": _non_negative,
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


def _campaign_checks() -> None:
    def positive(value: Any, params: Mapping[str, Any]) -> str | None:
        if isinstance(value, int | float) and not (math.isfinite(value) and value > 0):
            return "be a number > 0"
        return None

    def timezone(value: Any, params: Mapping[str, Any]) -> str | None:
        import zoneinfo

        if not isinstance(value, str) or value == "":
            return None
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            return "be an IANA time zone such as 'Europe/Berlin' (or empty: the data's)"
        return None

    for name, check in {
        "attribution_days": _non_negative,
        "fatigue_window_days": positive,
        "machine_open_seconds": _non_negative,
        "fatigue_threshold": _non_negative,
        "fatigued_days": positive,
        "fatigued_min_messages": _positive_int,
        "min_hour_sends": _non_negative,
        "hour_metric": _one_of("", "open_rate", "click_rate", "conversion_rate"),
        "timezone": timezone,
    }.items():
        register("campaign_performance", name, check)


_campaign_checks()


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
