"""The KQL body of the workspace function named after a Defender table: the native table, exactly, over its class
tables.

`function_query` presents every column of the table with its native name and type, in native order, whatever the
plans and projections of the class tables behind it: a leg whose table declares a column as text (an Auxiliary
table's `dynamic` columns) casts it back, a leg that does not carry a column (dropped by a projection) yields a
typed null. Without the casts, `union` would split a column of two types into `<name>_dynamic` and `<name>_string`.
"""

from __future__ import annotations

from collections.abc import Sequence

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


def function_query(presented: Sequence[Column], legs: Sequence[tuple[str, Sequence[Column]]]) -> str:
    """The function body presenting `presented` (native names, types and order) over `legs`: each class table's
    name with the columns it declares (in `presented`'s order). Legs that declare every column as presented are
    named as they are; otherwise the added columns go last, so `project-reorder` restores the native order."""
    bodies = []
    for table, declared in legs:
        fixes = _fixes(declared, presented)
        bodies.append(f"({table} | extend {', '.join(fixes)})" if fixes else table)
    union = bodies[0] if len(bodies) == 1 else "union isfuzzy=true " + ", ".join(bodies)
    if all(body == table for body, (table, _) in zip(bodies, legs, strict=True)):
        return union
    return f"{union}\n| project-reorder {', '.join(c.name for c in presented)}"


def _fixes(declared: Sequence[Column], presented: Sequence[Column]) -> list[str]:
    types = {c.name: c.type for c in declared}
    fixes = []
    for column in presented:
        have = types.get(column.name)
        if have is None:
            fixes.append(f"{column.name} = {NULL[column.type]}")
        elif have != column.type:
            fixes.append(f"{column.name} = {CAST[column.type]}({column.name})")
    return fixes
