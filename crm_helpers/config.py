"""Project paths (cookiecutter-data-science style): one place, overridable by environment.

``CRM_DATA_DIR`` and ``CRM_REPORTS_DIR`` override the defaults, so a scheduled run can
point the same notebooks at production data without editing code.

In a source checkout (also an editable install) the defaults are the checkout's
``data/synthetic`` and ``reports/``; an installed package (``pip install .``, the package in
``site-packages``) never writes into its install folder: its data default is
``$XDG_DATA_HOME/crm-workbench/synthetic`` (``~/.local/share/...``) and its reports go to
``reports/`` of the current folder.

Derived data (the prepared event store, :mod:`crm_helpers.store`) go to a cache root outside
any data directory (:func:`cache_root`): ``$CRM_CACHE_DIR``, else ``<checkout>/.cache`` in a
source checkout, else ``$XDG_CACHE_HOME/crm-workbench`` (``~/.cache/crm-workbench``); one
store per data set, keyed by its resolved directory (:func:`store_dir`).

The notebooks are the checkout's ``notebooks/``; an installed package carries a copy of them
inside it, ``crm_helpers/notebooks/`` (the build copies them there, see ``setup.py``), read
only, so ``crm run`` works after ``pip install .`` too.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
from pathlib import Path

ROOT: Path = Path(__file__).resolve().parents[1]
#: The folder of the notebooks inside an installed package (``crm_helpers/notebooks``).
PACKAGE_NOTEBOOKS: Path = Path(__file__).resolve().parent / "notebooks"


def is_checkout(root: Path) -> bool:
    """Whether ``root`` (the folder holding ``crm_helpers/``) is a source checkout (it has
    ``pyproject.toml``), not an installed package's ``site-packages``."""
    return (Path(root) / "pyproject.toml").is_file()


def notebooks_dir(root: Path) -> Path:
    """``<checkout>/notebooks`` in a source checkout (also an editable install), else the
    copy inside the installed package, ``crm_helpers/notebooks``."""
    return Path(root) / "notebooks" if is_checkout(root) else PACKAGE_NOTEBOOKS


NOTEBOOKS_DIR: Path = notebooks_dir(ROOT)
PARAMS_DIR: Path = NOTEBOOKS_DIR / "params"
BENCHMARKS_DIR: Path = ROOT / "benchmarks"


def user_data_root(env: dict[str, str] | None = None) -> Path:
    """Data root of an installed package: ``$XDG_DATA_HOME/crm-workbench`` (default
    ``~/.local/share/crm-workbench``), never inside ``site-packages``."""
    env = os.environ if env is None else env
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base).expanduser() / "crm-workbench"


def default_data_dir(root: Path, env: dict[str, str] | None = None) -> Path:
    """``<checkout>/data/synthetic`` in a source checkout (also an editable install), else
    ``user_data_root()/synthetic`` (a ``pip install .``: the package sits in site-packages)."""
    base = Path(root) / "data" if is_checkout(root) else user_data_root(env)
    return base / "synthetic"


#: Where ``crm generate`` writes the embedded default (synthetic) data set.
DEFAULT_DATA_DIR: Path = default_data_dir(ROOT)
#: Default scale of the embedded data: every report builds in minutes on 2 cores.
DEFAULT_N_USERS: int = 100_000
DEFAULT_SEED: int = 42


def data_dir() -> Path:
    """The data directory analyses read (``$CRM_DATA_DIR`` or the embedded default)."""
    return Path(os.environ.get("CRM_DATA_DIR", DEFAULT_DATA_DIR)).expanduser().resolve()


#: The environment variable of :func:`load_time`.
LOAD_TIME_ENV = "CRM_LOAD_TIME"


def load_time() -> _dt.datetime:
    """When the data are loaded, as naive UTC: ``$CRM_LOAD_TIME`` (ISO 8601) or now.

    What is "in the future" depends on it (the future-date rule of
    :mod:`crm_helpers.data.validate_dates`). ``crm run`` sets it to the run's start for the kernel
    (``request.load_time`` in ``run.json``) and ``crm rerun`` to the recorded one, so a rerun
    months later excludes the same rows as the run it reproduces.

    Raises
    ------
    ValueError
        ``$CRM_LOAD_TIME`` is not an ISO 8601 date-time.
    """
    text = os.environ.get(LOAD_TIME_ENV)
    if not text:
        return _dt.datetime.now(_dt.UTC).replace(tzinfo=None)
    try:
        value = _dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"${LOAD_TIME_ENV} = {text!r} is not an ISO 8601 date-time (2024-05-01T06:00:00+00:00)"
        ) from None
    if value.tzinfo is not None:
        value = value.astimezone(_dt.UTC).replace(tzinfo=None)
    return value


def reports_dir() -> Path:
    """Where rendered reports go (``$CRM_REPORTS_DIR``, else ``reports/`` of the checkout, or
    of the current folder for an installed package)."""
    default = ROOT / "reports" if is_checkout(ROOT) else Path.cwd() / "reports"
    return Path(os.environ.get("CRM_REPORTS_DIR", default)).expanduser().resolve()


#: The environment variable of :func:`cache_root`.
CACHE_DIR_ENV = "CRM_CACHE_DIR"


def cache_root(env: dict[str, str] | None = None, root: Path | None = None) -> Path:
    """Where derived data are cached: ``$CRM_CACHE_DIR``, else ``<checkout>/.cache`` in a
    source checkout, else ``$XDG_CACHE_HOME/crm-workbench`` (default ``~/.cache/...``).

    Never inside a data directory: the source data stay read-only.
    """
    env = os.environ if env is None else env
    root = ROOT if root is None else Path(root)
    if env.get(CACHE_DIR_ENV):
        return Path(env[CACHE_DIR_ENV]).expanduser().resolve()
    if is_checkout(root):
        return (root / ".cache").resolve()
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return (Path(base).expanduser() / "crm-workbench").resolve()


def store_dir(data_dir: str | Path, env: dict[str, str] | None = None) -> Path:
    """The prepared event store of the data set in ``data_dir``:
    ``cache_root()/stores/<folder name>-<sha256 of the resolved path, 12 hex>``.

    One store per data set: two folders of the same name are two stores; a symlink and its
    target are one.
    """
    resolved = Path(data_dir).expanduser().resolve()
    key = hashlib.sha256(str(resolved).encode()).hexdigest()[:12]
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in resolved.name)[:40]
    return cache_root(env) / "stores" / f"{name or 'data'}-{key}"
