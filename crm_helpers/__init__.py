"""CRM Workbench helpers: every computation behind the analysis notebooks, tested once.

Event-level work is expressed with Ibis and runs on DuckDB (default) or Spark;
only small aggregates come back as pandas.
"""

from crm_helpers.data import CRMData, load
from crm_helpers.engine import connect
from crm_helpers.schema import Schema

__all__ = ["CRMData", "Schema", "connect", "load"]
__version__ = "0.1.0"
