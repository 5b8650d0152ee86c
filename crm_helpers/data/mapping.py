"""Map the schema: which :class:`~crm_helpers.schema.Schema` applies, and contract names.

:func:`_resolve_schema` takes the schema given to :func:`crm_helpers.data.load` (a
:class:`~crm_helpers.schema.Schema` or the path of its YAML file), else
``data_dir/schema.yaml`` when present, else the contract's own names
(:data:`~crm_helpers.schema.DEFAULT_SCHEMA`). :func:`rename_columns` renames a source's
mapped columns to contract names, for files and warehouse tables alike; a mapped column the
source lacks is a ``missing_column`` error.
"""

from __future__ import annotations

from pathlib import Path

import ibis

from crm_helpers.data.findings import Finding
from crm_helpers.schema import DEFAULT_SCHEMA, Schema

__all__ = ["rename_columns"]


def _resolve_schema(data_dir: Path, schema: Schema | str | Path | None) -> Schema:
    if isinstance(schema, Schema):
        return schema
    path = Path(schema) if schema is not None else data_dir / "schema.yaml"
    if schema is None and not path.exists():
        return DEFAULT_SCHEMA
    return Schema.from_yaml(path)


def rename_columns(
    name: str, t: ibis.Table, schema: Schema, where: str
) -> tuple[ibis.Table, list[Finding]]:
    """``t`` with the schema mapping's source columns renamed to contract names.

    ``where`` names the source in messages (a file name, ``table analytics.web_events``).
    Returns the renamed table and a ``missing_column`` error per mapped column it lacks.
    """
    errors = []
    rename = {canon: src for src, canon in schema.rename_map(name).items() if src in t.columns}
    for src, canon in schema.rename_map(name).items():
        if src not in t.columns:
            errors.append(
                Finding(
                    table=name,
                    column=canon,
                    check="missing_column",
                    severity="error",
                    count=0,
                    message=f"the schema mapping says column '{canon}' is called '{src}' "
                    f"in {where}, but it has no '{src}' (columns: {list(t.columns)})",
                    fix=f"correct columns: {{{name}: {{{canon}: ...}}}} in schema.yaml, "
                    "or remove the line if the source already uses the contract name.",
                )
            )
    return (t.rename(rename) if rename else t), errors
