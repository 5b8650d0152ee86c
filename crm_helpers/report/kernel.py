"""The Jupyter kernel a report runs in: one that launches this interpreter's environment.

:mod:`crm_helpers.report.run` re-exports :func:`ensure_kernel`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

__all__ = ["ensure_kernel"]


def _same_interpreter(argv0: str) -> bool:
    if argv0 in {
        "python",
        f"python{sys.version_info[0]}",
        "python{}.{}".format(*sys.version_info[:2]),
    }:
        return True  # jupyter_client substitutes sys.executable for these
    return Path(argv0).absolute() == Path(sys.executable).absolute()


def ensure_kernel(name: str = "python3") -> str:
    """A kernel name that runs in this interpreter's environment; installs one if needed.

    Uses ``python3`` when its kernelspec launches this interpreter, else registers the
    venv's own (``python -m ipykernel install --sys-prefix``) and, if a user-level spec
    still shadows it, a dedicated ``crm-workbench`` kernel in the venv prefix.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    def _ok(kname: str) -> bool:
        try:
            spec = KernelSpecManager().get_kernel_spec(kname)
        except NoSuchKernel:
            return False
        return bool(spec.argv) and _same_interpreter(spec.argv[0])

    if _ok(name):
        return name
    cmd = [sys.executable, "-m", "ipykernel", "install", "--sys-prefix"]
    subprocess.run(cmd, check=True, capture_output=True)
    if _ok(name):
        return name
    alt = "crm-workbench"
    subprocess.run(cmd + ["--name", alt, "--display-name", "CRM Workbench"], check=True)
    if not _ok(alt):
        raise RuntimeError("could not register a Jupyter kernel for " + sys.executable)
    return alt
