"""Warm report kernels: a fork server that has imported what the notebooks import.

A cold report kernel (``python -m ipykernel_launcher -f CONNECTION_FILE``) spends 1-2 CPU
seconds importing ipykernel, pandas, Ibis, DuckDB, plotly and the notebook's helpers before
its first cell runs. With ``$CRM_WARM_KERNEL`` set to ``1`` (the test suite sets it; ``crm
run`` leaves it unset), :func:`launch` asks a fork server of this process to fork a kernel
instead. The server (``python [-X...] -m crm_helpers.report.forkserver SOCKET``, with the
kernel command's interpreter options; one per process that runs reports, ended when that
process ends) has imported :data:`PRELOAD` and the modules of the notebooks' import lines,
and started no thread or connection. Each child becomes a fresh kernel process and runs
``IPKernelApp`` (``instance``, ``initialize``, ``start``: what ``launch_instance`` does)
with the launcher's arguments, as ``ipykernel_launcher -f`` would.

What the child does first (what a new process would have):

* its own session and process group (interrupts and kills reach it and its children as a
  cold kernel's), stdin from ``/dev/null``, stdout and stderr on the run's log file
  (passed over the socket);
* the run's environment and working folder, ``sys.argv`` of the launcher, and the server's
  ``sys.path``, whose own folder was dropped as ``ipykernel_launcher`` drops the working
  folder (the shell adds ``''`` when it starts, as in a cold kernel);
* new random state (NumPy's global generator; ``random`` also reseeds itself at fork),
  default SIGINT/SIGTERM handling, the server's sockets and descriptors closed;
* plotly's default renderer as plotly picks it at import inside a kernel (the server
  imported it outside one); the kernel's parent poller watches the server (which exits
  when the process that started it ends: its stdin closes).

A process's first warm launch starts cold and no server (a process that runs one report
would pay for the server's imports and win nothing); the second starts the server.

The server refuses a launch, and :func:`launch` returns None so that the caller starts a
cold kernel, when: the command is not this interpreter's ``[-X...] -m ipykernel_launcher
-f FILE [--Trait=value ...]``; a variable read at import time (:data:`IMPORT_TIME_ENV`,
``PYTHON*``) differs from the server's; the working folder holds a module that shadows a
preloaded one; a preloaded ``crm_helpers`` source file changed since the server imported
it; the server has more than one Python thread; or the server cannot start, is dead or
does not answer (a dead server is replaced at the next launch). Exit statuses come back
over the launch's connection, so the kernel manager polls, waits for, interrupts,
terminates and kills a forked kernel as a child of its own.

Known differences from a cold kernel: every kernel of one server shares the server's string
hash seed (``PYTHONHASHSEED`` cannot change after start), so set iteration order of strings
is the same across them (it differs between cold kernels). The server has native threads
that some libraries start at import (an OpenBLAS worker with NumPy, jemalloc's background
thread with pyarrow); they are not Python threads, and those libraries register their own
fork handlers.
"""

from __future__ import annotations

import ast
import atexit
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["PRELOAD", "WARM_ENV", "ForkedKernel", "launch", "launches", "stop", "warm_enabled"]

#: ``1`` to fork report kernels from a warm server (the test suite); anything else: cold.
WARM_ENV = "CRM_WARM_KERNEL"
#: What the server imports besides the notebooks' own import lines.
PRELOAD = (
    "ipykernel.kernelapp",
    "ipykernel.ipkernel",
    "IPython.display",
    "numpy",
    "pandas",
    "pyarrow",
    "duckdb",
    "ibis",
    "plotly.graph_objects",
    "plotly.io",
    "crm_helpers",
    "scipy.stats",
    "sklearn.isotonic",
    "sklearn.cluster",
    "sklearn.preprocessing",
    "sklearn.metrics",
    "sklearn.decomposition",
)
#: Environment variables some preloaded module reads when it is imported (ipykernel,
#: IPython, traitlets, jupyter_client, plotly): a launch whose value differs is cold.
IMPORT_TIME_ENV = (
    "IPYTHON_SUPPRESS_CONFIG_ERRORS",
    "TRAITLETS_APPLICATION_RAISE_CONFIG_FILE_ERROR",
    "USER",
    "PLOTLY_RENDERER",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
)
START_TIMEOUT_S = 120.0  # the server's imports, on a machine loaded by others
REPLY_TIMEOUT_S = 30.0
_MSG = 1 << 20
_DIR_PREFIX = "crm_forkserver_"

_log = logging.getLogger(__name__)
_lock = threading.Lock()
_servers: dict[tuple[str, ...], _Server] = {}
_counts = {"warm": 0, "cold": 0}
_first_done = False  # this process has asked for a warm kernel before


def warm_enabled() -> bool:
    """Whether ``$CRM_WARM_KERNEL`` asks for warm kernels and the platform can fork them."""
    return (
        os.environ.get(WARM_ENV, "").strip() == "1"
        and sys.platform.startswith("linux")
        and hasattr(os, "pidfd_open")
    )


def launches() -> dict[str, int]:
    """How many kernels :func:`launch` forked (``warm``) and left to a cold start (``cold``)."""
    return dict(_counts)


# --- the client: the process that runs reports ---------------------------------------------


class ForkedKernel:
    """A forked kernel, managed like ``subprocess.Popen`` (what jupyter_client's provisioner
    calls): ``pid``, ``returncode``, ``poll``, ``wait``, ``send_signal``, ``terminate``,
    ``kill``. Its exit status comes from the server over ``conn``."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int, conn: socket.socket) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._conn = conn

    def _read(self, timeout: float | None) -> None:
        if self.returncode is not None:
            return
        self._conn.settimeout(timeout)
        try:
            data = self._conn.recv(_MSG)
        except (TimeoutError, BlockingIOError):
            return
        except OSError:
            data = b""
        if data:
            self.returncode = int(json.loads(data)["returncode"])
        else:  # the server died: the kernel's parent poller ends it; say so
            self.returncode = -signal.SIGKILL
        self._conn.close()

    def poll(self) -> int | None:
        self._read(0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        self._read(timeout)
        if self.returncode is None:
            raise subprocess.TimeoutExpired(["forked kernel", str(self.pid)], timeout or 0)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:  # never a pid the server has already reaped
            os.kill(self.pid, signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class _Server:
    def __init__(self, opts: list[str]) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=_DIR_PREFIX))
        self.sock = str(self.dir / "server.sock")
        self.log = (self.dir / "server.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, *opts, "-m", "crm_helpers.report.forkserver", self.sock],
            stdin=subprocess.PIPE,  # its end of life: EOF when this process ends
            stdout=subprocess.PIPE,
            stderr=self.log,
            cwd=self.dir,
            start_new_session=True,  # a Ctrl-C in the terminal is this process's to handle
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        line = b""
        while time.monotonic() < deadline and self.proc.poll() is None:
            import select

            ready, _, _ = select.select([self.proc.stdout], [], [], 1.0)
            if ready:
                line = self.proc.stdout.readline()  # type: ignore[union-attr]
                break
        if line.strip() != b"ready":
            self.close()
            raise RuntimeError(f"fork server did not start (see {self.dir / 'server.log'})")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()  # type: ignore[union-attr]
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def _server_now(opts: list[str]) -> _Server:
    """The running server started with these interpreter options (``-X...``), or a new one."""
    key = tuple(opts)
    with _lock:
        server = _servers.get(key)
        if server is None or not server.alive():
            if server is not None:
                server.close()
            if not _servers:
                atexit.register(stop)
            server = _servers[key] = _Server(opts)
        return server


def stop() -> None:
    """End this process's fork servers (the next warm launch starts a new one)."""
    with _lock:
        while _servers:
            _servers.popitem()[1].close()


def _split_launcher(cmd: list[str]) -> tuple[list[str], list[str]] | None:
    """``(interpreter options, kernel arguments)`` of this interpreter's
    ``[-X...] -m ipykernel_launcher -f FILE [--Trait=value ...]``; None for anything else."""
    if not cmd or Path(cmd[0]).absolute() != Path(sys.executable).absolute():
        return None
    try:
        at = cmd.index("-m")
    except ValueError:
        return None
    opts, rest = cmd[1:at], cmd[at + 1 :]
    if not all(o.startswith("-X") or o.startswith("-W") for o in opts):
        return None
    if rest[:2] != ["ipykernel_launcher", "-f"] or len(rest) < 3:
        return None
    if not all(a.startswith("--") for a in rest[3:]):
        return None
    return opts, rest[1:]


def _fd(stream: Any, default: int) -> int:
    if stream is None:
        return default
    return stream if isinstance(stream, int) else stream.fileno()


def launch(cmd: list[str], kw: dict[str, Any]) -> ForkedKernel | None:
    """Fork a kernel for jupyter_client's launch ``cmd`` and keyword arguments (``env``,
    ``cwd``, ``stdout``, ``stderr``); None when it must start cold (see the module)."""
    split = _split_launcher(cmd) if warm_enabled() else None
    if split is None:
        _counts["cold"] += 1
        return None
    opts, argv = split
    global _first_done
    if not _first_done and not _servers:
        # a process's first kernel starts cold: a process that runs one report (``crm
        # run``) pays no server; the second launch starts it
        _first_done = True
        _counts["cold"] += 1
        return None
    env = dict(kw.get("env") or os.environ)
    request = {"argv": argv, "env": env, "cwd": str(kw.get("cwd") or os.getcwd())}
    fds = [_fd(kw.get("stdout"), 1), _fd(kw.get("stderr"), 2)]
    try:
        server = _server_now(opts)
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        conn.settimeout(REPLY_TIMEOUT_S)
        conn.connect(server.sock)
        socket.send_fds(conn, [json.dumps(request).encode()], fds)
        reply = json.loads(conn.recv(_MSG) or b"{}")
    except (OSError, RuntimeError, ValueError) as exc:
        _log.debug("warm kernel unavailable: %s", exc)
        _counts["cold"] += 1
        return None
    if "pid" not in reply:
        _log.debug("warm kernel refused: %s", reply.get("refused"))
        conn.close()
        _counts["cold"] += 1
        return None
    _counts["warm"] += 1
    return ForkedKernel(int(reply["pid"]), conn)


# --- the server ----------------------------------------------------------------------------


def _notebook_modules() -> list[str]:
    """The modules of the import lines of the checkout's notebooks (none outside one)."""
    import crm_helpers

    names: list[str] = []
    for nb in sorted((Path(crm_helpers.__file__).parents[1] / "notebooks").glob("*.ipynb")):
        try:
            cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
        except (OSError, ValueError, KeyError):
            continue
        for cell in cells:
            if cell.get("cell_type") != "code":
                continue
            try:
                tree = ast.parse("".join(cell["source"]))
            except SyntaxError:
                continue
            for node in tree.body:
                if isinstance(node, ast.Import):
                    names += [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    names.append(node.module)
                    names += [f"{node.module}.{a.name}" for a in node.names]
    return names


def _preload() -> None:
    import importlib

    for name in [*PRELOAD, *_notebook_modules()]:
        try:
            importlib.import_module(name)
        except ImportError:
            pass  # ``from package import function``: the name is no module; or not installed


def _helper_mtimes() -> dict[str, float]:
    out = {}
    for name, mod in list(sys.modules.items()):
        path = getattr(mod, "__file__", None)
        if path and (name == "crm_helpers" or name.startswith("crm_helpers.")):
            try:
                out[path] = os.stat(path).st_mtime
            except OSError:
                out[path] = -1.0
    return out


def _refusal(request: dict[str, Any], base_env: dict[str, str], mtimes: dict[str, float]) -> str:
    """Why the server cannot fork this kernel ('' if it can)."""
    env = request["env"]
    keys = {k for k in (*env, *base_env) if k.startswith("PYTHON")} | set(IMPORT_TIME_ENV)
    differ = sorted(k for k in keys if env.get(k) != base_env.get(k))
    if differ:
        return "environment read at import time differs: " + ", ".join(differ)
    cwd = Path(request["cwd"])
    tops = {n.split(".")[0] for n in sys.modules}
    for name in (*PRELOAD, "crm_helpers"):
        top = name.split(".")[0]
        if top in tops and ((cwd / top).is_dir() or (cwd / f"{top}.py").exists()):
            return f"the working folder shadows {top}"
    for path, mtime in mtimes.items():
        try:
            now = os.stat(path).st_mtime
        except OSError:
            now = -1.0
        if now != mtime:
            return f"{path} changed since the server imported it"
    if threading.active_count() != 1:
        return f"{threading.active_count()} threads in the server"
    return ""


def _plotly_default_renderer(env: dict[str, str]) -> str:
    """The default renderer plotly picks when it is imported inside an ipykernel kernel."""
    if env.get("PLOTLY_RENDERER"):
        return env["PLOTLY_RENDERER"]
    for var, name in (
        ("COLAB_NOTEBOOK_ID", "colab"),
        ("/kaggle/input", "kaggle"),
        ("AZURE_NOTEBOOKS_HOST", "azure"),
        ("VSCODE_PID", "vscode"),
        ("NTERACT_EXE", "nteract"),
        ("COCALC_PROJECT_ID", "cocalc"),
        ("DATABRICKS_RUNTIME_VERSION", "databricks"),
    ):
        if os.path.exists(var) if var.startswith("/") else var in env:
            return name
    return "plotly_mimetype"


def _child(request: dict[str, Any], fds: list[int], inherited: list[Any]) -> None:
    """The forked kernel: become a fresh process, then run the kernel; never returns."""
    code = 1
    try:
        for obj in inherited:
            obj.close()
        os.setsid()
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.dup2(fds[0], 1)
        os.dup2(fds[1], 2)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        for sig in (signal.SIGTERM, signal.SIGCHLD, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        os.environ["JPY_PARENT_PID"] = str(os.getppid())
        import ipykernel_launcher

        sys.argv = [ipykernel_launcher.__file__, *request["argv"]]
        import random

        random.seed()  # (random also reseeds itself in a forked child: os.register_at_fork)
        if "numpy" in sys.modules:  # NumPy's global generator does not: every child would
            sys.modules["numpy"].random.seed()  # draw the server's numbers
        from ipykernel.kernelapp import IPKernelApp

        # sys.path: the server's, whose own folder was dropped as ipykernel_launcher drops
        # the working folder; the shell puts '' in front when it starts (initialize)
        app = IPKernelApp.instance(parent_handle=os.getppid())
        app.initialize(sys.argv[1:])
        if "plotly.io._renderers" in sys.modules:
            import plotly.io as pio

            pio.renderers.default = _plotly_default_renderer(request["env"])
        try:
            app.start()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        atexit._run_exitfuncs()
    except BaseException:  # noqa: BLE001 - a child must never return into the server's loop
        import traceback

        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001
                pass
        os._exit(code)


def serve(sock_path: str) -> None:
    """The server's loop: fork a kernel per request, report each exit, end at stdin's EOF."""
    import selectors

    if sys.path and (sys.path[0] in ("", os.getcwd())):
        del sys.path[0]  # as ipykernel_launcher: the server's folder is no kernel's
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # its process ends it (stdin), not Ctrl-C
    _preload()
    base_env = dict(os.environ)
    mtimes = _helper_mtimes()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(sock_path)
    listener.listen(16)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ, "accept")
    sel.register(sys.stdin.fileno(), selectors.EVENT_READ, "stdin")
    kernels: dict[int, tuple[int, socket.socket, int]] = {}  # pidfd -> pid, conn, pidfd
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while True:
        for key, _ in sel.select():
            if key.data == "stdin":
                if not os.read(sys.stdin.fileno(), 4096):  # its process has ended
                    listener.close()
                    folder = Path(sock_path).parent
                    if folder.name.startswith(_DIR_PREFIX):  # also when it was killed
                        shutil.rmtree(folder, ignore_errors=True)
                    return
            elif key.data == "accept":
                conn, _ = listener.accept()
                try:
                    msg, fds, _, _ = socket.recv_fds(conn, _MSG, 2)
                    request = json.loads(msg)
                    why = _refusal(request, base_env, mtimes) if len(fds) == 2 else "no fds"
                    if why:
                        conn.send(json.dumps({"refused": why}).encode())
                        conn.close()
                        continue
                    sys.stdout.flush()
                    sys.stderr.flush()
                    inherited = [listener, conn, sel]  # fds 0-2: replaced in the child
                    inherited += [k[1] for k in kernels.values()]
                    pid = os.fork()
                    if pid == 0:
                        for _pid, _conn, pidfd in kernels.values():
                            os.close(pidfd)
                        _child(request, fds, inherited)
                    for fd in fds:
                        os.close(fd)
                    pidfd = os.pidfd_open(pid)
                    kernels[pidfd] = (pid, conn, pidfd)
                    sel.register(pidfd, selectors.EVENT_READ, "exit")
                    conn.send(json.dumps({"pid": pid}).encode())
                except (OSError, ValueError) as exc:
                    print(f"[forkserver] launch failed: {exc!r}", file=sys.stderr, flush=True)
                    conn.close()
            else:
                pid, conn, pidfd = kernels.pop(key.fd)
                sel.unregister(pidfd)
                os.close(pidfd)
                _, status = os.waitpid(pid, 0)
                try:
                    conn.send(
                        json.dumps({"returncode": os.waitstatus_to_exitcode(status)}).encode()
                    )
                except OSError:
                    pass  # the manager has gone
                conn.close()


if __name__ == "__main__":
    serve(sys.argv[1])
