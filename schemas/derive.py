"""Derive one schema file per table from the compiled column references in schemas/source/.

Usage: python schemas/derive.py [--check]

Reads every schemas/source/*.json (each a compiled Defender/Log Analytics column reference: `_sources`, `_notes`,
`_required` and one column list per table) and writes schemas/<Table>.json for every table they hold. With
--check, writes nothing and exits 1 if a schema file differs from its derivation or no source derives it, so CI
catches hand edits.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCES = HERE / "source"

# Log Analytics adds these columns itself; a producer never sends them, so no schema carries them. Every other
# column is kept, whatever its name: a Defender column named like a reserved one (AlertInfo.Title, IdentityInfo.Type)
# is provisioning's to store, not the derivation's to drop.
LOG_ANALYTICS_COLUMNS = {"standard", "standard-hidden"}
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


def derive(reference: dict, origin: str = "reference") -> dict[str, dict]:
    """The schema of every table in one reference; its `_required` names the columns each of them needs."""
    required = reference.get("_required")
    if not isinstance(required, list) or not required or not all(isinstance(r, str) for r in required):
        raise SystemExit(f"{origin}: _required must list the required column names")
    tables = {}
    for table, columns in reference.items():
        if table.startswith("_"):
            continue
        out = []
        for col in columns:
            if col["la"] in LOG_ANALYTICS_COLUMNS:
                continue
            entry = {
                "name": col["name"],
                "type": TYPES[col["type"]],
                "origin": "stream",
                "description": col["description"],
            }
            if col["stream"] == "no":
                entry["origin"] = "table"  # a Sentinel column the stream never carries
            elif TYPES.get(col.get("defender_type") or "") == "dynamic" and entry["type"] != "dynamic":
                entry["stream_type"] = "dynamic"  # Defender documents JSON here: the stream may send an array
            out.append(entry)
        names = [c["name"] for c in out]
        missing = [r for r in required if r not in names]
        if missing:
            raise SystemExit(f"{origin}: {table}: required columns {missing} absent from the reference")
        tables[table] = {
            "table": table,
            "category": f"AdvancedHunting-{table}",
            "required": required,
            "columns": out + ADDED,
        }
    return tables


def derive_all(directory: Path = SOURCES) -> dict[str, dict]:
    """The schema of every table in every reference under `directory`, by table name; a table in two is an error."""
    tables: dict[str, dict] = {}
    for path in sorted(directory.glob("*.json")):
        for table, schema in derive(json.loads(path.read_text(encoding="utf-8")), path.name).items():
            if table in tables:
                raise SystemExit(f"{path.name}: {table} is already derived from another reference")
            tables[table] = schema
    if not tables:
        raise SystemExit(f"no column references in {directory}")
    return tables


def render(schema: dict) -> str:
    return json.dumps(schema, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    tables = derive_all()
    stale = []
    for table, schema in tables.items():
        path = HERE / f"{table}.json"
        text = render(schema)
        if "--check" in argv:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(path.name)
        else:
            path.write_text(text, encoding="utf-8")
    orphans = sorted(p.name for p in HERE.glob("*.json") if p.stem not in tables)
    if orphans:
        print(f"schema files no reference derives (remove them or add their table to schemas/source/): {orphans}")
        return 1
    if stale:
        print(f"stale schema files (run python schemas/derive.py): {', '.join(stale)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
