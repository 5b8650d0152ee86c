"""Sankey labels never overlap: only nodes a text line high are labelled, and the two columns
whose labels face each other are shortened to half the gap between them (#26)."""

from __future__ import annotations

import pandas as pd

from crm_helpers.plots import journeys as J


def _nodes() -> pd.DataFrame:
    rows = [(0, "product_view", 1000)]
    rows += [(1, "checkout", 600), (1, "search", 300)] + [(1, f"tiny{i}", 4) for i in range(25)]
    rows += [(2, "add_to_cart", 500), (2, "[end]", 400)]
    rows += [(3, "wishlist_add_to_favourites", 450), (3, "a", 400), (3, "b", 10)]
    df = pd.DataFrame(rows, columns=["level", "step", "journeys"])
    df["share"] = df["journeys"] / 1000
    return df


def test_small_nodes_are_not_labelled_and_big_ones_are():
    nodes = _nodes()
    height = J.sankey_height(nodes)
    assert height > 520  # a column of 27 nodes makes the figure taller
    labels = dict(
        zip(
            zip(nodes["level"], nodes["step"], strict=True),
            J.sankey_labels(nodes, height),
            strict=True,
        )
    )
    assert labels[(0, "product_view")] == "product_view (100%)"
    assert labels[(1, "checkout")] == "checkout (60%)"
    assert all(labels[(1, f"tiny{i}")] == "" for i in range(25))
    assert labels[(3, "b")] == ""


def test_every_label_has_a_line_of_height_and_facing_labels_fit_half_the_gap():
    nodes = _nodes()
    height = J.sankey_height(nodes)
    labels = J.sankey_labels(nodes, height)
    # brute force: plotly's common scale is the tightest column's
    plot = height - J.SANKEY_MARGIN_PX
    ky = min(
        (plot - (len(g) - 1) * J.SANKEY_PAD_PX) / g["journeys"].sum()
        for _, g in nodes.groupby("level")
    )
    gap = J.SANKEY_WIDTH_PX / 3 - J.SANKEY_NODE_PX
    for (level, n), text in zip(
        zip(nodes["level"], nodes["journeys"], strict=True), labels, strict=True
    ):
        lines = text.split("\n") if text else []
        assert n * ky >= len(lines) * J.SANKEY_LINE_PX  # a label fits its node's height
        if level >= 2:  # the last two columns face each other
            assert all(len(line) * 7.8 <= gap / 2 for line in lines), text
    long = labels[list(nodes["step"]).index("wishlist_add_to_favourites")]
    assert long.endswith("(45%)") and "…" in long
    # a short name keeps its letters, its share on the second line
    assert labels[list(nodes["step"]).index("a")] == "a (40%)"


def test_hover_keeps_the_full_name():
    nodes = _nodes()
    links = pd.DataFrame(
        [(0, "product_view", 1, "checkout", 600)],
        columns=["source_level", "source", "target_level", "target", "journeys"],
    )
    fig = J.plot_sankey(nodes, links)
    names = [row[0] for row in fig.data[0].node.customdata]
    assert "wishlist_add_to_favourites (45%)" in names and "tiny0 (0%)" in names
