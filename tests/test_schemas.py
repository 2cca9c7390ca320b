"""Schemas as data: derived from the references in schemas/source/ and complete for every table the Streaming API
exports (tests/test_image.py checks the wheel carries them); the captured samples and public records fit them."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from ingestor.pipeline.codec import COLUMN_TYPES
from ingestor.tables import is_column_name, load_schemas

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "schemas" / "source"
SAMPLES = ROOT / "tools" / "ingestor_tools" / "samples"
RECORDS = ROOT / "tests" / "data" / "xdr-records"
DEVICE_TABLES = {
    "DeviceInfo", "DeviceNetworkInfo", "DeviceProcessEvents", "DeviceNetworkEvents", "DeviceFileEvents",
    "DeviceRegistryEvents", "DeviceLogonEvents", "DeviceImageLoadEvents", "DeviceEvents", "DeviceFileCertificateInfo",
}  # fmt: skip
# The other GA tables of defender-xdr/supported-event-types.md (defender-docs @2903cc6c), and IdentityInfo, which
# public exports carry although that page does not list it.
XDR_TABLES = {
    "AlertEvidence", "AlertInfo", "CloudAppEvents", "EmailAttachmentInfo", "EmailEvents", "EmailPostDeliveryEvents",
    "EmailUrlInfo", "IdentityLogonEvents", "IdentityQueryEvents", "IdentityDirectoryEvents", "UrlClickEvents",
    "IdentityInfo",
}  # fmt: skip
TABLES = DEVICE_TABLES | XDR_TABLES
# Columns Log Analytics adds itself; a schema carries one only where Defender documents a column of that name.
LOG_ANALYTICS_COLUMNS = {"TenantId", "Type", "SourceSystem", "_BilledSize", "_IsBillable", "_ResourceId"}
# Documented columns whose names Log Analytics refuses for a custom column (ingestor.tables.RESERVED_COLUMNS):
# recorded as documented; how they are stored is provisioning's part.
RESERVED_NAME_COLUMNS = {
    ("AlertEvidence", "Title"), ("AlertInfo", "Title"), ("IdentityInfo", "TenantId"), ("IdentityInfo", "Type"),
}  # fmt: skip
# Spellings only Elastic's edited 2022 fixtures use (tests/data/xdr-records/SOURCES.md); kept in UnmappedColumns.
FIXTURE_ONLY_COLUMNS = {"IdentityLogonEvents": {"Isp"}, "AlertInfo": {"ProcessCommandLine"}}
# Elastic's 2022 EmailPostDeliveryEvents fixture (line 3) has no Timestamp, which every real record carries.
FIXTURES_WITHOUT_REQUIRED = {("EmailPostDeliveryEvents", 3)}
COMMIT = re.compile(r"@([0-9a-f]{8,40})\b")


def references() -> dict[str, dict]:  # type: ignore[type-arg]
    return {path.name: json.loads(path.read_text(encoding="utf-8")) for path in sorted(SOURCES.glob("*.json"))}


def source_columns() -> dict[str, list[dict]]:  # type: ignore[type-arg]
    return {t: cols for ref in references().values() for t, cols in ref.items() if not t.startswith("_")}


def derive_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("schemas_derive", ROOT / "schemas" / "derive.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.process
def test_schema_files_match_their_derivation() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "schemas" / "derive.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_exported_table_with_added_columns_and_only_documented_log_analytics_names() -> None:
    schemas = load_schemas()
    assert set(schemas) == TABLES
    reference = source_columns()
    for table, schema in schemas.items():
        names = schema.column_names
        assert schema.category == f"AdvancedHunting-{table}"
        assert len(names) == len(set(names)) <= 500
        assert {"TimeGenerated", "SourceTenantId", "RetentionTag"} <= set(names)
        collisions = {c["name"] for c in reference[table] if c["la"] == "collides-standard"}
        assert LOG_ANALYTICS_COLUMNS & set(names) == collisions, table
        assert all(c.type in COLUMN_TYPES for c in schema.columns)
        assert all(len(n) <= 45 and n[0].isalpha() and n.replace("_", "").isalnum() for n in names)
        source = {c["name"] for c in reference[table] if c["la"] not in ("standard", "standard-hidden")}
        assert source == {c.name for c in schema.columns if c.origin != "added"}
        never_streamed = {c["name"] for c in reference[table] if c["stream"] == "no"} & source
        assert never_streamed == {c.name for c in schema.columns if c.origin == "table"}


def test_every_table_names_its_sources_and_the_commits_they_were_read_at() -> None:
    for name, reference in references().items():
        tables = {t for t in reference if not t.startswith("_")}
        assert set(reference["_sources"]) == tables, name
        for table, source in reference["_sources"].items():
            for key in ("columns_and_order", "la_types"):
                assert COMMIT.search(source[key]), (name, table, key)
            assert source["cross_check"], (name, table)
        for table in tables & XDR_TABLES:  # the new references name full commits
            source = reference["_sources"][table]
            assert re.search(r"MicrosoftDocs/defender-docs \S+ @[0-9a-f]{40}\b", source["columns_and_order"]), table
            assert re.search(r"@[0-9a-f]{40}\b", source["la_types"]), table
    assert {t for ref in references().values() for t in ref if not t.startswith("_")} == TABLES


def test_each_column_is_recorded_in_the_reference_vocabulary() -> None:
    kinds = derive_module().TYPES
    for table, columns in source_columns().items():
        for c in columns:
            assert {"name", "type", "description", "defender_type", "la", "stream"} <= set(c), (table, c)
            assert c["type"] in kinds and (c["defender_type"] is None or c["defender_type"] in kinds), (table, c)
            assert c["stream"] in ("yes", "no", "unverified", "decorated"), (table, c)
            # A column Defender does not document came from Log Analytics or from records that carry it.
            assert c["defender_type"] is not None or c["la"] in ("la-only", "observed", "standard", "standard-hidden")
            if c["la"] == "observed":
                assert c["stream"] == "yes" and c.get("note"), (table, c)


def test_required_columns_come_from_the_references_and_exist() -> None:
    schemas = load_schemas()
    for name, reference in references().items():
        for table in (t for t in reference if not t.startswith("_")):
            assert list(schemas[table].required) == reference["_required"], (name, table)
    for table, schema in schemas.items():
        expected = ("Timestamp", "DeviceId", "DeviceName") if table in DEVICE_TABLES else ("Timestamp",)
        assert schema.required == expected, table
        stream = {c.name: c.type for c in schema.input_columns if c.origin == "stream"}
        assert all(r in stream for r in schema.required), table
        assert stream["Timestamp"] == "datetime"


def test_report_id_is_a_string_outside_the_device_tables() -> None:
    types = {t: {c.name: c.type for c in s.columns} for t, s in load_schemas().items()}
    assert {t for t in types if "ReportId" not in types[t]} == {"AlertInfo", "AlertEvidence"}  # keyed by AlertId
    assert {t: types[t]["ReportId"] for t in types if "ReportId" in types[t] and t not in DEVICE_TABLES} == {
        t: "string" for t in XDR_TABLES - {"AlertInfo", "AlertEvidence"}
    }
    assert {types[t]["ReportId"] for t in DEVICE_TABLES} == {"long"}


def test_log_analytics_types_win_over_defender_types() -> None:
    """Where Log Analytics and Defender disagree the Log Analytics type is the column's, Defender's is kept."""
    reference = source_columns()
    disagreements = {
        (t, c["name"]): (c["defender_type"], c["type"])
        for t, columns in reference.items()
        for c in columns
        if t in XDR_TABLES and c["la"] == "ref" and c["defender_type"] not in (None, c["type"])
    }
    assert disagreements[("IdentityLogonEvents", "Port")] == ("int", "string")
    assert disagreements[("AlertEvidence", "AdditionalFields")] == ("string", "dynamic")
    assert disagreements[("IdentityInfo", "Tags")] == ("dynamic", "string")
    assert all(c.get("note") for t, columns in reference.items() for c in columns if (t, c["name"]) in disagreements)
    # Spelled as Log Analytics and the stream spell it, not as the Defender page does.
    names = {t: {c["name"] for c in columns} for t, columns in reference.items()}
    assert "ISP" in names["CloudAppEvents"] and "Isp" not in names["CloudAppEvents"]


def test_reserved_names_are_recorded_not_dropped() -> None:
    hits = {
        (table, c.name)
        for table, schema in load_schemas().items()
        for c in schema.columns
        if c.origin != "added" and not is_column_name(c.name)
    }
    assert hits == RESERVED_NAME_COLUMNS


def test_each_sample_is_a_real_record_of_its_table_and_fits_its_schema() -> None:
    schemas = load_schemas()
    sources = (SAMPLES / "SOURCES.md").read_text(encoding="utf-8")
    without = {m.group(1) for m in re.finditer(r"^\| (\w+) \| none \|", sources, re.M)}
    assert without == {"IdentityDirectoryEvents"}  # no captured record of it is public
    assert {p.stem for p in SAMPLES.glob("*.json")} == TABLES - without
    for table in TABLES - without:
        assert re.search(rf"^\| {table} \| \S+/\S+ @[0-9a-f]{{40}} ", sources, re.M), table
        (record,) = json.loads((SAMPLES / f"{table}.json").read_text(encoding="utf-8"))
        assert record["category"] == schemas[table].category
        assert {"time", "tenantId", "properties"} <= set(record)
        unknown = set(record["properties"]) - {c.name for c in schemas[table].input_columns}
        assert not unknown, f"{table}: columns in the captured sample but not in the schema: {sorted(unknown)}"
        assert all(r in record["properties"] for r in schemas[table].required), table


def test_public_records_route_to_their_table_and_their_columns_are_known() -> None:
    schemas = load_schemas()
    sources = (RECORDS / "SOURCES.md").read_text(encoding="utf-8")
    assert {p.stem for p in RECORDS.glob("*.jsonl")} == XDR_TABLES
    for path in sorted(RECORDS.glob("*.jsonl")):
        table, lines = path.stem, path.read_text(encoding="utf-8").splitlines()
        section = sources.split(f"## {table}\n", 1)[1].split("\n## ", 1)[0]
        assert len(re.findall(r"^\| \d+ \| ", section, re.M)) == len(lines) > 0, table
        unknown: set[str] = set()
        for number, line in enumerate(lines, 1):
            record = json.loads(line)
            assert record["category"] == schemas[table].category
            complete = all(r in record["properties"] for r in schemas[table].required)
            assert complete != ((table, number) in FIXTURES_WITHOUT_REQUIRED), (table, number)
            unknown |= set(record["properties"]) - {c.name for c in schemas[table].input_columns}
        assert unknown == FIXTURE_ONLY_COLUMNS.get(table, set()), table


def test_derive_reads_required_columns_and_drops_only_log_analytics_columns(tmp_path: Path) -> None:
    derive = derive_module()

    def column(name: str, la: str, stream: str = "yes") -> dict[str, object]:
        return {
            "name": name,
            "type": "string",
            "description": name,
            "defender_type": "string",
            "la": la,
            "stream": stream,
        }

    reference = {
        "_required": ["Timestamp"],
        "T": [
            {**column("Timestamp", "present-not-in-ref"), "type": "datetime"},
            column("Title", "ref"),
            column("Type", "collides-standard"),
            column("Gone", "ref", stream="no"),
            column("TenantId", "standard", stream="no"),
            column("_BilledSize", "standard-hidden", stream="no"),
        ],
    }
    schema = derive.derive(reference)["T"]
    assert schema["required"] == ["Timestamp"]
    assert [(c["name"], c["origin"]) for c in schema["columns"]][:4] == [
        ("Timestamp", "stream"), ("Title", "stream"), ("Type", "stream"), ("Gone", "table"),
    ]  # fmt: skip
    with pytest.raises(SystemExit, match="_required"):
        derive.derive({"T": reference["T"]})
    with pytest.raises(SystemExit, match=r"required columns \['DeviceId'\]"):
        derive.derive({**reference, "_required": ["Timestamp", "DeviceId"]})
    (tmp_path / "a.json").write_text(json.dumps(reference))
    (tmp_path / "b.json").write_text(json.dumps(reference))
    with pytest.raises(SystemExit, match="already derived"):
        derive.derive_all(tmp_path)
