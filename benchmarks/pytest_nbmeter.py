"""pytest plugin: every notebook execution (papermill) and every test, with their CPU seconds.

Usage (one worker; compare CPU seconds, not wall time, on a loaded machine)::

    NBMETER_OUT=/tmp/nb.jsonl PYTHONPATH=$PWD:$PWD/benchmarks \\
        nice .venv/bin/python -m pytest -p no:cacheprovider -p pytest_nbmeter tests/notebooks

Writes JSON lines to ``$NBMETER_OUT``: ``{"kind": "exec", "test", "nb", "params", "wall",
"self_cpu", "child_cpu", "cells", "err"}`` per ``papermill.execute_notebook`` call
(``child_cpu``: the kernel, reaped when the run ends; ``cells``: papermill's duration of each
code cell) and ``{"kind": "test", "test", "wall", "self_cpu", "child_cpu"}`` per test
(setup, call and teardown; subprocesses such as ``crm run`` or nbval count as children).
``python benchmarks/pytest_nbmeter.py FILE`` sums them per test file.
"""

from __future__ import annotations

import collections
import json
import os
import resource
import sys
import time

import pytest

OUT = os.environ.get("NBMETER_OUT", "nbmeter.jsonl")
_current: dict[str, str | None] = {"test": None}


def _cpu() -> tuple[float, float]:
    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime, c.ru_utime + c.ru_stime


def _write(rec: dict) -> None:
    with open(OUT, "a") as fh:
        fh.write(json.dumps(rec, default=str) + "\n")


def pytest_configure(config) -> None:
    import nbformat
    import papermill

    orig = papermill.execute_notebook

    def execute_notebook(input_path, output_path, parameters=None, **kw):
        s0, c0 = _cpu()
        t0 = time.perf_counter()
        nb, err = None, None
        try:
            nb = orig(input_path, output_path, parameters=parameters, **kw)
            return nb
        except Exception as exc:
            err = type(exc).__name__
            raise
        finally:
            s1, c1 = _cpu()
            cells = []
            try:
                src = nb if nb is not None else nbformat.read(output_path, as_version=4)
                cells = [
                    c.metadata.get("papermill", {}).get("duration")
                    for c in src.cells
                    if c.cell_type == "code"
                ]
            except Exception:  # noqa: BLE001 - a failed run may leave no notebook
                pass
            _write(
                {"kind": "exec", "test": _current["test"], "nb": os.path.basename(str(input_path)),
                 "params": sorted((parameters or {}).keys()), "wall": time.perf_counter() - t0,
                 "self_cpu": s1 - s0, "child_cpu": c1 - c0, "cells": cells, "err": err}
            )  # fmt: skip

    papermill.execute_notebook = execute_notebook


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _current["test"] = item.nodeid
    s0, c0 = _cpu()
    t0 = time.perf_counter()
    yield
    s1, c1 = _cpu()
    _write({"kind": "test", "test": item.nodeid, "wall": time.perf_counter() - t0,
            "self_cpu": s1 - s0, "child_cpu": c1 - c0})  # fmt: skip


def summarize(path: str) -> None:
    """Print, per test file: executions, their kernel CPU, tests and their CPU (self + children)."""
    recs = [json.loads(line) for line in open(path)]
    by = collections.defaultdict(lambda: [0, 0.0, 0, 0.0])
    for r in recs:
        f = (r["test"] or "?").split("::")[0]
        if r["kind"] == "exec":
            by[f][0] += 1
            by[f][1] += r["child_cpu"]
        else:
            by[f][2] += 1
            by[f][3] += r["child_cpu"] + r["self_cpu"]
    print(f"{'file':58s} execs kernel_cpu tests   cpu_s")
    total = [0, 0.0, 0, 0.0]
    for f, v in sorted(by.items()):
        print(f"{f:58s} {v[0]:5d} {v[1]:10.1f} {v[2]:5d} {v[3]:7.1f}")
        total = [a + b for a, b in zip(total, v, strict=True)]
    print(f"{'total':58s} {total[0]:5d} {total[1]:10.1f} {total[2]:5d} {total[3]:7.1f}")


if __name__ == "__main__":
    summarize(sys.argv[1])
