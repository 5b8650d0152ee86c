"""Generated worlds and executed reports built once per test session, shared on disk.

``pytest -n 2`` runs two worker processes; a session-scoped fixture is built once per worker,
and a module-scoped one once per module. What only gets *read* afterwards (a synthetic world,
a report run on it with fixed parameters) is built here once for the whole session: under the
session's base temporary folder (the parent of the workers' own folders), by whichever
process asks first, while the others wait on a file lock (``fcntl``) and then read it.

Readers must not change what they get (the same rule as for any session fixture); a report's
folder may gain files (an index) but its report files stay as built.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["DEFAULT_PARAMETERS", "WITH_EXPORT", "default_report", "shared_dir", "shared_report"]

#: The parameters of each notebook's default report on the small world (empty: none).
DEFAULT_PARAMETERS: dict[str, dict] = {
    "experiment_readout": {"experiment_id": "cart_abandoner_coupon", "coupon_value": 2.0},
}

#: Notebooks whose default report also writes the audience export (its notebook test checks
#: the export; the export adds one line of text to the report).
WITH_EXPORT = frozenset({"campaign_performance", "funnel_dropoff", "segment_profiling"})


def _root(tmp_path_factory) -> Path:
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the controller's base folder: the same for every worker
    root = base / "shared"
    root.mkdir(exist_ok=True)
    return root


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def shared_dir(tmp_path_factory, name: str, build: Callable[[Path], object]) -> Path:
    """The folder ``<session root>/shared/<name>``, filled by ``build(folder)`` once a session.

    ``build`` runs in the final folder (paths recorded inside stay valid); a folder left half
    built by a failed ``build`` is removed and built again by the next caller.
    """
    root = _root(tmp_path_factory)
    out, done = root / name, root / f"{name}.done"
    with _locked(root / f"{name}.lock"):
        if not done.exists():
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            build(out)
            done.touch()
    return out


def shared_report(
    tmp_path_factory,
    notebook: str,
    data_dir: Path,
    parameters: dict | None = None,
    *,
    export: bool = False,
    key: str | None = None,
):
    """``run_notebook(notebook, data_dir, parameters)`` run once a session; its RunResult.

    ``export``: also ``export_dir=<reports folder>/exports`` (what the notebook tests check).
    ``key`` names the run (default: the notebook, the data folder's name and ``export``);
    two callers with the same key must mean the same run. Asserts the run succeeded.
    """
    from crm_helpers.report.run import RunResult, run_notebook

    key = key or f"report_{notebook}_{Path(data_dir).name}{'_export' if export else ''}"
    params = dict(parameters or {})

    def build(out: Path) -> None:
        if export:
            params["export_dir"] = str(out / "exports")
        res = run_notebook(
            notebook, data_dir=data_dir, out_dir=out, parameters=params, update_index=False
        )
        (out / "result.json").write_text(json.dumps(dataclasses.asdict(res), default=str))

    out = shared_dir(tmp_path_factory, key, build)
    fields = {f.name for f in dataclasses.fields(RunResult)}
    recorded = json.loads((out / "result.json").read_text())
    res = RunResult(**{k: v for k, v in recorded.items() if k in fields})
    if export:
        params["export_dir"] = str(out / "exports")
    assert res.parameters == {**res.parameters, **params}, (key, "another run under this key")
    assert res.ok, res.error
    return res


def default_report(tmp_path_factory, notebook: str, data_dir: Path):
    """The default report of ``notebook`` on ``data_dir``, run once a session.

    With :data:`DEFAULT_PARAMETERS` and, for :data:`WITH_EXPORT`, the audience export: the
    one run the notebook's own tests, the browser tests and the analyst's read
    (tests/notebooks/test_report_browser.py, test_report_for_analysts.py).
    """
    return shared_report(
        tmp_path_factory,
        notebook,
        data_dir,
        DEFAULT_PARAMETERS.get(notebook, {}),
        export=notebook in WITH_EXPORT,
    )
