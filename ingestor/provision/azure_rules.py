"""Azure's documented rules for a provision template, as data: the limits (`MAX_*`), the column names a custom
table cannot take and `stored_names`, the names it stores such columns under, and `check_template`, which lists
every problem Azure would refuse a template for, or that would lose columns silently. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ingestor.provision.arm import (
    DCR_KEY_TAG,
    DCR_TYPE,
    FUNCTION_TYPE,
    MONITORING_METRICS_PUBLISHER,
    ROLE_ASSIGNMENT_TYPE,
    STREAM_COLUMN_TYPES,
    TABLE_COLUMN_TYPES,
    resources_of,
    template_tables,
    transform_renames,
)
from ingestor.retention import FIXED_INTERACTIVE_DAYS, TOTAL_RETENTION_YEARS
from ingestor.tables import COLUMN_NAME, MAX_COLUMN_NAME_CHARS, MAX_COLUMNS_PER_TABLE, RESERVED_COLUMNS

# Azure's limits (azure-monitor-limits-data-collection-rules, workspace limits, Tables API).
MAX_FLOWS_PER_DCR = 10
MAX_STREAMS_PER_DCR = 10
MAX_TRANSFORM_CHARS = 15_360
MAX_DCR_NAME_CHARS = 64
MAX_PREFIX_CHARS = 17
_TABLE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,59}_CL")
# Columns Log Analytics adds to every table (Azure Monitor "standard columns"; the `_` ones are hidden from
# `getschema` and the schema pane but queryable). TimeGenerated is standard too, but a custom table declares it.
STANDARD_COLUMNS: tuple[tuple[str, str], ...] = (
    ("TenantId", "string"),
    ("SourceSystem", "string"),
    ("Type", "string"),
    ("_ResourceId", "string"),
    ("_SubscriptionId", "string"),
    ("_ItemId", "string"),
    ("_TimeReceived", "datetime"),
    ("_IsBillable", "string"),
    ("_BilledSize", "real"),
)
# Names a custom table's column cannot have, compared ignoring case: the reserved ones and the standard columns'.
UNSTORABLE_COLUMNS = RESERVED_COLUMNS | {name.lower() for name, _ in STANDARD_COLUMNS}
# What a table stores such a column under: its name and this suffix (repeated until the name is free).
STORED_SUFFIX = "_"


def stored_names(names: Sequence[str]) -> dict[str, str]:
    """The columns of a table (`names`, in order) that a custom table cannot hold under their own name, each with
    the name it holds it under: `<name>_`. Those are the reserved and standard names (AlertInfo's `Title`,
    IdentityInfo's `Type`), and a name equal, ignoring case, to an earlier column's (IdentityInfo's `AccountUPN`
    after `AccountUpn`: Log Analytics is taken to compare column names ignoring case, as it does reserved names).
    The stream keeps sending the native name; the data flow renames it (`arm.rename_transform`) and the workspace
    function presents it under its native name again."""
    taken = {name.lower() for name in names}
    seen: set[str] = set()
    stored: dict[str, str] = {}
    for name in names:
        folded = name.lower()
        if folded in UNSTORABLE_COLUMNS or folded in seen:
            new = name + STORED_SUFFIX
            while new.lower() in taken or new.lower() in UNSTORABLE_COLUMNS:
                new += STORED_SUFFIX
            taken.add(new.lower())
            stored[name] = new
        seen.add(folded)
    return stored


def check_template(template: dict[str, Any]) -> list[str]:
    """Problems Azure would refuse the template for (or that would lose columns silently); empty when none."""
    tables = template_tables(template)
    rules = resources_of(template, DCR_TYPE)
    problems = [p for name, properties in tables.items() for p in _check_table(name, properties)]
    for rule in rules:
        problems.extend(_check_rule(rule, tables))
    # A role assignment names its DCR in `scope`; the role must be Monitoring Metrics Publisher.
    publisher = MONITORING_METRICS_PUBLISHER in template.get("variables", {}).get("publisherRole", "")
    scopes = {
        r["scope"]
        for r in resources_of(template, ROLE_ASSIGNMENT_TYPE)
        if publisher and r["properties"]["roleDefinitionId"] == "[variables('publisherRole')]"
    }
    problems.extend(
        f"DCR {rule['tags'][DCR_KEY_TAG]}: no Monitoring Metrics Publisher role assignment"
        for rule in rules
        if f"[format('Microsoft.Insights/dataCollectionRules/{{0}}', {rule['name'][1:-1]})]" not in scopes
    )
    for function in resources_of(template, FUNCTION_TYPE):
        query = function["properties"]["query"]
        unknown = [t for t in re.findall(r"\b\w+_CL\b", query) if t not in tables]
        if unknown:
            problems.append(f"function {function['properties']['functionAlias']}: unknown tables {unknown}")
    return problems


def _check_table(name: str, properties: dict[str, Any]) -> list[str]:
    where = f"table {name}"
    problems = []
    if not _TABLE_NAME.fullmatch(name):
        problems.append(f"{where}: a custom table name is a letter, letters/digits/_, `_CL`, 4-63 characters")
    columns = properties["schema"]["columns"]
    if len(columns) > MAX_COLUMNS_PER_TABLE:
        problems.append(f"{where}: {len(columns)} columns; a table may have {MAX_COLUMNS_PER_TABLE}")
    plan = properties.get("plan")
    names = [c["name"].lower() for c in columns]
    if len(set(names)) != len(names):
        problems.append(f"{where}: duplicate column names (compared ignoring case)")
    for column in columns:
        column_name, column_type = column["name"], column["type"]
        if not COLUMN_NAME.fullmatch(column_name) or len(column_name) > MAX_COLUMN_NAME_CHARS:
            problems.append(f"{where}: column {column_name!r} must be a letter then letters/digits/_, <= 45 chars")
        if column_name.lower() in UNSTORABLE_COLUMNS:
            problems.append(f"{where}: column {column_name!r} is reserved or a standard column")
        if column_type not in TABLE_COLUMN_TYPES.values():
            problems.append(f"{where}: column {column_name!r} has type {column_type!r}, not a Tables API type")
    if plan == "Auxiliary" and any(c["type"] == "dynamic" for c in columns):
        problems.append(f"{where}: an Auxiliary table cannot have dynamic columns")
    if {"name": "TimeGenerated", "type": "dateTime"} not in columns:
        problems.append(f"{where}: every table needs TimeGenerated of type dateTime")
    if plan not in ("Analytics", "Basic", "Auxiliary"):
        problems.append(f"{where}: plan {plan!r} is not Analytics, Basic or Auxiliary")
    interactive = properties.get("retentionInDays")
    if interactive is not None and (plan != "Analytics" or not 4 <= interactive <= 730):
        problems.append(f"{where}: retentionInDays is 4-730 and only settable on Analytics, got {interactive}")
    total = properties.get("totalRetentionInDays")
    if total is not None and not (4 <= total <= 730 or total in TOTAL_RETENTION_YEARS):
        problems.append(f"{where}: totalRetentionInDays {total} is not 4-730 or a whole number of years up to 12")
    fixed = FIXED_INTERACTIVE_DAYS if plan in ("Basic", "Auxiliary") else interactive
    if total is not None and fixed is not None and total < fixed:
        problems.append(f"{where}: totalRetentionInDays {total} is shorter than the interactive {fixed} days")
    return problems


def _check_rule(rule: dict[str, Any], tables: dict[str, dict[str, Any]]) -> list[str]:
    where = f"DCR {rule.get('tags', {}).get(DCR_KEY_TAG, rule['name'])}"
    properties = rule["properties"]
    streams, flows = properties["streamDeclarations"], properties["dataFlows"]
    problems = []
    if len(flows) > MAX_FLOWS_PER_DCR:
        problems.append(f"{where}: {len(flows)} data flows; a DCR may have {MAX_FLOWS_PER_DCR}")
    if len(streams) > MAX_STREAMS_PER_DCR:
        problems.append(f"{where}: {len(streams)} streams; a DCR may have {MAX_STREAMS_PER_DCR}")
    if len(properties["destinations"]["logAnalytics"]) > 10:
        problems.append(f"{where}: more than 10 Log Analytics destinations")
    for stream, declaration in streams.items():
        if not stream.startswith("Custom-"):
            problems.append(f"{where}: stream {stream} must start with Custom-")
        bad = [c["name"] for c in declaration["columns"] if c["type"] not in STREAM_COLUMN_TYPES.values()]
        if bad:
            problems.append(f"{where}: stream {stream} columns {bad} have types a stream cannot declare")
    outputs = [flow["outputStream"].removeprefix("Custom-") for flow in flows]
    for flow in flows:
        transform = flow.get("transformKql")
        if transform is not None and len(flow["streams"]) != 1:
            problems.append(f"{where}: a data flow with a transform must read exactly one stream")
        if transform is not None and len(transform) > MAX_TRANSFORM_CHARS:
            problems.append(f"{where}: transform of {len(transform)} characters; the limit is {MAX_TRANSFORM_CHARS}")
        table = flow["outputStream"].removeprefix("Custom-")
        if table not in tables:
            problems.append(f"{where}: data flow into {table}, which the template does not declare")
            continue
        unknown = [s for s in flow["streams"] if s not in streams]
        if unknown:
            problems.append(f"{where}: data flow reads undeclared streams {unknown}")
            continue
        try:
            renames = transform_renames(transform)
        except ValueError:
            continue  # a transform of someone else's: what lands is its business
        declaration = streams[flow["streams"][0]]
        problems.extend(_check_columns_match(where, declaration, tables[table], table, renames))
        if tables[table]["plan"] == "Auxiliary" and len(set(outputs)) > 1:
            problems.append(f"{where}: an Auxiliary table ({table}) needs a DCR of its own")
    return problems


def _check_columns_match(
    where: str, declaration: dict[str, Any], table: dict[str, Any], name: str, renames: dict[str, str]
) -> list[str]:
    """The stream's columns land as they are, or renamed by the transform (`renames`): each must then be a table
    column of its type."""
    table_types = {c["name"]: c["type"] for c in table["schema"]["columns"]}
    declared = {column["name"] for column in declaration["columns"]}
    unknown = [sent for sent in renames if sent not in declared]
    problems = [f"{where}: the transform renames {sent}, which the stream does not declare" for sent in unknown]
    for column in declaration["columns"]:
        landed = renames.get(column["name"], column["name"])
        expected = table_types.get(landed)
        if expected is None:
            problems.append(f"{where}: column {landed} is not in table {name}; the DCR would drop it")
        elif STREAM_COLUMN_TYPES[_TABLE_TO_SCHEMA_TYPE[expected]] != column["type"]:
            problems.append(f"{where}: column {column['name']} is {column['type']} in the stream, {expected} in {name}")
    return problems


_TABLE_TO_SCHEMA_TYPE = {v: k for k, v in TABLE_COLUMN_TYPES.items()}
