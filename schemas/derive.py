"""Derive one schema file per table from the reference column list.

Usage: python schemas/derive.py [--check]

Reads schemas/source/device-tables.json (the compiled Defender/Log Analytics
column reference) and writes schemas/<Table>.json. With --check, exits 1 if a
written file differs from what would be derived, so CI catches hand edits.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "source" / "device-tables.json"

# Log Analytics adds these itself or reserves them; a producer must never send them.
RESERVED = {"TenantId", "Type", "SourceSystem", "_BilledSize", "_IsBillable", "_ResourceId", "TimeGenerated"}
# Without these a row cannot be identified or placed in time (DESIGN section 2).
REQUIRED = ["Timestamp", "DeviceId", "DeviceName"]
# Reference vocabulary -> Tables API / DCR stream declaration vocabulary.
TYPES = {
    "string": "string",
    "int": "int",
    "long": "long",
    "real": "real",
    "bool": "boolean",
    "datetime": "datetime",
    "dynamic": "dynamic",
    "guid": "guid",
}
ADDED = [
    {
        "name": "TimeGenerated",
        "type": "datetime",
        "origin": "added",
        "description": "Log Analytics record time; the row's Timestamp",
    },
    {
        "name": "SourceTenantId",
        "type": "string",
        "origin": "added",
        "description": "Entra tenant id from the Streaming API envelope (TenantId is reserved)",
    },
    {
        "name": "RetentionTag",
        "type": "string",
        "origin": "added",
        "description": "Retention class the ingestor assigned to the row",
    },
]


def derive(reference: dict) -> dict[str, dict]:
    tables = {}
    for table, columns in reference.items():
        if table.startswith("_"):
            continue
        out = []
        for col in columns:
            if col["name"] in RESERVED or col["la"] == "standard-hidden":
                continue
            entry = {
                "name": col["name"],
                "type": TYPES[col["type"]],
                "origin": "stream",
                "description": col["description"],
            }
            if col["stream"] == "no":
                entry["origin"] = "table"  # a Sentinel column the stream never carries
            out.append(entry)
        names = [c["name"] for c in out]
        missing = [r for r in REQUIRED if r not in names]
        if missing:
            raise SystemExit(f"{table}: required columns {missing} absent from the reference")
        tables[table] = {
            "table": table,
            "category": f"AdvancedHunting-{table}",
            "required": REQUIRED,
            "columns": out + ADDED,
        }
    return tables


def render(schema: dict) -> str:
    return json.dumps(schema, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    tables = derive(json.loads(SOURCE.read_text()))
    stale = []
    for table, schema in tables.items():
        path = HERE / f"{table}.json"
        text = render(schema)
        if "--check" in argv:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.write_text(text)
    if stale:
        print(f"stale schema files (run python schemas/derive.py): {', '.join(stale)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
