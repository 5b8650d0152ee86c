"""A run's kernel is shut down without SIGINT (its log stays quiet), and still interrupted
when a cell times out."""

from __future__ import annotations

import asyncio

from jupyter_client.manager import AsyncKernelManager

from crm_helpers.report.kernel import _kernel_manager_class


def test_no_interrupt_while_shutting_down_but_otherwise(tmp_path, monkeypatch):
    calls = []

    async def fake_interrupt(self):
        calls.append(self.shutting_down)

    monkeypatch.setattr(AsyncKernelManager, "_async_interrupt_kernel", fake_interrupt)
    with (tmp_path / "run.log").open("a") as log:
        km = _kernel_manager_class(log, None)()
    km.shutting_down = True
    asyncio.run(km._async_interrupt_kernel())
    assert calls == []
    km.shutting_down = False
    asyncio.run(km._async_interrupt_kernel())
    assert calls == [False]
