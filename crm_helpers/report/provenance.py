"""Provenance of a report: parameters, data fingerprint, package versions, lock, git commit.

:func:`header` is the cell every notebook shows right after its parameters; the same
dictionary is recorded in ``metrics.json`` and ``run.json`` under ``"provenance"``. Its
``lock`` is :func:`crm_helpers.envlock.info`: the sha256 of ``requirements/lock.txt`` and
whether the environment that made the report had exactly its pins (None outside a checkout).
"""

from __future__ import annotations

import html
import math
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from crm_helpers import config, envlock

#: Distribution name -> label shown in reports. pyspark only when installed.
PACKAGES: dict[str, str] = {
    "pandas": "pandas",
    "ibis-framework": "ibis",
    "duckdb": "duckdb",
    "pyspark": "pyspark",
    "plotly": "plotly",
    "crm-helpers": "crm_helpers",
}

#: Parameters whose value was derived from the data after the parameters cell: name -> how.
_DERIVED: dict[str, str] = {}

#: Marker the renderer uses to put the summary between the title and the provenance block.
PROVENANCE_MARKER = "<!-- crm:provenance -->"


def derive(name: str, value: Any, how: str) -> Any:
    """Record that parameter ``name`` was derived from the data, and return ``value``.

    A notebook derives an empty parameter after its parameters cell and *before*
    :func:`header`, which then shows it as ``value (derived: how)``; ``metrics.json`` keeps
    ``provenance.derived`` as ``{name: how}``.

    >>> breakdown_property = derive("breakdown_property", "platform", "fewest groups with 200+ users")
    """
    _DERIVED[str(name)] = str(how)
    return value


def derived() -> dict[str, str]:
    """The parameters derived so far in this kernel: ``{name: how}``."""
    return dict(_DERIVED)


def versions() -> dict[str, str]:
    """Versions of python and the packages in :data:`PACKAGES` that are installed."""
    out = {"python": platform.python_version()}
    for dist, label in PACKAGES.items():
        try:
            out[label] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            if label == "crm_helpers":
                import crm_helpers

                out[label] = crm_helpers.__version__
    return out


def git_info(root: str | Path | None = None) -> dict[str, Any]:
    """``{"commit": <sha or None>, "dirty": <bool or None>}`` of the project checkout."""
    root = Path(root) if root is not None else config.ROOT

    def _git(*args: str) -> str | None:
        try:
            res = subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=20, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return res.stdout.strip() if res.returncode == 0 else None

    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def collect(params: dict[str, Any], data=None, title: str | None = None) -> dict[str, Any]:
    """The provenance dictionary of one run.

    Parameters
    ----------
    params
        The notebook's parameters (name -> literal value).
    data
        A :class:`~crm_helpers.data.CRMData`, or None when the data could not be loaded.
    title
        The report title.

    Returns
    -------
    dict
        ``title``, ``parameters``, ``data`` (``dir``, ``engine``, ``fingerprint`` with
        ``sha256`` and ``rows``), ``versions``, ``lock`` and ``git``.
    """
    from crm_helpers.report.metrics import to_jsonable

    out: dict[str, Any] = {"title": title, "parameters": to_jsonable(dict(params))}
    how = {k: v for k, v in _DERIVED.items() if k in params}
    if how:
        out["derived"] = how
    if data is not None:
        out["data"] = {
            # warehouse tables (crm_helpers.data.warehouse) have a location instead of a folder
            "dir": getattr(data, "location", None) or str(data.data_dir),
            "engine": data.engine,
            "fingerprint": data.fingerprint(),
        }
    out["versions"] = versions()
    out["lock"] = envlock.info()
    out["git"] = git_info()
    return out


_UNITS = {"_days": "days", "_hours": "hours", "_minutes": "minutes", "_seconds": "seconds"}
_EACH = {2: "one half each", 3: "one third each", 4: "one quarter each", 5: "one fifth each"}


def _number(x: float) -> str:
    """``14.0`` -> ``14``; ``0.3333333333333333`` -> ``0.3333``; ``1e-06`` stays short."""
    if math.isfinite(x) and x == round(x) and abs(x) < 1e15:
        return f"{int(x):,}" if abs(x) >= 10_000 else str(int(x))
    return f"{x:.4g}"


def shown_value(value: Any, name: str = "") -> str:
    """A parameter's value as an analyst would type it, with the unit its name gives.

    ``14.0`` named ``analysis_window_days`` -> ``"14 days"``; ``0.05`` -> ``"0.05"``;
    ``{"control": 1/3, "a": 1/3, "b": 1/3}`` -> ``"one third each (control, a, b)"``; other
    dicts ``"treatment: 0.8, holdout: 0.2"``; ``""`` -> ``'"" (default)'``.
    """
    if isinstance(value, str):
        return '"" (default)' if value == "" else value
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int | float):
        unit = next((u for suffix, u in _UNITS.items() if name.endswith(suffix)), "")
        text = _number(float(value))
        if not unit:
            return text
        return f"{text} {unit[:-1] if text == '1' else unit}"
    if isinstance(value, dict) and value:
        vals = list(value.values())
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in vals):
            n = len(vals)
            if n > 1 and all(abs(v - 1 / n) < 1e-9 for v in vals):
                each = _EACH.get(n, f"1/{n} each")
                return f"{each} ({', '.join(str(k) for k in value)})"
            return ", ".join(f"{k}: {_number(float(v))}" for k, v in value.items())
    return str(value)


def _shown(value: Any, name: str = "") -> str:
    return shown_value(value, name)


def _kv_table_value(k: str, v: Any, notes: dict[str, str]) -> str:
    """A derived empty value reads "none" (its note says why), not '"" (default)'."""
    return "none" if v == "" and k in notes else _shown(v, k)


def _kv_table(rows: dict[str, Any], caption: str, notes: dict[str, str] | None = None) -> str:
    notes = notes or {}

    def _value(k: Any, v: Any) -> str:
        return _kv_table_value(str(k), v, notes)

    def note(k: str) -> str:
        if k not in notes:
            return ""
        return f" <em class='crm-derived'>(derived: {html.escape(notes[k])})</em>"

    body = "".join(
        f"<tr><th style='text-align:left'>{html.escape(str(k))}</th>"
        f"<td style='text-align:left'>{html.escape(_value(k, v))}{note(str(k))}</td></tr>"
        for k, v in rows.items()
    )
    return (
        f"<table class='crm-kv'><caption style='text-align:left;font-weight:bold'>"
        f"{html.escape(caption)}</caption>{body}</table>"
    )


def _lock_text(lock: dict[str, Any] | None) -> str:
    """``Lock: <sha>.`` (and how the environment differed from it), or ``""`` without one."""
    if not lock or not lock.get("sha256"):
        return ""
    out = f"Lock: <code>{html.escape(str(lock['sha256'])[:12])}</code>"
    if lock.get("matches_environment") is False:
        first = "; ".join(lock.get("differences") or [])
        out += html.escape(
            f" (the environment differed from it in {lock.get('n_differences')} package(s): "
            f"{first})"
        )
    return out + ". "


def to_html(prov: dict[str, Any]) -> str:
    """HTML of a provenance dict: title, marker, then parameters / data / versions / commit."""
    title = html.escape(str(prov.get("title") or "Report"))
    parts = [
        f"<h1 class='crm-title'>{title}</h1>",
        PROVENANCE_MARKER,
        "<div class='crm-provenance'>",
    ]
    params = prov.get("parameters") or {}
    parts.append(_kv_table(params or {"(none)": ""}, "Parameters", prov.get("derived")))
    data = prov.get("data")
    if data:
        fp = data["fingerprint"]
        rows = {"directory": data["dir"], "engine": data["engine"], "fingerprint": fp["sha256"]}
        rows.update({f"rows: {t}": f"{n:,}" for t, n in fp["rows"].items()})
        parts.append(_kv_table(rows, "Data"))
    vers = prov.get("versions", {})
    git = prov.get("git", {})
    commit = git.get("commit") or "unknown"
    dirty = " (uncommitted changes)" if git.get("dirty") else ""
    line = ", ".join(f"{k} {v}" for k, v in vers.items())
    parts.append(
        f"<p class='crm-versions' style='font-size:smaller'>Versions: {html.escape(line)}. "
        f"{_lock_text(prov.get('lock'))}"
        f"Commit: <code>{html.escape(commit[:12])}</code>{html.escape(dirty)}.</p>"
    )
    parts.append("</div>")
    return "\n".join(parts)


def header(params: dict[str, Any], data, title: str):
    """The report header cell: title, parameters, data fingerprint, versions, commit.

    Also records the provenance in ``metrics.json`` (see :mod:`crm_helpers.report.metrics`),
    then fails the report on an empty or collapsed extract (:func:`crm_helpers.report.guard.check`).

    Parameters
    ----------
    params
        The notebook's parameters, e.g. ``{"data_dir": data_dir, "engine": engine}``.
    data
        The loaded :class:`~crm_helpers.data.CRMData`.
    title
        The report title.

    Returns
    -------
    IPython.display.HTML
        Rendered by Jupyter when it is the last expression of a cell.
    """
    from IPython.display import HTML

    from crm_helpers.report import metrics

    prov = collect(params, data, title)
    metrics.set_provenance(prov)
    if data is not None:
        from crm_helpers.report import guard

        guard.check(data, prov["data"]["fingerprint"]["rows"], params)
    return HTML(to_html(prov))


def notebook_params(namespace: dict[str, Any], notebook: str | Path) -> dict[str, Any]:
    """The current values of a notebook's parameters, named by its own parameters cell.

    Parameters
    ----------
    namespace
        The notebook's ``globals()`` (after papermill injected any overrides).
    notebook
        The notebook's name in ``notebooks/`` (``"funnel_dropoff"``) or a path.

    Returns
    -------
    dict
        ``{name: value}`` in the order of the parameters cell, so the header shows exactly
        the parameters a run can set, without a second list to keep in step.
    """
    import nbformat

    from crm_helpers.report.notebook import parameters_cell

    path = Path(notebook)
    if path.suffix != ".ipynb":
        path = config.NOTEBOOKS_DIR / f"{notebook}.ipynb"
    _, defaults = parameters_cell(nbformat.read(path, as_version=4))
    return {name: namespace[name] for name in defaults}
