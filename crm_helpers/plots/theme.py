"""The one shared look of every CRM Workbench figure: palette and plotly template.

>>> from crm_helpers.plots import theme
>>> theme.use()                      # in a notebook: template + offline notebook renderer
>>> fig.update_layout(template=theme.TEMPLATE)   # or per figure

Colours are a colour-blind-friendlier qualitative palette; ``GREY`` marks context,
``HIGHLIGHT`` the thing a chart is about, ``POSITIVE``/``NEGATIVE`` signed effects.

Text from the data (event names, property and attribute values, column names, experiment
and variant ids) reaches titles, axis labels, categories, trace names, hover text and
annotations of the figures. Plotly renders a subset of HTML in all of these (``<a href>``
as a live link, ``<span style>``, ``<b>``, ``<br>``, ...), so every such string goes through
:func:`esc` once, where a builder puts it into the figure; :func:`figure` escapes the title
and the axis titles it is given. Builder-made markup (``<br>`` in hover templates) stays.
"""

from __future__ import annotations

import html

import plotly.graph_objects as go
import plotly.io as pio

#: Qualitative palette, in the order traces take colours.
COLORS: tuple[str, ...] = (
    "#2F6690",
    "#D1495B",
    "#EDAE49",
    "#00798C",
    "#66A182",
    "#8E6C8A",
    "#8F8A2E",  # olive (was #30638E, indistinguishable from the first blue)
    "#E07A5F",
    "#9C6644",
    "#5E548E",
)
PALETTE = COLORS
GREY = "#B0B0B0"
HIGHLIGHT = "#D1495B"
POSITIVE = "#66A182"
NEGATIVE = "#D1495B"
FONT = "Inter, 'Segoe UI', Helvetica, Arial, sans-serif"

TEMPLATE_NAME = "crm"

#: The plotly template: white background, light grid, the palette, readable fonts.
TEMPLATE: go.layout.Template = go.layout.Template(
    layout=go.Layout(
        colorway=list(COLORS),
        font={"family": FONT, "size": 13, "color": "#222"},
        title={"font": {"size": 17}, "x": 0.0, "xanchor": "left"},
        paper_bgcolor="white",
        plot_bgcolor="white",
        xaxis={"showgrid": False, "linecolor": "#888", "ticks": "outside", "automargin": True},
        # standoff: a y title never overlaps the tick labels (it did on short category axes)
        yaxis={
            "gridcolor": "#E6E6E6",
            "zerolinecolor": "#BBB",
            "automargin": True,
            "title": {"standoff": 12},
        },
        legend={"bgcolor": "rgba(255,255,255,0)", "title": {"text": ""}},
        hoverlabel={"font": {"family": FONT}},
        margin={"l": 60, "r": 20, "t": 60, "b": 50},
        height=420,
    )
)
pio.templates[TEMPLATE_NAME] = TEMPLATE

#: Renderer for notebooks run by ``crm run``: the figure JSON (JupyterLab, VS Code and the
#: report renderer use it) plus an offline HTML fallback with plotly.js embedded.
NOTEBOOK_RENDERER = "plotly_mimetype+notebook"


def esc(value: object) -> str:
    """``value`` as inert plotly text: ``&``, ``<`` and ``>`` escaped (shown, not rendered).

    >>> esc('<a href="https://evil.example/">x</a> & co')
    '&lt;a href="https://evil.example/"&gt;x&lt;/a&gt; &amp; co'
    """
    return html.escape(str(value), quote=False)


def esc_all(values: object) -> list[str]:
    """:func:`esc` of each value of an iterable (category labels, trace names)."""
    return [esc(v) for v in values]  # type: ignore[attr-defined]


def axis_title(what: str, unit: str = "") -> str:
    """An axis title that names its unit: ``axis_title("users")`` -> ``"Users"``,
    ``axis_title("revenue", "EUR")`` -> ``"Revenue (EUR)"`` (first letter capitalised)."""
    text = what[:1].upper() + what[1:]
    return f"{text} ({unit})" if unit else text


def rate_title(what: str, of: str) -> str:
    """The title of a rate or share axis, saying what it is a share of:
    ``rate_title("click rate", "messages sent")`` -> ``"Click rate (% of messages sent)"``."""
    return axis_title(what, f"% of {of}")


#: The unit of a money axis when no currency is known: amounts as the data hold them.
NO_CURRENCY = "in the data's currency"


def money_title(what: str, currency: str = "") -> str:
    """The title of a money axis: ``"Net value (EUR)"``; without a currency
    ``"Net value (in the data's currency)"`` (never a guessed symbol)."""
    return axis_title(what, currency or NO_CURRENCY)


def apply(fig: go.Figure) -> go.Figure:
    """Give one figure the shared template (returns the same figure)."""
    fig.update_layout(template=TEMPLATE)
    return fig


def figure(title: str | None = None, **layout: object) -> go.Figure:
    """An empty figure with the shared template, an optional title and layout settings.

    The title and string axis titles (``xaxis_title=...``) are plain text: they are
    escaped with :func:`esc` (names from the data often end up in them).
    """
    fig = go.Figure()
    fig.update_layout(template=TEMPLATE)
    if title:
        fig.update_layout(title=esc(title))
    layout = {
        k: esc(v) if k.endswith("_title") and isinstance(v, str) else v for k, v in layout.items()
    }
    if layout:
        fig.update_layout(**layout)
    return fig


def use(renderer: str | None = NOTEBOOK_RENDERER) -> None:
    """Make the shared template the default and set an offline notebook renderer.

    Parameters
    ----------
    renderer
        A plotly renderer string, or None to leave the renderer alone.
    """
    pio.templates.default = f"plotly_white+{TEMPLATE_NAME}"
    if renderer:
        import crm_helpers.nbformat_fast  # noqa: F401 - nbformat without the IRI grammar

        pio.renderers.default = renderer
