"""ipywidgets controls shared by the notebooks: re-run an analysis live from the browser.

The widgets only collect choices; the analysis runs in the callback the notebook passes,
which calls the same tested helpers the static report uses. A ``Run`` button triggers the
callback (one run per click; the button is disabled while a run is in progress), so an
analyst can change several controls before paying for one engine query.

In a rendered HTML report the widgets show as nothing harmful (no live kernel); the
static results above them are the report.

>>> controls = funnel_controls(data, lambda spec, opts: show(funnel_table(data, spec)))
>>> controls          # display: steps, mode, window, breakdown, Run

The live journey controls (:func:`journey_controls`, re-exported from
:mod:`crm_helpers.widgets.journeys`) draw with :mod:`crm_helpers.plots`: the widget layer
sits above drawing, and no computing module imports either.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ipywidgets as widgets

from crm_helpers.widgets.journeys import JourneyControls, journey_controls

__all__ = [
    "DEFAULT_FUNNEL_STEPS",
    "FunnelControls",
    "JourneyControls",
    "ParamControls",
    "controls_from_params",
    "funnel_controls",
    "journey_controls",
    "known_breakdowns",
    "known_events",
    "live_session",
]

DEFAULT_FUNNEL_STEPS: tuple[str, ...] = (
    "visit",
    "product_view",
    "add_to_cart",
    "checkout",
    "purchase",
)
MODES: tuple[str, ...] = ("ordered", "strict", "any_order")
#: Columns of the contract that are keys or times, never a breakdown.
_NOT_BREAKDOWNS = frozenset({"user_id", "event", "ts", "session_id", "signup_at", "product_id"})


def live_session() -> bool:
    """Whether widgets can be used: False under the report runner (``crm run``).

    The runner sets ``$CRM_METRICS_PATH``; its HTML report has no kernel, and a widget
    created there would make the page try to load the widget manager from the network.
    ``$CRM_STATIC=1`` forces the static behaviour as well.
    """
    if os.environ.get("CRM_STATIC", "") not in ("", "0"):
        return False
    return not os.environ.get("CRM_METRICS_PATH")


def _events_table(data: Any):
    if data is None:
        return None
    return getattr(data, "events", data)


def known_events(data: Any) -> list[str]:
    """Distinct event names in ``data`` (a ``CRMData`` or an Ibis events table), sorted.

    One ``SELECT DISTINCT event`` runs in the engine; only the names come back.
    """
    events = _events_table(data)
    if events is None:
        return []
    names = events.select("event").distinct().to_pandas()["event"].dropna()
    return sorted(str(n) for n in names)


def known_breakdowns(data: Any) -> dict[str, str]:
    """Breakdown candidates of ``data``: ``{column: source}`` (no query, schema only).

    Event property columns map to ``"first_touch"`` (the value on the user's entry event),
    users-table attributes to ``"user"`` (an event property wins when both have the column).
    """
    out: dict[str, str] = {}
    tables = getattr(data, "tables", None)
    if tables is not None and "users" in tables:
        for c in tables["users"].columns:
            if c not in _NOT_BREAKDOWNS:
                out[c] = "user"
    events = _events_table(data)
    if events is not None and hasattr(events, "columns"):
        for c in events.columns:
            if c not in _NOT_BREAKDOWNS:
                out[c] = "first_touch"
    return out


def _spec_class():
    from crm_helpers.funnels.core import FunnelSpec

    return FunnelSpec


class FunnelControls(widgets.VBox):
    """Steps (ordered tags), mode, conversion window and breakdown, plus a Run button.

    Attributes
    ----------
    steps : ipywidgets.TagsInput
        Ordered funnel steps, restricted to the known event names; repeats allowed.
    mode : ipywidgets.Dropdown
        ``ordered``, ``strict`` or ``any_order``.
    window_days : ipywidgets.BoundedFloatText
        Conversion window in days.
    breakdown : ipywidgets.Dropdown
        A property to compare groups by, or None.
    run_button : ipywidgets.Button
        Calls ``on_change(spec, options)``.
    status : ipywidgets.HTML
        The last error (an invalid spec, a failing run) or a hint that controls changed.
    output : ipywidgets.Output
        Where the callback's displays go.
    """

    def __init__(
        self,
        on_change: Callable[[Any, dict], Any],
        *,
        events: Sequence[str],
        default_steps: Sequence[str],
        breakdowns: Mapping[str, str],
        mode: str = "ordered",
        window_days: float = 7.0,
        breakdown: str | None = None,
        base_spec: Any = None,
    ) -> None:
        allowed = list(dict.fromkeys([*events, *default_steps]))
        self.on_change = on_change
        self.base_spec = base_spec
        self.breakdown_sources = dict(breakdowns)
        self.last_spec: Any = None
        self.steps = widgets.TagsInput(
            value=list(default_steps),
            allowed_tags=allowed,
            allow_duplicates=True,
            placeholder="add a step",
        )
        self.mode = widgets.Dropdown(options=list(MODES), value=mode, description="mode")
        self.window_days = widgets.BoundedFloatText(
            value=float(window_days),
            min=1e-6,
            max=3650.0,
            step=1.0,
            description="window (days)",
            style={"description_width": "initial"},  # the default width cuts the label
        )
        options: list[tuple[str, str | None]] = [("(none)", None)]
        options += [(f"{name} ({src})", name) for name, src in self.breakdown_sources.items()]
        if breakdown is not None and breakdown not in self.breakdown_sources:
            raise ValueError(
                f"breakdown {breakdown!r} is not among the known breakdowns "
                f"{sorted(self.breakdown_sources)}"
            )
        self.breakdown = widgets.Dropdown(options=options, value=breakdown, description="by")
        self.run_button = widgets.Button(description="Run", button_style="primary", icon="play")
        self.status = widgets.HTML(value="")
        self.output = widgets.Output()
        self.run_button.on_click(lambda _button: self.run())
        for w in (self.steps, self.mode, self.window_days, self.breakdown):
            w.observe(self._changed, names="value")
        super().__init__(
            [
                widgets.HTML("<b>Funnel steps</b> (in order)"),
                self.steps,
                widgets.HBox([self.mode, self.window_days, self.breakdown]),
                widgets.HBox([self.run_button, self.status]),
                self.output,
            ]
        )

    def _clear_output(self) -> None:
        """Empty the output area (the synced ``outputs`` trait: works with or without a kernel)."""
        self.output.outputs = ()

    def _changed(self, _change: dict) -> None:
        self.status.value = "<i>changed: press Run</i>"

    def spec(self):
        """The :class:`~crm_helpers.funnels.core.FunnelSpec` the controls describe.

        Fields the controls do not show (dates, exclusions, count) come from ``base_spec``.
        """
        fields = {
            "steps": list(self.steps.value),
            "mode": self.mode.value,
            "conversion_window_days": float(self.window_days.value),
        }
        if self.base_spec is not None and dataclasses.is_dataclass(self.base_spec):
            return dataclasses.replace(self.base_spec, **fields)
        return _spec_class()(**fields)

    def options(self) -> dict[str, Any]:
        """The non-spec choices: ``breakdown`` (column or None) and ``breakdown_source``."""
        by = self.breakdown.value
        return {"breakdown": by, "breakdown_source": self.breakdown_sources.get(by)}

    def run(self) -> Any:
        """Build the spec and call ``on_change(spec, options)``; errors go to ``status``.

        Returns the callback's return value, or None when the spec was invalid or it failed.
        """
        self.run_button.disabled = True
        try:
            try:
                spec = self.spec()
            except (ValueError, TypeError) as exc:
                # the previous charts would read as the result of this funnel: remove them
                self._clear_output()
                self.status.value = f"<span style='color:#b00'>invalid funnel: {exc}</span>"
                return None
            self.last_spec = spec
            self.status.value = "<i>running...</i>"
            self.output.clear_output(wait=True)
            with self.output:
                try:
                    result = self.on_change(spec, self.options())
                except Exception as exc:  # show the analyst the failure, keep the widget alive
                    self._clear_output()  # no half-drawn or earlier charts under the error
                    self.status.value = f"<span style='color:#b00'>failed: {exc}</span>"
                    return None
            self.status.value = ""
            return result
        finally:
            self.run_button.disabled = False


def funnel_controls(
    data: Any,
    on_change: Callable[[Any, dict], Any],
    *,
    events: Sequence[str] | None = None,
    default_steps: Sequence[str] = DEFAULT_FUNNEL_STEPS,
    breakdowns: Sequence[str] | Mapping[str, str] | None = None,
    mode: str = "ordered",
    window_days: float = 7.0,
    breakdown: str | None = None,
    base_spec: Any = None,
) -> FunnelControls:
    """Controls to re-run a funnel analysis with other steps, mode, window or breakdown.

    Parameters
    ----------
    data
        A ``CRMData`` (or an Ibis events table, or None when ``events`` is given): the
        source of the event names and breakdown columns.
    on_change
        ``on_change(spec: FunnelSpec, options: dict)`` runs the analysis; ``options`` has
        ``breakdown`` (column name or None) and ``breakdown_source`` (``"first_touch"`` for
        an event property, ``"user"`` for a users attribute).
    events
        Event names the steps may use (default: the distinct events of ``data``).
    default_steps
        Initial steps (they are always allowed).
    breakdowns
        Breakdown columns: names, or ``{name: source}``. Default: the event properties and
        user attributes of ``data``; a plain name unknown to ``data`` is an event property.
    mode, window_days, breakdown
        Initial values.
    base_spec
        A ``FunnelSpec`` whose other fields (start/end, exclusions, count) the controls keep.

    Returns
    -------
    FunnelControls
        An ``ipywidgets.VBox``; ``.run()`` does what the Run button does.
    """
    names = list(events) if events is not None else known_events(data)
    found = known_breakdowns(data) if data is not None else {}
    if breakdowns is None:
        sources = found
    elif isinstance(breakdowns, Mapping):
        sources = dict(breakdowns)
    else:
        sources = {b: found.get(b, "first_touch") for b in breakdowns}
    return FunnelControls(
        on_change,
        events=names,
        default_steps=default_steps,
        breakdowns=sources,
        mode=mode,
        window_days=window_days,
        breakdown=breakdown,
        base_spec=base_spec,
    )


class ParamControls(widgets.VBox):
    """One widget per notebook parameter and a Run button (see :func:`controls_from_params`).

    Attributes
    ----------
    controls : dict[str, ipywidgets.Widget]
        Parameter name -> its widget.
    """

    def __init__(
        self,
        params: Mapping[str, Any],
        on_change: Callable[[dict], Any],
        choices: Mapping[str, Sequence[Any]],
    ) -> None:
        self.on_change = on_change
        self.controls: dict[str, widgets.Widget] = {
            name: _widget_for(name, value, choices.get(name)) for name, value in params.items()
        }
        self.run_button = widgets.Button(description="Run", button_style="primary", icon="play")
        self.status = widgets.HTML("")
        self.output = widgets.Output()
        self.run_button.on_click(lambda _b: self.run())
        super().__init__(
            [
                *self.controls.values(),
                widgets.HBox([self.run_button, self.status]),
                self.output,
            ]
        )

    def values(self) -> dict[str, Any]:
        """Parameter name -> current value (lists as lists, numbers as numbers)."""
        return {name: _value_of(w) for name, w in self.controls.items()}

    def run(self) -> Any:
        """Call ``on_change(values)`` with the output captured; errors go to ``status``."""
        self.run_button.disabled = True
        try:
            self.output.clear_output(wait=True)
            with self.output:
                try:
                    result = self.on_change(self.values())
                except Exception as exc:
                    self.status.value = f"<span style='color:#b00'>failed: {exc}</span>"
                    return None
            self.status.value = ""
            return result
        finally:
            self.run_button.disabled = False


def _widget_for(name: str, value: Any, choices: Sequence[Any] | None) -> widgets.Widget:
    style = {"description_width": "initial"}
    if choices is not None:
        if isinstance(value, list):
            return widgets.TagsInput(
                value=list(value), allowed_tags=list(choices), allow_duplicates=True
            )
        return widgets.Dropdown(options=list(choices), value=value, description=name, style=style)
    if isinstance(value, bool):
        return widgets.Checkbox(value=value, description=name, style=style)
    if isinstance(value, int):
        return widgets.IntText(value=value, description=name, style=style)
    if isinstance(value, float):
        return widgets.FloatText(value=value, description=name, style=style)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return widgets.TagsInput(value=list(value), allow_duplicates=True)
    if isinstance(value, str):
        return widgets.Text(value=value, description=name, style=style)
    raise TypeError(
        f"parameter {name!r}: no control for {type(value).__name__} values; pass it in "
        f"choices or leave it out"
    )


def _value_of(w: widgets.Widget) -> Any:
    v = w.value
    return list(v) if isinstance(v, tuple | list) else v


def controls_from_params(
    params: Mapping[str, Any],
    on_change: Callable[[dict], Any],
    *,
    choices: Mapping[str, Sequence[Any]] | None = None,
    include: Sequence[str] | None = None,
) -> ParamControls:
    """Widgets for a notebook's literal parameters (bool, int, float, str, list of str).

    Parameters
    ----------
    params
        Name -> current value (e.g. the parameters cell's variables).
    on_change
        Called with ``{name: value}`` when Run is pressed.
    choices
        Name -> allowed values: a dropdown (or restricted tags for list values).
    include
        Names to show (default: all of ``params``, in order).

    Returns
    -------
    ParamControls
        An ``ipywidgets.VBox``; ``.controls[name]`` is each widget, ``.run()`` presses Run.
    """
    names = list(include) if include is not None else list(params)
    unknown = [n for n in names if n not in params]
    if unknown:
        raise KeyError(f"unknown parameter(s) {unknown}; known: {list(params)}")
    return ParamControls({n: params[n] for n in names}, on_change, choices or {})
