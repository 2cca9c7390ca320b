"""What a valid Defender record lands as with the default configuration: the row end-to-end tests expect the
emulator to hold for it."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from ingestor.tables import load_schemas

DYNAMIC = {table: {c.name for c in s.columns if c.type == "dynamic"} for table, s in load_schemas().items()}


def expected_row(record: dict[str, Any]) -> dict[str, Any]:
    """The row of a valid record as Defender meant it: non-null columns, dynamic JSON text parsed, the columns the
    ingestor adds (TimeGenerated, SourceTenantId, RetentionTag of the default class)."""
    dynamic = DYNAMIC[record["category"].removeprefix("AdvancedHunting-")]
    row: dict[str, Any] = {}
    for column, value in record["properties"].items():
        if value is None:
            continue
        if column in dynamic and isinstance(value, str) and value[:1] in "[{":
            with contextlib.suppress(json.JSONDecodeError):  # truncated JSON text stays a string
                value = json.loads(value)
        row[column] = value
    return row | {"TimeGenerated": row["Timestamp"], "SourceTenantId": record["tenantId"], "RetentionTag": "default"}
