"""A report's kernel may be slow to send a cell's outputs (a busy machine) without failing.

papermill raises when a cell's outputs trail its reply by more than nbclient's
``iopub_timeout`` (4 s by default): under load a report failed with "Timeout waiting for
IOPub output". Runs give it :data:`crm_helpers.report.kernel.IOPUB_TIMEOUT_S`.
"""

from __future__ import annotations

import nbclient
import nbformat

from crm_helpers.report import kernel
from crm_helpers.report.run import run_notebook


def test_a_run_gives_the_kernel_the_longer_iopub_timeout(tmp_path, monkeypatch):
    from papermill.clientwrap import PapermillNotebookClient

    seen = []
    original = PapermillNotebookClient.__init__

    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        seen.append((self.iopub_timeout, self.raise_on_iopub_timeout))

    monkeypatch.setattr(PapermillNotebookClient, "__init__", spy)
    params = nbformat.v4.new_code_cell("x = 1")
    params.metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(cells=[params, nbformat.v4.new_code_cell("print(x)")])
    nbformat.write(nb, str(tmp_path / "tiny.ipynb"))
    res = run_notebook(tmp_path / "tiny.ipynb", out_dir=tmp_path / "r", update_index=False)
    assert res.ok, res.error
    assert seen == [(kernel.IOPUB_TIMEOUT_S, True)]  # the client that executes the notebook
    assert kernel.IOPUB_TIMEOUT_S >= 30 > nbclient.NotebookClient.iopub_timeout.default_value
