"""``theme.use()`` in a report's kernel does not compile jsonschema's IRI grammar.

Every report's kernel calls ``theme.use()``, whose notebook renderer imports nbformat and so
jsonschema; with ``rfc3987-syntax`` installed that import compiled an Earley grammar (~1.3 s
of CPU per report, and per notebook test). Checked in a fresh interpreter, where nothing
imported jsonschema before.
"""

from __future__ import annotations

import subprocess
import sys

CODE = """
import sys
from crm_helpers.plots import theme
theme.use()
import plotly.io as pio
assert pio.renderers.default == theme.NOTEBOOK_RENDERER, pio.renderers.default
assert "nbformat" in sys.modules and "jsonschema" in sys.modules
assert "rfc3987_syntax" not in sys.modules, "the IRI grammar was compiled"
import nbformat
nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")])
nbformat.validate(nb)  # nbformat still validates notebooks
try:
    import rfc3987_syntax  # noqa: F401 - importable afterwards, when installed
except ImportError:
    pass
print("ok")
"""


def test_theme_use_skips_the_iri_grammar():
    res = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"
