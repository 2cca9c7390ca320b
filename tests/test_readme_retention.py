"""The retention worked example (docs/retention.md): its YAML is a valid configuration and rows land where its table
says."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from ingestor.config import Config, parse_config
from ingestor.pipeline.decode import MessageDecoder
from ingestor.tables import load_schemas

DOC = Path(__file__).resolve().parent.parent / "docs" / "retention.md"
HEADING = "## Worked example\n"


def section() -> str:
    text = DOC.read_text()
    assert HEADING in text, f"docs/retention.md has no section {HEADING.strip()!r}"
    return text.split(HEADING, 1)[1].split("\n## ", 1)[0]


def example_config() -> Config:
    block = section().split("```yaml\n", 1)[1].split("```", 1)[0]
    retention = yaml.safe_load(block)["retention"]
    return parse_config(
        {
            "source": {"bootstrap_servers": ["k:9092"], "topics": ["defender"], "group_id": "g"},
            "sink": {"endpoint": "https://x.example", "rule_id": "dcr-" + "0" * 32},
            "dead_letter": {"path": "/tmp/dl"},
            "retention": retention,
        }
    )


def landing(config: Config, table: str, **properties: Any) -> tuple[str, str, dict[str, Any]]:
    """(class, destination table, row body) of one record of `table`."""
    base = {"Timestamp": "2026-11-23T10:00:00.1234567Z", "DeviceId": "d" * 40, "DeviceName": "host.contoso.com"}
    record = {"category": f"AdvancedHunting-{table}", "tenantId": "t", "properties": base | properties}
    decoder = MessageDecoder(load_schemas(), routes=config.routes())
    (row,) = decoder.decode(json.dumps({"records": [record]}).encode()).rows
    return row.destination.retention_tag, row.destination.table_name, msgspec.json.decode(row.body)


def test_the_example_classes_are_the_documented_ones() -> None:
    retention = example_config().retention
    assert retention.default_class == "hot"
    hot, archive = retention.classes["hot"], retention.classes["archive"]
    assert (hot.plan, hot.retention_days, hot.total_retention_days) == ("Analytics", 90, 365)
    assert (archive.plan, archive.total_retention_days) == ("Auxiliary", 1095)


@pytest.mark.parametrize(
    ("table", "properties", "expected_class", "expected_table"),
    [
        ("DeviceNetworkEvents", {"ActionType": "ConnectionFailed"}, "hot", "DeviceNetworkEvents_CL"),
        ("DeviceNetworkEvents", {"ActionType": "ConnectionSuccess"}, "archive", "DeviceNetworkEvents_archive_CL"),
        ("DeviceNetworkEvents", {}, "archive", "DeviceNetworkEvents_archive_CL"),
        ("DeviceFileEvents", {"ActionType": "FileCreated"}, "archive", "DeviceFileEvents_archive_CL"),
        ("DeviceProcessEvents", {"ActionType": "ProcessCreated"}, "hot", "DeviceProcessEvents_CL"),
        ("DeviceLogonEvents", {"ActionType": "LogonSuccess"}, "hot", "DeviceLogonEvents_CL"),
        ("DeviceRegistryEvents", {}, "hot", "DeviceRegistryEvents_CL"),
    ],
)
def test_rows_land_where_the_readme_table_says(
    table: str, properties: dict[str, Any], expected_class: str, expected_table: str
) -> None:
    tag, table_name, body = landing(example_config(), table, **properties)
    assert (tag, table_name, body["RetentionTag"]) == (expected_class, expected_table, expected_class)
    if table_name != "DeviceRegistryEvents_CL":  # the example names the other six tables `<Table>_CL`
        assert f"`{expected_table}`" in section()


def test_archived_file_events_leave_out_the_dropped_columns() -> None:
    config = example_config()
    dropped = config.retention.destinations["DeviceFileEvents"]["archive"].drop_columns
    assert dropped and all(re.fullmatch(r"InitiatingProcessVersionInfo\w+", c) for c in dropped)
    values = dict.fromkeys(dropped, "x")
    _, _, body = landing(config, "DeviceFileEvents", ActionType="FileCreated", FileName="a.txt", **values)
    assert not set(dropped) & set(body) and body["FileName"] == "a.txt"
    # The same columns still reach the Analytics table of another Defender table.
    _, _, network = landing(config, "DeviceNetworkEvents", ActionType="ConnectionFailed", **values)
    assert set(dropped) <= set(network)
