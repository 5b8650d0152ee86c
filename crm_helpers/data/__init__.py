"""The data contract, loaded: ``load(dir)`` finds the tables, maps, checks and normalises them.

>>> data = load("data/synthetic")                 # DuckDB over Parquet, validated
>>> data.events                                    # an Ibis table, canonical names
>>> data.events.group_by("event").count().to_pandas()   # only the aggregate comes back

The package is layered: each module imports only the ones listed below it (the import
contract in ``pyproject.toml``, ``[tool.importlinter]``, checks this;
``tests/test_import_contract.py`` runs it).

========================  ===================================================================
module                    step
========================  ===================================================================
``loader``                :func:`load`: files or warehouse tables, through the steps below
``warehouse``             the contract's tables where they live (a warehouse connection)
``assemble``              :func:`finish_load`: required tables, validation, normalised views
``validate``              the contract checks (runs ``validate_dates`` with the others)
``validate_dates``        the checks of time: implausible dates, lost time order
``crmdata``               :class:`CRMData`, the loaded data set (a container)
``normalisation``         contract types and naive UTC, validation's cleaning as lazy filters
``order_lines``           orders from a file of order lines
``mapping``               which schema mapping applies; source names to contract names
``sources``               find each table's file(s) and read them into the engine
``column_types``          Parquet timestamp flavours; column types in words
``findings``              :class:`Finding`, :class:`DataContractError`, the quality report
========================  ===================================================================

This module only re-exports the public names (it holds no code), so
``from crm_helpers.data import load, CRMData`` works as before the split.
"""

from __future__ import annotations

from crm_helpers.data.assemble import finish_load
from crm_helpers.data.crmdata import CRMData
from crm_helpers.data.findings import DataContractError, DataQualityReport, Finding
from crm_helpers.data.loader import load
from crm_helpers.data.mapping import rename_columns
from crm_helpers.data.normalisation import (
    OFFSET_PATTERN,
    ColumnPlan,
    apply_cleaning,
    aware_to_naive_utc,
    normalise,
    parse_timestamp_text,
    plan_columns,
)
from crm_helpers.data.order_lines import aggregate_order_lines
from crm_helpers.data.sources import FORMATS, find_table_file

__all__ = [
    "FORMATS",
    "OFFSET_PATTERN",
    "CRMData",
    "ColumnPlan",
    "DataContractError",
    "DataQualityReport",
    "Finding",
    "aggregate_order_lines",
    "apply_cleaning",
    "aware_to_naive_utc",
    "find_table_file",
    "finish_load",
    "load",
    "normalise",
    "parse_timestamp_text",
    "plan_columns",
    "rename_columns",
]
