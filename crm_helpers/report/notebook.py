"""A report notebook and its parameters, before any kernel starts.

Finding the notebook (:func:`resolve_notebook`), reading its literal ``parameters`` cell
(:func:`parameters_cell`, :func:`parameter_types`), reading parameter values from the command
line (:func:`coerce_value`) and from ``notebooks/params/*.yaml`` (:func:`read_params_file`),
and checking the reports folder (:func:`check_writable`). What is not acceptable here is a
:class:`RunRefused`: ``crm run`` exits with status 2 and no kernel is started.
:mod:`crm_helpers.report.run` re-exports every name.
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import yaml

from crm_helpers import config
from crm_helpers.report import params as _params

__all__ = [
    "PARAMETERS_TAG",
    "RUN_SEPARATOR",
    "MAX_PARAMS_FILE_BYTES",
    "MAX_VALUE_ITEMS",
    "OutputInsideData",
    "OutputNotWritable",
    "ParametersError",
    "ParamsFile",
    "RunRefused",
    "check_outside_data",
    "check_run_name",
    "check_value_sizes",
    "check_writable",
    "coerce_value",
    "parameter_types",
    "parameters_cell",
    "read_params_file",
    "resolve_notebook",
]

PARAMETERS_TAG = "parameters"
RUN_SEPARATOR = "--"


class RunRefused(ValueError):
    """A run refused before any kernel starts (``crm run`` exits with status 2)."""


class ParametersError(RunRefused):
    """The notebook's parameters cell, or the parameters given, are not acceptable."""


class OutputNotWritable(RunRefused):
    """The reports folder cannot be created or written."""


class OutputInsideData(RunRefused):
    """The reports folder is, contains or lies inside the data folder."""


#: A run name: one folder name of letters, digits, ``_``, ``-`` and ``.``, not starting with
#: ``.`` or ``-`` (so never ``..``, a hidden folder or an option), at most 100 characters.
_RUN_NAME = re.compile(r"\w[\w.-]{0,99}")

#: A parameters file larger than this is refused unread.
MAX_PARAMS_FILE_BYTES = 1_000_000
#: A parameter value may hold at most this many values (list items, mapping keys and
#: values, nested, each YAML alias counted every time it is used) ...
MAX_VALUE_ITEMS = 10_000
#: ... and at most this many characters of text in all.
MAX_VALUE_CHARS = 1_000_000


def check_run_name(run: str) -> str:
    """``run`` if it is a safe run name (one path component), else :class:`ParametersError`.

    The run name becomes the report folder ``<notebook>--<run>``: a name with ``/``, ``..``,
    a space or any other character than letters, digits, ``_``, ``-`` and ``.`` could place
    the report anywhere, so it is refused before anything is written.
    """
    if not isinstance(run, str) or not _RUN_NAME.fullmatch(run):
        raise ParametersError(
            f"run name {run!r} is not allowed: it must be one folder name of letters, digits, "
            "'_', '-' and '.' (not starting with '.' or '-', at most 100 characters)"
        )
    return run


def _expanded_size(value: Any, memo: dict[int, tuple[int, int]], busy: set[int]) -> tuple[int, int]:
    """(values, characters) of ``value`` with every shared (aliased) part counted each time."""
    if isinstance(value, str):
        return 1, len(value)
    if not isinstance(value, list | tuple | dict):
        return 1, 0
    key = id(value)
    if key in memo:
        return memo[key]
    if key in busy:  # a recursive alias (&a [*a]): infinitely large
        return MAX_VALUE_ITEMS + 1, 0
    busy.add(key)
    items, chars = 1, 0
    children = [*value.keys(), *value.values()] if isinstance(value, dict) else value
    for child in children:
        n, c = _expanded_size(child, memo, busy)
        items, chars = items + n, chars + c
    busy.discard(key)
    memo[key] = (items, chars)
    return items, chars


def check_value_sizes(values: Mapping[str, Any], source: str = "") -> None:
    """Refuse a parameter value that expands to more than :data:`MAX_VALUE_ITEMS` values
    or :data:`MAX_VALUE_CHARS` characters (e.g. a YAML alias bomb of a few hundred bytes).

    Raises
    ------
    ParametersError
        Naming the parameter, its expanded size and the limit.
    """
    memo: dict[int, tuple[int, int]] = {}
    where = f"{source}: " if source else ""
    for name, value in values.items():
        items, chars = _expanded_size(value, memo, set())
        if items > MAX_VALUE_ITEMS:
            raise ParametersError(
                f"{where}parameter {name!r} is too large: it expands to over {MAX_VALUE_ITEMS:,} "
                f"values ({items:,}; YAML aliases count each time they are used)"
            )
        if chars > MAX_VALUE_CHARS:
            raise ParametersError(
                f"{where}parameter {name!r} is too large: it expands to {chars:,} characters "
                f"of text (at most {MAX_VALUE_CHARS:,})"
            )


def check_outside_data(
    out: Path, data: str | Path | None, what: str = "the report folder", fix: str = "--out"
) -> None:
    """Refuse a reports folder that is, contains or lies inside the data folder.

    Both paths are resolved (symlinks followed), so a report folder that is a symlink into
    the data folder is refused too. Nothing is written in the data folder, ever.

    Raises
    ------
    OutputInsideData
        Naming both folders.
    """
    if data is None or "://" in str(data) or str(data) == "":
        return
    o, d = Path(out).expanduser().resolve(), Path(data).expanduser().resolve()
    if o == d or d in o.parents or o in d.parents:
        how = "is" if o == d else ("lies inside" if d in o.parents else "contains")
        raise OutputInsideData(
            f"{what} {o} {how} the data folder {d}; nothing is ever written in "
            f"the data folder: pass {fix} with a folder outside it"
        )


def resolve_notebook(notebook: str | Path, notebooks_dir: Path | None = None) -> Path:
    """A notebook name (``data_overview``) or path -> the ``.ipynb`` path (must exist)."""
    notebooks_dir = notebooks_dir or config.NOTEBOOKS_DIR
    candidates = [Path(notebook)]
    if Path(notebook).suffix != ".ipynb":
        candidates.append(Path(f"{notebook}.ipynb"))
    candidates += [notebooks_dir / c.name for c in list(candidates)]
    for c in candidates:
        if c.is_file():
            return c.resolve()
    known = sorted(p.stem for p in notebooks_dir.glob("*.ipynb"))
    raise FileNotFoundError(f"no notebook {notebook!r}: give a path or one of {known}")


def parameters_cell(nb: nbformat.NotebookNode) -> tuple[int, dict[str, Any]]:
    """The index and default values of the cell tagged ``parameters``.

    The cell may hold only assignments of literals to plain names (``x: int = 3``,
    ``name = "a"``, lists/dicts/tuples of literals), comments and a docstring; anything
    else would run code papermill cannot override, so it is refused.

    Raises
    ------
    ParametersError
        No parameters cell, a syntax error, or a statement that is not a literal assignment.
    """
    for i, cell in enumerate(nb.cells):  # noqa: B007 - i is used after the loop
        if cell.cell_type == "code" and PARAMETERS_TAG in cell.get("metadata", {}).get("tags", []):
            break
    else:
        raise ParametersError("the notebook has no code cell tagged 'parameters'")
    source = cell.source if isinstance(cell.source, str) else "".join(cell.source)
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ParametersError(f"the parameters cell is not valid Python: {exc}") from exc
    defaults: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # a docstring / bare string
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value:
            target, value = node.target.id, node.value
        elif (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
        ):
            target, value = node.targets[0].id, node.value
        else:
            raise ParametersError(
                f"parameters cell line {node.lineno}: {ast.unparse(node)!r} is not a literal "
                "assignment; keep only `name: type = <literal>` lines there and compute "
                "derived values in a later cell."
            )
        try:
            defaults[target] = ast.literal_eval(value)
        except ValueError as exc:
            raise ParametersError(
                f"parameters cell line {node.lineno}: the value of {target!r} "
                f"({ast.unparse(value)!r}) is not a literal; compute it in a later cell."
            ) from exc
    return i, defaults


def parameter_types(nb: nbformat.NotebookNode) -> dict[str, tuple[str, ...]]:
    """The annotated types of the parameters cell (see :func:`params.annotations`)."""
    i, _ = parameters_cell(nb)
    source = nb.cells[i].source
    return _params.annotations(source if isinstance(source, str) else "".join(source))


def coerce_value(raw: str, default: Any, types: tuple[str, ...] = (), name: str = "value") -> Any:
    """A command-line string as the parameter's type (its annotation, else its default's).

    Text parameters take the string as it is; others read it as YAML (``3``, ``2.5``,
    ``true``, ``[a, b]``, ``{k: v}``) and check the type (:func:`params.check_type`).

    Raises
    ------
    ParametersError
        The value does not fit the type; the message names the parameter, the expected
        type and the value given.
    """
    types = types or _params.default_type(default)
    if "str" in types or (not types and isinstance(default, str)):
        return raw
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = raw  # not YAML: the type check names the value as given
    try:
        return _params.check_type(name, value, types)
    except ValueError as exc:
        raise ParametersError(str(exc)) from None


@dataclass(frozen=True)
class ParamsFile:
    """A ``notebooks/params/*.yaml`` file: which notebook, which named run, which values."""

    path: Path
    notebook: str | None
    run: str
    parameters: dict[str, Any]


def read_params_file(path: str | Path) -> ParamsFile:
    """Read a parameters YAML file.

    Either flat (``freq: day``) or with keys ``notebook``, ``name`` and ``parameters``.
    The run name is ``name``, else the part after ``--`` in the file name
    (``data_overview--daily.yaml`` -> ``daily``), else the file stem.
    """
    path = Path(path)
    if not path.is_file() and (config.NOTEBOOKS_DIR / path).is_file():
        path = config.NOTEBOOKS_DIR / path
    if not path.is_file():
        raise ParametersError(f"{path}: no such parameters file")
    if path.stat().st_size > MAX_PARAMS_FILE_BYTES:
        raise ParametersError(
            f"{path}: a parameters file of {path.stat().st_size:,} bytes is too large "
            f"(at most {MAX_PARAMS_FILE_BYTES:,})"
        )
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ParametersError(f"{path}: {_params.yaml_problem(exc)}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ParametersError(f"{path}: cannot be read ({exc})") from None
    if not isinstance(raw, dict):
        raise ParametersError(f"{path}: expected a mapping of parameter names to values")
    notebook = raw.pop("notebook", None)
    name = raw.pop("name", None)
    params = raw.pop("parameters", None)
    if params is None:
        params = raw
    elif raw:
        raise ParametersError(f"{path}: unknown key(s) {sorted(raw)} next to 'parameters'")
    stem = path.stem
    if RUN_SEPARATOR in stem:
        nb_part, run_part = stem.split(RUN_SEPARATOR, 1)
        notebook = notebook or nb_part
        name = name or run_part
    if not isinstance(params, dict):
        raise ParametersError(f"{path}: 'parameters' must be a mapping of names to values")
    check_value_sizes(params, str(path))
    return ParamsFile(path=path, notebook=notebook, run=str(name or stem), parameters=params)


def check_writable(folder: Path) -> None:
    """Create ``folder`` if needed and check a file can be written in it.

    Raises
    ------
    OutputNotWritable
        Naming the folder and why (read-only, not a folder, no permission).
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".crm-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise OutputNotWritable(
            f"cannot write the report to {folder}: {why}; pass --out with a writable folder"
        ) from None
