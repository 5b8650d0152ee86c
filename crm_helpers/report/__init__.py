"""Report pipeline: run a notebook with papermill, render HTML without code, record metrics.

Notebooks use :mod:`crm_helpers.report.metrics` (``record``, ``record_table``, ``summary``)
and :func:`crm_helpers.report.provenance.header`; ``crm run`` uses
:func:`crm_helpers.report.run.run_notebook`.
"""

# first: nbformat (papermill, the runner) without compiling jsonschema's unused IRI grammar
import crm_helpers.nbformat_fast  # noqa: F401, I001
from crm_helpers.report import metrics
from crm_helpers.report.provenance import header

__all__ = ["header", "metrics"]
