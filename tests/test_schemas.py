"""Schemas as data: derived from the reference and complete (tests/test_image.py checks the wheel carries them)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ingestor.pipeline.codec import COLUMN_TYPES
from ingestor.tables import load_schemas

ROOT = Path(__file__).resolve().parent.parent
TABLES = {
    "DeviceInfo", "DeviceNetworkInfo", "DeviceProcessEvents", "DeviceNetworkEvents", "DeviceFileEvents",
    "DeviceRegistryEvents", "DeviceLogonEvents", "DeviceImageLoadEvents", "DeviceEvents", "DeviceFileCertificateInfo",
}  # fmt: skip
RESERVED = {"TenantId", "Type", "SourceSystem", "_BilledSize", "_IsBillable", "_ResourceId"}


@pytest.mark.process
def test_schema_files_match_their_derivation() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "schemas" / "derive.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ten_tables_with_added_columns_and_no_reserved_ones() -> None:
    schemas = load_schemas()
    assert set(schemas) == TABLES
    reference = json.loads((ROOT / "schemas" / "source" / "device-tables.json").read_text())
    for table, schema in schemas.items():
        names = schema.column_names
        assert len(names) == len(set(names)) <= 500
        assert set(schema.required) == {"Timestamp", "DeviceId", "DeviceName"}
        assert {"TimeGenerated", "SourceTenantId", "RetentionTag"} <= set(names)
        assert not RESERVED & set(names)
        assert all(c.type in COLUMN_TYPES for c in schema.columns)
        assert all(len(n) <= 45 and n[0].isalpha() and n.replace("_", "").isalnum() for n in names)
        source = {c["name"] for c in reference[table]} - RESERVED - {"TimeGenerated"}
        assert source == {c.name for c in schema.columns if c.origin != "added"}
