"""The Jupyter kernel a report runs in: one that launches this interpreter's environment.

:func:`ensure_kernel` finds (or registers) the kernel; :func:`quiet_kernel` keeps what the
kernel and papermill say out of the terminal: the kernel talks to the run over Unix sockets
in a private temporary folder (IPC, where the platform has it; not TCP ports on localhost,
which ipykernel warns about on every start), its own stdout/stderr and papermill's warnings
(e.g. "Unable to parse line" about a parameters cell) go to the run's log file. What a cell
prints stays in the notebook; a run that fails says why in its ``error``.

A run also has a time budget (:func:`run_timeout_s`: ``$CRM_RUN_TIMEOUT_S`` seconds,
default :data:`DEFAULT_RUN_TIMEOUT_S`; ``0`` for none): each cell may take at most what is
left of it (and at most :data:`CELL_TIMEOUT_S`), so a run that would go on for hours fails
with papermill's cell-timeout error when the budget is spent, instead of running every cell
up to its own limit.

:mod:`crm_helpers.report.run` re-exports :func:`ensure_kernel`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "CELL_TIMEOUT_S",
    "DEFAULT_RUN_TIMEOUT_S",
    "RUN_TIMEOUT_ENV",
    "ensure_kernel",
    "quiet_kernel",
    "run_timeout_s",
]

#: Environment variable with a run's time budget in seconds (0: no budget).
RUN_TIMEOUT_ENV = "CRM_RUN_TIMEOUT_S"
#: The budget when the variable is unset: an hour (the reports take seconds to minutes on
#: a laptop-sized world; a run still busy after an hour is stuck on absurd data).
DEFAULT_RUN_TIMEOUT_S = 3600.0
#: The longest any one cell may take (papermill's default ``execution_timeout``).
CELL_TIMEOUT_S = 1800.0
#: How long a cell's outputs may trail its reply from the kernel (nbclient's default, 4 s,
#: failed runs with "Timeout waiting for IOPub output" on a busy machine: papermill raises).
IOPUB_TIMEOUT_S = 60.0


def run_timeout_s() -> float | None:
    """The run's time budget in seconds from ``$CRM_RUN_TIMEOUT_S`` (None: no budget).

    Unset or empty: :data:`DEFAULT_RUN_TIMEOUT_S`; ``0`` (or ``none``): no budget. Anything
    else that is not a positive number raises ``ValueError`` naming the variable.
    """
    raw = os.environ.get(RUN_TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_RUN_TIMEOUT_S
    if raw.lower() in {"0", "none"}:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise ValueError(
            f"{RUN_TIMEOUT_ENV}={raw!r} is not a number of seconds; set e.g. "
            f"{RUN_TIMEOUT_ENV}=3600, or 0 for no limit."
        )
    return value


class _Deadline:
    """nbclient's ``timeout_func``: each cell gets what is left of the run's budget, and at
    most ``cell_s`` seconds (None: no per-cell limit)."""

    def __init__(
        self, budget_s: float | None, log: Any, cell_s: float | None = CELL_TIMEOUT_S
    ) -> None:
        self.budget_s = budget_s
        self.cell_s = cell_s
        self.end = None if budget_s is None else time.monotonic() + budget_s
        self.log = log

    def __call__(self, cell: Any) -> int | None:
        cell_s = float("inf") if self.cell_s is None else float(self.cell_s)
        if self.end is None:
            return None if self.cell_s is None else max(1, int(cell_s))
        left = self.end - time.monotonic()
        if left < cell_s:
            print(
                f"[crm] run time budget ({RUN_TIMEOUT_ENV}={self.budget_s:g} s): "
                f"{max(left, 0):.0f} s left for the next cell",
                file=self.log,
                flush=True,
            )
        return max(1, int(min(left, cell_s)))


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


def _kernel_manager_class(log: Any, ipc_dir: Path | None) -> type:
    """An ``AsyncKernelManager`` whose kernel writes to ``log`` and listens on IPC sockets;
    forked from a warm server when ``$CRM_WARM_KERNEL`` is ``1`` (:mod:`.forkserver`)."""
    from jupyter_client.manager import AsyncKernelManager

    class RunKernelManager(AsyncKernelManager):
        async def start_kernel(self, **kw: Any) -> None:  # nbclient awaits this
            if ipc_dir is not None:
                self.transport = "ipc"
                self.ip = str(ipc_dir / "kernel")
            kw.setdefault("stdout", log)
            kw.setdefault("stderr", log)
            await self._async_start_kernel(**kw)

        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
            # $CRM_WARM_KERNEL=1 (the test suite): fork the kernel from a warm server
            # (crm_helpers.report.forkserver); a cold kernel when it refuses or is down
            from jupyter_client.provisioning import LocalProvisioner

            from crm_helpers.report import forkserver

            prov = self.provisioner
            proc = None
            if isinstance(prov, LocalProvisioner) and forkserver.warm_enabled():
                proc = forkserver.launch(kernel_cmd, kw)
            if proc is None:
                await super()._async_launch_kernel(kernel_cmd, **kw)
                return
            prov.process, prov.pid, prov.pgid = proc, proc.pid, proc.pid  # its own session
            prov.cwd = kw.get("cwd")
            self._reconcile_connection_info(prov.connection_info)

        async def _async_interrupt_kernel(self) -> None:
            # jupyter_client interrupts (SIGINT) every kernel it shuts down, and a kernel
            # the signal meets mid-step logs "KeyboardInterrupt caught in kernel" into the
            # run's log (seen under load). A run's kernel is shut down after its last cell:
            # the shutdown request follows, then SIGTERM and SIGKILL if it does not stop.
            if getattr(self, "shutting_down", False):
                return
            await super()._async_interrupt_kernel()

    return RunKernelManager


@contextlib.contextmanager
def quiet_kernel(
    log_path: Path, cell_timeout_s: float | None = CELL_TIMEOUT_S
) -> Iterator[dict[str, Any]]:
    """Keyword arguments for ``papermill.execute_notebook`` that keep the terminal quiet.

    Within the block, the kernel's stdout/stderr and the ``papermill`` logger's warnings
    are appended to ``log_path`` (papermill's records do not reach the terminal or the
    root logger); the kernel uses IPC transport in a private folder removed afterwards
    (TCP on Windows, which has no Unix sockets). ``timeout_func`` gives each cell what is
    left of the run's time budget (:func:`run_timeout_s`, counted from entering the block),
    and at most ``cell_timeout_s`` seconds (None: no per-cell limit); a cell's outputs may
    trail its reply by :data:`IOPUB_TIMEOUT_S`.
    """
    budget = run_timeout_s()  # a bad value fails before a kernel starts
    log_path.parent.mkdir(parents=True, exist_ok=True)
    ipc_dir = None if os.name == "nt" else Path(tempfile.mkdtemp(prefix="crm_kernel_"))
    with log_path.open("a", encoding="utf-8") as log:
        handler = logging.StreamHandler(log)
        handler.setLevel(logging.WARNING)
        handler.setFormatter(logging.Formatter("[papermill] %(levelname)s | %(message)s"))
        _papermill_to(handler, add=True)
        try:
            yield {
                "kernel_manager_class": _kernel_manager_class(log, ipc_dir),
                "timeout_func": _Deadline(budget, log, cell_timeout_s),
                "iopub_timeout": IOPUB_TIMEOUT_S,
            }
        finally:
            _papermill_to(handler, add=False)
            if ipc_dir is not None:
                shutil.rmtree(ipc_dir, ignore_errors=True)


_LOGGER_LOCK = threading.Lock()
_saved_propagate: list[bool] = []  # the papermill logger's own setting, while runs are active


def _papermill_to(handler: logging.Handler, *, add: bool) -> None:
    """Add/remove a run's handler on the ``papermill`` logger; it does not propagate meanwhile.

    Runs in threads of one process each add their handler (so each run's log also gets the
    others' warnings meanwhile); the logger's ``propagate`` is restored when the last ends.
    """
    logger = logging.getLogger("papermill")
    with _LOGGER_LOCK:
        if add:
            if not any(h for h in logger.handlers if getattr(h, "_crm_run", False)):
                _saved_propagate[:] = [logger.propagate]
            handler._crm_run = True  # type: ignore[attr-defined]
            logger.addHandler(handler)
            logger.propagate = False
        else:
            logger.removeHandler(handler)
            if not any(getattr(h, "_crm_run", False) for h in logger.handlers):
                logger.propagate = _saved_propagate.pop() if _saved_propagate else True
