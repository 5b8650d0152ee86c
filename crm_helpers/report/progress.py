"""Progress lines of a notebook's long steps, for the analyst running it in JupyterLab.

A long cell (loading and validating the data, fitting a model) shows one line while it runs
and replaces it when the step ends, in place (one output per step, updated through its
``display_id``)::

    Loading the data…                                   while it runs
    Loading the data: 5 tables, validated (3.2 s)       when it is done
    Loading the data: failed after 1.4 s                when it raised (the error follows)

>>> from crm_helpers.report import progress
>>> with progress.step("Fitting the models") as s:     # doctest: +SKIP
...     fit = ...
...     s.done("3 models")

:func:`load` is :func:`crm_helpers.load` inside such a step; every notebook loads through it.

The lines are for the person waiting, not for the reader of the report: each output carries
the metadata flag :data:`PROGRESS_META`, and :mod:`crm_helpers.report.render` leaves those
outputs out of the HTML report (it would otherwise fill with timings). The executed
``.ipynb`` keeps them (nbclient applies the update, so it holds the final line). Outside a
Jupyter kernel (a script, a test) the lines go to standard error, start and end.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["PROGRESS_META", "Step", "load", "step"]

#: Output metadata flag of a progress line (the report renderer drops these outputs).
PROGRESS_META = "crm_progress"
ELLIPSIS = "…"


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _seconds(s: float) -> str:
    """``3.24`` -> ``"3.2 s"``; ``75`` -> ``"1 min 15 s"``."""
    if s < 60:
        return f"{s:.1f} s"
    m, sec = divmod(round(s), 60)
    return f"{m} min {sec} s"


class Step:
    """One running step: its line is shown when it starts and replaced when it ends.

    Parameters
    ----------
    what
        What the step does, as a reader would say it (``"Loading the data"``).
    """

    def __init__(self, what: str) -> None:
        self.what = str(what)
        self.started = time.perf_counter()
        self.result: str | None = None
        self.line = f"{self.what}{ELLIPSIS}"
        self._id = f"crm-progress-{uuid.uuid4().hex}"
        self._kernel = _in_kernel()
        self._show(update=False)

    @property
    def elapsed(self) -> float:
        """Seconds since the step started."""
        return time.perf_counter() - self.started

    def done(self, result: str = "") -> None:
        """Say what the step produced (``"5 tables, validated"``); the time is added."""
        self.result = str(result)

    def _show(self, update: bool) -> None:
        if not self._kernel:
            print(self.line, file=sys.stderr, flush=True)
            return
        from IPython.display import display, update_display

        data = {"text/plain": self.line}
        meta = {PROGRESS_META: True}
        if update:
            update_display(data, raw=True, metadata=meta, display_id=self._id)
        else:
            display(data, raw=True, metadata=meta, display_id=self._id)

    def _finish(self, failed: bool) -> None:
        took = _seconds(self.elapsed)
        if failed:
            self.line = f"{self.what}: failed after {took}"
        elif self.result:
            self.line = f"{self.what}: {self.result} ({took})"
        else:
            self.line = f"{self.what}: done ({took})"
        self._show(update=True)


@contextmanager
def step(what: str) -> Iterator[Step]:
    """A long step with a progress line (see the module docstring).

    Parameters
    ----------
    what
        What the step does (``"Fitting the models"``).

    Yields
    ------
    Step
        Call ``.done("what came out")`` to say what the step produced.
    """
    s = Step(what)
    try:
        yield s
    except BaseException:
        s._finish(failed=True)
        raise
    s._finish(failed=False)


def _rows(n: int) -> str:
    return f"{n:,} row{'s' if n != 1 else ''}"


def load(
    data_dir: str | Path | None = None,
    *,
    engine: Any = "duckdb",
    require: Iterable[str] = (),
    count_rows: bool = False,
    **options: Any,
):
    """:func:`crm_helpers.load` with a progress line: ``Loading the data: 5 tables (users,
    events, orders, messages, assignments), validated (3.2 s)``.

    Parameters
    ----------
    data_dir, engine, require, **options
        As :func:`crm_helpers.data.load`.
    count_rows
        Also count the rows of every table (one query per table) and say the largest.

    Returns
    -------
    CRMData
    """
    from crm_helpers.data import load as _load

    with step("Loading the data") as s:
        data = _load(data_dir, engine=engine, require=list(require), **options)
        names = list(data.tables)
        checked = "validated" if options.get("validate", True) else "not validated"
        text = f"{len(names)} table{'s' if len(names) != 1 else ''} ({', '.join(names)}), {checked}"
        if count_rows and names:
            counts = data.row_counts()
            big = max(counts, key=counts.get)
            text += f"; {big}: {_rows(counts[big])}"
        s.done(text)
    return data
