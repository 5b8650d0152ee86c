"""Live journey controls: anchor, depth and the groups to compare, redrawn on every change.

:class:`JourneyControls`: an anchor dropdown, a depth slider, a "groups" dropdown (the users
columns, or converters vs drop-outs) with the two groups to compare; any change recomputes
:func:`crm_helpers.journeys.explore.explore_tables` and redraws the Sankey and the heatmap
(:mod:`crm_helpers.plots.journeys`) in its output area (when the grouping changes, the two
group dropdowns are refilled first and the figures are drawn once). Errors go to ``status``;
the controls stay usable. Unlike the other controls of :mod:`crm_helpers.widgets` there is no
Run button: one choice costs a few small queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ibis.expr.types as ir
import ipywidgets as widgets

from crm_helpers.journeys import analysis
from crm_helpers.journeys.core import Prepared
from crm_helpers.journeys.explore import ExploreResult, explore_tables, journey_groups

__all__ = ["JourneyControls", "journey_controls"]


class JourneyControls(widgets.VBox):
    """Anchor, depth and groups to compare; redraws the Sankey and the heatmap on change.

    Attributes
    ----------
    anchor : ipywidgets.Dropdown
    depth : ipywidgets.IntSlider
    group_column : ipywidgets.Dropdown
        ``""`` (converters vs drop-outs) or a users column.
    group_a, group_b : ipywidgets.Dropdown
        The groups compared (B - A).
    output : ipywidgets.Output
    status : ipywidgets.HTML
    result : ExploreResult or None
        The last result drawn.
    """

    def __init__(
        self,
        prep: Prepared,
        *,
        users: ir.Table | None = None,
        columns: Sequence[str] = (),
        goal: str,
        goal_window_days: float | None = None,
        anchor: str,
        depth: int = 4,
        group_column: str = "",
        group_a: str = "",
        group_b: str = "",
        max_steps: int = 8,
        max_depth: int = 10,
        draw: bool = True,
    ) -> None:
        self.prep = prep
        self.users = users
        self.goal = goal
        self.goal_window_days = goal_window_days
        self.max_steps = max_steps
        self.draw = draw
        self.result: ExploreResult | None = None
        self.redraws = 0
        self._quiet = False
        self._groups: ir.Table | None = None
        style = {"description_width": "initial"}
        self.anchor = widgets.Dropdown(
            options=list(prep.steps), value=anchor, description="anchor", style=style
        )
        self.depth = widgets.IntSlider(
            value=int(depth),
            min=1,
            max=max(int(max_depth), int(depth)),
            description="depth",
            continuous_update=False,
            style=style,
        )
        col_options = [("converters vs drop-outs", "")] + [(c, c) for c in columns]
        if group_column and group_column not in columns:
            col_options.append((group_column, group_column))
        self.group_column = widgets.Dropdown(
            options=col_options, value=group_column, description="groups", style=style
        )
        self.group_a = widgets.Dropdown(description="A", style=style)
        self.group_b = widgets.Dropdown(description="B", style=style)
        self.status = widgets.HTML("")
        self.output = widgets.Output()
        self._fill_groups(group_a, group_b)
        for w in (self.anchor, self.depth, self.group_a, self.group_b):
            w.observe(self._changed, names="value")
        self.group_column.observe(self._grouping_changed, names="value")
        super().__init__(
            [
                widgets.HBox([self.anchor, self.depth]),
                widgets.HBox([self.group_column, self.group_a, self.group_b]),
                self.status,
                self.output,
            ]
        )

    def _fill_groups(self, a: str = "", b: str = "") -> None:
        """Recompute the groups of the chosen grouping and refill the A / B dropdowns."""
        self._groups, names = journey_groups(
            self.prep, self.users, self.group_column.value, self.goal, self.goal_window_days
        )
        self._quiet = True
        try:
            self.group_a.options = names
            self.group_b.options = names
            self.group_a.value = a if a in names else (names[0] if names else None)
            rest = [n for n in names if n != self.group_a.value]
            self.group_b.value = b if b in names else (rest[0] if rest else None)
        finally:
            self._quiet = False

    def _grouping_changed(self, _change: dict) -> None:
        try:
            self._fill_groups()
        except Exception as exc:  # e.g. a column the users lack: keep the controls alive
            self.status.value = f"<span style='color:#b00'>failed: {exc}</span>"
            return
        self.redraw()

    def _changed(self, _change: dict) -> None:
        if not self._quiet:
            self.redraw()

    def choice(self) -> dict[str, Any]:
        """The current choice (``anchor, depth, group_column, group_a, group_b``)."""
        return {
            "anchor": self.anchor.value,
            "depth": int(self.depth.value),
            "group_column": self.group_column.value,
            "group_a": self.group_a.value,
            "group_b": self.group_b.value,
        }

    def _append(self, fig: Any) -> None:
        """Add a plotly figure to the output area as a display bundle. Not through the
        display formatter: in a kernel plotly's ``_ipython_display_`` would draw into the
        cell instead (and every redraw would stack another copy under the controls)."""
        import plotly.io as pio

        bundle = pio.renderers["plotly_mimetype"].to_mimebundle(fig.to_dict())
        out = {"output_type": "display_data", "data": bundle, "metadata": {}}
        self.output.outputs = (*self.output.outputs, out)

    def redraw(self) -> ExploreResult | None:
        """Recompute the tables for the current choice and redraw; errors go to ``status``."""
        from crm_helpers.plots import journeys as plots

        c = self.choice()
        self.status.value = "<i>running...</i>"
        try:
            res = explore_tables(
                self.prep,
                self._groups,
                anchor=c["anchor"],
                depth=c["depth"],
                group_a=c["group_a"],
                group_b=c["group_b"],
                max_steps=self.max_steps,
                group_column=c["group_column"],
                goal=self.goal,
            )
        except Exception as exc:
            self.output.outputs = ()
            self.status.value = f"<span style='color:#b00'>failed: {exc}</span>"
            return None
        self.result = res
        self.redraws += 1
        if self.draw:
            # appended to the synced outputs (not `with output:`): works with or without a kernel
            self.output.outputs = ()
            if len(res.paths):
                nodes, links = analysis.sankey_data(res.paths, "after")
                fig = plots.plot_sankey(nodes, links, title=f"After {c['anchor']}")
                self._append(fig)
            if res.differential is not None:
                fig = plots.plot_step_matrix_diff(
                    res.differential,
                    title=f"{c['group_b']} minus {c['group_a']}: share at each step",
                )
                self._append(fig)
        self.status.value = ""
        return res


def journey_controls(prep: Prepared, **kw: Any) -> JourneyControls:
    """:class:`JourneyControls` drawn once for the initial choice (same keyword arguments)."""
    c = JourneyControls(prep, **kw)
    c.redraw()
    return c
