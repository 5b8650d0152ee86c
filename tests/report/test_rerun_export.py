"""A rerun's redirected audience export is not a difference; everything else still is.

``crm rerun`` writes a report's audience export to ``<rerun>/exports`` (never over the
published file), so the paths the rerun's ``metrics.json`` records point there. Tiny inline
documents: the path of the same file in the moved folder compares equal; another file, a
sibling folder with the same prefix, or a value outside paths still differ.
"""

from __future__ import annotations

import json
import os

from crm_helpers.report import rerun as rr

WAS = os.path.join(os.sep, "published", "exports")
NOW = os.path.join(os.sep, "reports", "funnel", "rerun-1", "exports")


def _doc(folder: str, name: str = "converters.csv", users: int = 7, indent=None) -> bytes:
    doc = {
        "provenance": {"parameters": {"export_dir": folder}},
        "metrics": {"export": os.path.join(folder, name), "users": users},
    }
    return json.dumps(doc, indent=indent).encode()


def test_the_same_file_in_the_moved_folder_is_no_difference():
    assert rr.compare_metrics(_doc(WAS), _doc(NOW), {NOW: WAS}) == ([], [])


def test_without_the_move_the_export_paths_differ():
    differing, _ = rr.compare_metrics(_doc(WAS), _doc(NOW))
    assert differing == ["provenance.parameters.export_dir", "metrics.export"]


def test_another_file_a_look_alike_folder_or_another_number_still_differ():
    moved = {NOW: WAS}
    assert rr.compare_metrics(_doc(WAS), _doc(NOW, "other.csv"), moved)[0] == ["metrics.export"]
    sibling = NOW + "2"
    assert rr.compare_metrics(_doc(WAS), _doc(sibling), moved)[0] == [
        "provenance.parameters.export_dir",
        "metrics.export",
    ]
    assert rr.compare_metrics(_doc(WAS), _doc(NOW, users=8), moved)[0] == ["metrics.users"]


def test_the_same_values_written_differently_still_differ_after_the_move():
    differing, _ = rr.compare_metrics(_doc(WAS), _doc(NOW, indent=1), {NOW: WAS})
    assert differing == ["(the same values written differently)"]
