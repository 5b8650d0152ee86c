"""Which computation path ran: the sorted-array kernels or the Ibis expressions.

Analyses note the path they took (:func:`record_path`); a report's provenance reads
:func:`paths_used` at the end of the run, so it can say which path computed its numbers.
The record is per process (a notebook kernel runs one report).
"""

from __future__ import annotations

from typing import Literal

__all__ = ["Path", "paths_used", "record_path", "reset_paths"]

Path = Literal["kernel", "ibis"]
_USED: dict[str, set[str]] = {}


def record_path(analysis: str, path: Path) -> None:
    """Note that ``analysis`` (e.g. ``"funnel"``, ``"journeys"``) computed on ``path``."""
    if path not in ("kernel", "ibis"):
        raise ValueError(f"path must be 'kernel' or 'ibis', got {path!r}")
    _USED.setdefault(analysis, set()).add(path)


def paths_used() -> dict[str, list[str]]:
    """Analysis -> the paths it took in this process (sorted), e.g. ``{"funnel": ["kernel"]}``."""
    return {a: sorted(p) for a, p in sorted(_USED.items())}


def reset_paths() -> None:
    """Forget what was recorded (tests)."""
    _USED.clear()
