"""The KQL body of the workspace function named after a Defender table: the native table, exactly, over its class
tables.

`function_query` presents every column of the table with its native name and type, in native order, whatever the
plans, projections and stored names of the class tables behind it: a leg whose table declares a column as text (an
Auxiliary table's `dynamic` columns) casts it back, a leg that does not carry a column (dropped by a projection)
yields a typed null, and a column stored under another name (`azure_rules.stored_names`: `Title_` for `Title`) is
presented under its own again. Without the casts, `union` would split a column of two types into `<name>_dynamic`
and `<name>_string`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ingestor.tables import Column, ColumnType

# Typed nulls: KQL has none for string, whose empty value is "" (`isempty()` is true for both).
NULL: dict[ColumnType, str] = {
    "string": '""',
    "int": "int(null)",
    "long": "long(null)",
    "real": "real(null)",
    "boolean": "bool(null)",
    "datetime": "datetime(null)",
    "dynamic": "dynamic(null)",
    "guid": "guid(null)",
}
CAST: dict[ColumnType, str] = {
    "string": "tostring",
    "int": "toint",
    "long": "tolong",
    "real": "toreal",
    "boolean": "tobool",
    "datetime": "todatetime",
    "dynamic": "todynamic",
    "guid": "toguid",
}


def function_query(
    presented: Sequence[Column], legs: Sequence[tuple[str, Sequence[Column]]], stored: Mapping[str, str] | None = None
) -> str:
    """The function body presenting `presented` (native names, types and order) over `legs`: each class table's
    name with the columns it declares (native names, in `presented`'s order), of which those in `stored` (native ->
    stored name) are stored under another name. Legs that declare every column as presented are named as they are;
    otherwise the added columns go last, so `project-reorder` restores the native order."""
    stored = stored or {}
    bodies = []
    for table, declared in legs:
        fixes = _fixes(declared, presented, stored)
        renamed = [stored[c.name] for c in declared if c.name in stored]
        body = table
        if fixes:
            body += f" | extend {', '.join(fixes)}"
        if renamed:
            body += f" | project-away {', '.join(renamed)}"
        bodies.append(f"({body})" if body != table else table)
    union = bodies[0] if len(bodies) == 1 else "union isfuzzy=true " + ", ".join(bodies)
    if all(body == table for body, (table, _) in zip(bodies, legs, strict=True)):
        return union
    return f"{union}\n| project-reorder {', '.join(c.name for c in presented)}"


def _fixes(declared: Sequence[Column], presented: Sequence[Column], stored: Mapping[str, str]) -> list[str]:
    types = {c.name: c.type for c in declared}
    fixes = []
    for column in presented:
        have = types.get(column.name)
        source = stored.get(column.name, column.name)
        if have is None:
            fixes.append(f"{column.name} = {NULL[column.type]}")
        elif have != column.type:
            fixes.append(f"{column.name} = {CAST[column.type]}({source})")
        elif source != column.name:
            fixes.append(f"{column.name} = {source}")
    return fixes
