"""Retention classes, rules and destinations: configuration checks, derived names, per-row routing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from ingestor.commit import Position, Ticket
from ingestor.config import ConfigError, parse_config
from ingestor.pipeline.decode import MessageDecoder
from ingestor.tables import load_schemas

RULE = "dcr-" + "0" * 32
ARCHIVE_RULE = "dcr-" + "a" * 32


def config_doc(retention: dict[str, Any]) -> dict[str, Any]:
    return {
        "source": {"bootstrap_servers": ["k:9092"], "topics": ["defender"], "group_id": "g"},
        "sink": {"endpoint": "https://x.example", "rule_id": RULE},
        "dead_letter": {"path": "/tmp/dl"},
        "retention": retention,
    }


WORKED_EXAMPLE = {
    "default_class": "hot",
    "classes": {
        "hot": {"plan": "Analytics", "retention_days": 90, "total_retention_days": 365},
        "archive": {"plan": "Auxiliary", "total_retention_days": 1095, "rule_id": ARCHIVE_RULE},
    },
    "rules": [
        {"tables": ["DeviceNetworkEvents"], "when": {"column": "ActionType", "equals": "ConnectionFailed"},
         "class": "hot"},
        {"tables": ["DeviceNetworkEvents", "DeviceFileEvents"], "class": "archive"},
        {"tables": ["DeviceRegistryEvents"], "when": {"column": "RegistryKey", "prefix": "HKEY_CURRENT_USER"},
         "class": "archive"},
        {"tables": ["DeviceEvents"], "when": {"column": "ActionType", "in": ["DnsQueryResponse", "NamedPipeEvent"]},
         "class": "archive"},
        {"tables": ["DeviceImageLoadEvents"], "when": {"column": "FileName", "regex": r"(?i)\.dll$"},
         "class": "archive"},
    ],
    "destinations": {
        "DeviceFileEvents": {"archive": {"drop_columns": ["InitiatingProcessVersionInfoFileDescription"]}},
    },
}  # fmt: skip


def problems(retention: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(config_doc(retention))
    return str(info.value)


@pytest.mark.parametrize(
    ("retention", "expected"),
    [
        ({"classes": {"a": {"plan": "Basic", "retention_days": 90}}, "default_class": "a"}, "fixed at 30"),
        ({"classes": {"a": {"total_retention_days": 800}}, "default_class": "a"}, "4-730 or one of"),
        ({"classes": {"a": {"retention_days": 90, "total_retention_days": 60}}, "default_class": "a"}, "shorter"),
        ({"classes": {"a": {"retention_days": 731}}, "default_class": "a"}, "730"),
        ({"classes": {"a": {}}, "default_class": "b"}, "default_class 'b'"),
        ({"classes": {"no-dash": {}}, "default_class": "no-dash"}, "class names"),
        ({"rules": [{"class": "cold"}]}, "class 'cold'"),
        ({"rules": [{"tables": ["DeviceNope"], "class": "default"}]}, "unknown tables ['DeviceNope']"),
        ({"rules": [{"tables": ["DeviceInfo"], "when": {"column": "Nope", "equals": 1}, "class": "default"}]},
         "DeviceInfo has no column 'Nope'"),
        ({"rules": [{"when": {"column": "ActionType", "equals": "x", "prefix": "y"}, "class": "default"}]},
         "exactly one of"),
        ({"rules": [{"tables": ["DeviceInfo"], "when": {"column": "OSPlatform", "regex": "("}, "class": "default"}]},
         "does not compile"),
        ({"destinations": {"DeviceInfo": {"default": {"drop_columns": ["DeviceName"]}}}}, "cannot be dropped"),
        ({"destinations": {"DeviceInfo": {"default": {"keep_columns": ["DeviceName"]}}}}, "cannot be dropped"),
        ({"destinations": {"DeviceInfo": {"default": {"drop_columns": ["Nope"]}}}}, "has no columns ['Nope']"),
        ({"destinations": {"DeviceInfo": {"default": {"drop_columns": [], "keep_columns": []}}}}, "not both"),
        ({"classes": {"default": {"rule_id": "dcr-123"}}}, "rule_id"),
    ],
)  # fmt: skip
def test_bad_retention_configuration_names_the_key_and_the_rule(retention: dict[str, Any], expected: str) -> None:
    assert expected in problems(retention)
    assert "retention" in problems(retention)


def test_plan_limits_accept_what_azure_documents() -> None:
    for total in (4, 730, 1095, 4383):
        parse_config(config_doc({"classes": {"a": {"total_retention_days": total}}, "default_class": "a"}))
    parse_config(config_doc({"classes": {"a": {"plan": "Auxiliary", "retention_days": 30}}, "default_class": "a"}))


def test_destinations_are_derived_per_table_and_class() -> None:
    routes = parse_config(config_doc(WORKED_EXAMPLE)).routes()
    network = {d.retention_tag: d for d in routes["DeviceNetworkEvents"].destinations}
    assert set(network) == {"hot", "archive"}
    assert (network["hot"].table_name, network["hot"].stream, network["hot"].rule_id) == (
        "DeviceNetworkEvents_CL",
        "Custom-DeviceNetworkEvents_CL",
        RULE,
    )
    archive = network["archive"]
    assert (archive.table_name, archive.stream, archive.rule_id, archive.plan) == (
        "DeviceNetworkEvents_archive_CL",
        "Custom-DeviceNetworkEvents_archive_CL",
        ARCHIVE_RULE,
        "Auxiliary",
    )
    # A table no rule names has only its default-class destination, chosen without looking at rows.
    assert routes["DeviceLogonEvents"].fixed is routes["DeviceLogonEvents"].fallback
    assert routes["DeviceLogonEvents"].fallback.retention_tag == "hot"
    # Everything of a table after an unconditional rule goes there.
    assert routes["DeviceFileEvents"].fixed is not None and routes["DeviceFileEvents"].fixed.retention_tag == "archive"


def record(table: str, **properties: Any) -> dict[str, Any]:
    base = {"Timestamp": "2026-11-23T10:00:00.1234567Z", "DeviceId": "d" * 40, "DeviceName": "host.contoso.com"}
    return {"category": f"AdvancedHunting-{table}", "tenantId": "t", "properties": base | properties}


@pytest.mark.parametrize(
    ("table", "properties", "expected"),
    [
        ("DeviceNetworkEvents", {"ActionType": "ConnectionFailed"}, "hot"),  # first match wins
        ("DeviceNetworkEvents", {"ActionType": "ConnectionSuccess"}, "archive"),
        ("DeviceFileEvents", {"ActionType": "FileCreated"}, "archive"),
        ("DeviceRegistryEvents", {"RegistryKey": "HKEY_CURRENT_USER\\Software\\x"}, "archive"),
        ("DeviceRegistryEvents", {"RegistryKey": "HKEY_LOCAL_MACHINE\\SOFTWARE"}, "hot"),
        ("DeviceRegistryEvents", {}, "hot"),  # a missing column fails the predicate
        ("DeviceEvents", {"ActionType": "NamedPipeEvent"}, "archive"),
        ("DeviceEvents", {"ActionType": "UsbDriveMounted"}, "hot"),
        ("DeviceImageLoadEvents", {"FileName": "KERNEL32.DLL"}, "archive"),
        ("DeviceImageLoadEvents", {"FileName": "notepad.exe"}, "hot"),
        ("DeviceProcessEvents", {}, "hot"),
    ],
)
def test_each_row_is_routed_by_the_first_matching_rule(table: str, properties: dict[str, Any], expected: str) -> None:
    routes = parse_config(config_doc(WORKED_EXAMPLE)).routes()
    decoder = MessageDecoder(load_schemas(), routes=routes)
    (row,) = decoder.decode(json.dumps({"records": [record(table, **properties)]}).encode()).rows
    assert row.destination.retention_tag == expected and row.destination in routes[table].destinations
    assert msgspec.json.decode(row.body)["RetentionTag"] == expected


def test_dropped_columns_are_not_sent() -> None:
    routes = parse_config(config_doc(WORKED_EXAMPLE)).routes()
    decoder = MessageDecoder(load_schemas(), routes=routes)
    rec = record("DeviceFileEvents", ActionType="FileCreated", InitiatingProcessVersionInfoFileDescription="x")
    (row,) = decoder.decode(json.dumps({"records": [rec]}).encode()).rows
    body = msgspec.json.decode(row.body)
    assert "InitiatingProcessVersionInfoFileDescription" not in body and body["ActionType"] == "FileCreated"


def test_keep_columns_sends_only_those_and_the_required_ones() -> None:
    retention = {"destinations": {"DeviceInfo": {"default": {"keep_columns": [
        "Timestamp", "DeviceId", "DeviceName", "TimeGenerated", "RetentionTag", "OSPlatform"]}}}}  # fmt: skip
    routes = parse_config(config_doc(retention)).routes()
    decoder = MessageDecoder(load_schemas(), routes=routes)
    rec = record("DeviceInfo", OSPlatform="Windows11", OSBuild=22631, PublicIP="1.2.3.4")
    (row,) = decoder.decode(json.dumps({"records": [rec]}).encode()).rows
    assert set(msgspec.json.decode(row.body)) == {
        "Timestamp", "DeviceId", "DeviceName", "TimeGenerated", "RetentionTag", "OSPlatform"}  # fmt: skip


async def test_replayed_shaped_rows_go_back_to_the_destination_of_their_tag(tmp_path: Path) -> None:
    from ingestor.metrics import Metrics
    from ingestor.run.flow import Flow

    doc = config_doc(WORKED_EXAMPLE)
    doc["dead_letter"] = {"path": str(tmp_path)}
    flow = Flow(parse_config(doc), Metrics())
    ticket = Ticket(Position("replay", 0, 0), 0.0)
    rows = [b'{"RetentionTag":"archive","x":1}', b'{"RetentionTag":"hot","x":2}', b'{"RetentionTag":"gone","x":3}']
    flow.process_rows("DeviceNetworkEvents", rows, ticket)
    open_rows = {
        d.retention_tag: [row for batch in batcher.open_batches for row in batch.rows]
        for d, batcher in flow.batchers.items()
        if batcher.open_bytes
    }
    # An unknown tag (a class since removed) goes where a row matching no predicate goes: here `archive`.
    assert open_rows == {"archive": [rows[0], rows[2]], "hot": [rows[1]]}
