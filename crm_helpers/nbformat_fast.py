"""Import nbformat without compiling jsonschema's unused IRI grammar (an import side effect).

nbformat imports jsonschema, whose format checker, when the optional ``rfc3987-syntax``
package is installed (JupyterLab's ``jupyter-events`` installs it), compiles an Earley grammar
for the ``iri`` formats at import: ~1.3 s of CPU in every process that imports nbformat (a
report's kernel, ``crm run``, papermill, every pytest process through the nbval plugin), for a
checker no notebook schema uses. Importing this module imports nbformat with that module
hidden, so jsonschema registers no ``iri`` checker in this process; nothing changes when
jsonschema or ``rfc3987_syntax`` is already imported, or nbformat is not installed.

It is imported for its effect: by :func:`crm_helpers.plots.theme.use` (a report's kernel), by
:mod:`crm_helpers.report.run` before papermill, and as a pytest plugin (``-p
crm_helpers.nbformat_fast`` in ``pyproject.toml``'s ``addopts``: ``-p`` plugins are imported
before the installed ones, nbval among them). Standard library only.
"""

from __future__ import annotations

import sys

__all__ = ["import_nbformat"]


def import_nbformat() -> bool:
    """Import nbformat with ``rfc3987_syntax`` hidden; True when nbformat is importable."""
    if any(m in sys.modules for m in ("jsonschema", "rfc3987_syntax")):
        return "nbformat" in sys.modules or _plain_import()
    sys.modules["rfc3987_syntax"] = None  # type: ignore[assignment] - import raises ImportError
    try:
        return _plain_import()
    finally:
        del sys.modules["rfc3987_syntax"]


def _plain_import() -> bool:
    try:
        import nbformat  # noqa: F401
    except ImportError:
        return False
    return True


import_nbformat()
