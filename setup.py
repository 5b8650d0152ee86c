"""Build hook: the wheel carries the notebooks inside the package, as ``crm_helpers/notebooks``.

Everything else is declared in ``pyproject.toml``. The notebooks stay in ``notebooks/`` of the
checkout (where JupyterLab and the tests open them); :mod:`crm_helpers.config` reads the
copy in the package when the package is installed (``pip install .``), so ``crm run`` works
without a checkout.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
PATTERNS = ("*.ipynb", "params/*.yaml")


class BuildPyWithNotebooks(build_py):
    """``build_py`` that also copies ``notebooks/*.ipynb`` and ``notebooks/params/*.yaml``."""

    def run(self) -> None:
        super().run()
        src = HERE / "notebooks"
        dst = Path(self.build_lib) / "crm_helpers" / "notebooks"
        for pattern in PATTERNS:
            for f in sorted(src.glob(pattern)):
                target = dst / f.relative_to(src)
                self.mkpath(str(target.parent))
                self.copy_file(str(f), str(target))


setup(cmdclass={"build_py": BuildPyWithNotebooks})
