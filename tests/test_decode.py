"""Decode, route, validate and shape against the real captured samples and against hostile input."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_xdr_records import expected_value

from ingestor.commit import Position
from ingestor.models import Destination, SourceRef
from ingestor.pipeline.decode import DecodeResult, MessageDecoder
from ingestor.retention import TableRoute
from ingestor.tables import UNMAPPED_COLUMNS, load_schemas
from ingestor_tools import SAMPLES_DIR

SCHEMAS = load_schemas()
TENANT = "4b8c18bd-2f9f-4227-af55-9f1061cf9c32"


def sample_records() -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for path in sorted(SAMPLES_DIR.glob("*.json")):
        records.extend(json.loads(path.read_text()))
    return records


SAMPLES = sample_records()
BY_TABLE = {r["category"].removeprefix("AdvancedHunting-"): r for r in SAMPLES}


def envelope(*records: Any) -> bytes:
    return json.dumps({"records": list(records)}).encode()


def with_props(table: str, **changes: Any) -> dict[str, Any]:
    record = json.loads(json.dumps(BY_TABLE[table]))
    for key, value in changes.items():
        if value is ...:
            record["properties"].pop(key, None)
        else:
            record["properties"][key] = value
    return record


def rows_of(result: DecodeResult) -> list[dict[str, Any]]:
    return [msgspec.json.decode(r.body) for r in result.rows]


def parse_or_keep(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text  # Defender sometimes truncates JSON text; it stays a string


@pytest.fixture
def decoder() -> MessageDecoder:
    routes = {t: TableRoute([], Destination(t, "", f"Custom-{t}_CL", f"{t}_CL", f"class-{t}")) for t in SCHEMAS}
    return MessageDecoder(SCHEMAS, routes=routes)


def test_every_sample_validates_and_lands_with_expected_columns(decoder: MessageDecoder) -> None:
    """Every captured sample lands with its values, Defender's own spellings converted (docs/architecture.md,
    "Type drift"; `test_xdr_records.expected_value` states the rules independently of the decoder)."""
    assert len(SAMPLES) == len(BY_TABLE) >= 21 and set(BY_TABLE) <= set(SCHEMAS)
    result = decoder.decode(envelope(*SAMPLES))
    assert result.read == len(SAMPLES) and not result.rejected and not result.skipped
    for row, decoded, record in zip(result.rows, rows_of(result), SAMPLES, strict=True):
        table = record["category"].removeprefix("AdvancedHunting-")
        assert row.table == table
        kinds = {c.name: c.type for c in SCHEMAS[table].columns}
        expected = {k: expected_value(kinds[k], v) for k, v in record["properties"].items()}
        non_null = {k for k, v in expected.items() if v is not None}
        assert set(decoded) == non_null | {"TimeGenerated", "SourceTenantId", "RetentionTag"}
        assert set(decoded) <= set(kinds)
        assert decoded["TimeGenerated"] == record["properties"]["Timestamp"] == decoded["Timestamp"]
        assert decoded["SourceTenantId"] == record["tenantId"]
        assert decoded["RetentionTag"] == f"class-{table}"
        for column in non_null:
            assert decoded[column] == expected[column], column


def test_long_beyond_2_pow_53_is_exact(decoder: MessageDecoder) -> None:
    result = decoder.decode(envelope(BY_TABLE["DeviceInfo"]))
    body = result.rows[0].body
    assert b'"ReportId":639199803770463703' in body
    assert msgspec.json.decode(body)["ReportId"] == 639199803770463703 > 2**53


@pytest.mark.parametrize(
    "value",
    [
        "2022-02-08T22:32:55Z",
        "2022-05-25T15:28:57.6Z",
        "2022-05-25T15:28:57.628Z",
        "2026-07-18T14:55:41.322571Z",
        "2026-07-18T15:02:23.0616003Z",
        "2026-07-18T15:02:23.0616003+02:00",
    ],
)
def test_datetimes_with_0_to_7_fractional_digits_pass_through_unchanged(decoder: MessageDecoder, value: str) -> None:
    result = decoder.decode(envelope(with_props("DeviceProcessEvents", Timestamp=value, ProcessCreationTime=value)))
    (row,) = rows_of(result)
    assert row["Timestamp"] == row["TimeGenerated"] == row["ProcessCreationTime"] == value


@pytest.mark.parametrize(
    "value",
    [
        "2022-02-08T22:32:55.12345678Z",
        "2022-02-08 22:32:55Z",
        "2022-13-08T22:32:55Z",
        "yesterday",
        "2022-02-08",
        "2022-02-08T22:32:55Z\n",
        "\u0662\u0660\u0662\u0662-02-08T22:32:55Z",
    ],
)
def test_bad_datetimes_are_dead_lettered(decoder: MessageDecoder, value: str) -> None:
    result = decoder.decode(envelope(with_props("DeviceProcessEvents", ProcessCreationTime=value)))
    assert not result.rows
    (rejected,) = result.rejected
    assert (rejected.reason, rejected.table) == ("invalid_value", "DeviceProcessEvents")
    assert "ProcessCreationTime" in rejected.detail


def test_dynamic_from_json_text_from_object_and_plain_text(decoder: MessageDecoder) -> None:
    records = [
        with_props("DeviceInfo", LoggedOnUsers='[{"UserName":"rob"}]', AdditionalFields={"Nested": {"a": [1, 2]}}),
        with_props("DeviceInfo", LoggedOnUsers="not json at all", AdditionalFields="{broken"),
        with_props("DeviceInfo", LoggedOnUsers="", AdditionalFields="[]"),
    ]
    first, second, third = rows_of(decoder.decode(envelope(*records)))
    assert first["LoggedOnUsers"] == [{"UserName": "rob"}]
    assert first["AdditionalFields"] == {"Nested": {"a": [1, 2]}}
    assert second["LoggedOnUsers"] == "not json at all" and second["AdditionalFields"] == "{broken"
    # "" is Defender's spelling of null (tests/test_type_drift.py): the column is left out, as nulls are
    assert "LoggedOnUsers" not in third and third["AdditionalFields"] == []


@pytest.mark.parametrize("column", ["Timestamp", "DeviceId", "DeviceName"])
@pytest.mark.parametrize("how", ["missing", "null"])
def test_required_columns_are_enforced(decoder: MessageDecoder, column: str, how: str) -> None:
    record = with_props("DeviceNetworkEvents", **{column: ... if how == "missing" else None})
    result = decoder.decode(envelope(record, BY_TABLE["DeviceLogonEvents"]))
    assert [r.table for r in result.rows] == ["DeviceLogonEvents"]
    (rejected,) = result.rejected
    assert rejected.reason == "missing_required_column" and column in rejected.detail
    assert rejected.table == "DeviceNetworkEvents"
    assert json.loads(rejected.raw) == record


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        # "35595", 1 for a boolean and 42 for a string are Defender's spellings, converted (tests/test_type_drift.py)
        ("ReportId", "0x8B0B", "invalid_type"),
        ("ReportId", 1.5, "invalid_type"),
        ("ReportId", 2**63, "invalid_value"),
        ("IsInitiatingProcessRemoteSession", 2, "invalid_type"),
        ("FileName", [42], "invalid_type"),
        ("ProcessId", True, "invalid_type"),
    ],
)
def test_wrong_types_are_dead_lettered_with_the_column(
    decoder: MessageDecoder, column: str, value: Any, reason: str
) -> None:
    result = decoder.decode(envelope(with_props("DeviceProcessEvents", **{column: value})))
    (rejected,) = result.rejected
    assert rejected.reason == reason and column in rejected.detail


def test_int_column_range_is_32_bit(decoder: MessageDecoder) -> None:
    result = decoder.decode(envelope(with_props("DeviceNetworkEvents", RemotePort=2**31)))
    assert result.rejected[0].reason == "invalid_value"


def test_unknown_category_is_skipped_and_counted(decoder: MessageDecoder) -> None:
    # A table Defender has that the Streaming API does not export, so no schema file of ours.
    other = {"category": "AdvancedHunting-DeviceTvmSoftwareInventory", "tenantId": TENANT, "properties": {"X": 1}}
    assert "DeviceTvmSoftwareInventory" not in SCHEMAS
    result = decoder.decode(envelope(other, BY_TABLE["DeviceEvents"], other))
    assert [r.table for r in result.rows] == ["DeviceEvents"]
    assert result.skipped == {"DeviceTvmSoftwareInventory": 2} and not result.rejected and result.read == 3


def test_one_message_may_mix_tables_in_any_order(decoder: MessageDecoder) -> None:
    records = SAMPLES[::-1] + SAMPLES
    result = decoder.decode(envelope(*records))
    assert [r.table for r in result.rows] == [r["category"].removeprefix("AdvancedHunting-") for r in records]


def test_unknown_columns_are_counted_and_kept_in_unmapped_columns_by_default(decoder: MessageDecoder) -> None:
    record = with_props("DeviceFileEvents", BrandNewColumn="x", AnotherOne=None)
    for _ in range(2):  # first through the slow path (learning), then the fast path
        result = decoder.decode(envelope(record, record))
        assert len(result.rows) == 2 and not result.rejected
        assert result.unknown_columns == {("DeviceFileEvents", "BrandNewColumn"): 2}
        for row in rows_of(result):
            assert "BrandNewColumn" not in row and "AnotherOne" not in row
            assert row["UnmappedColumns"] == {"BrandNewColumn": "x"}  # nulls are not kept


def test_unknown_columns_can_be_dropped() -> None:
    decoder = MessageDecoder(SCHEMAS, unknown_columns="drop")
    record = with_props("DeviceFileEvents", BrandNewColumn="x", AnotherOne=None)
    for _ in range(2):  # first through the slow path (learning), then the fast path
        result = decoder.decode(envelope(record, record))
        assert len(result.rows) == 2 and not result.rejected
        assert result.unknown_columns == {("DeviceFileEvents", "BrandNewColumn"): 2}
        assert all(b"BrandNewColumn" not in r.body and b"AnotherOne" not in r.body for r in result.rows)
        assert all(b"UnmappedColumns" not in r.body for r in result.rows) and not result.unmapped_bytes


def test_unknown_columns_can_be_rejected() -> None:
    decoder = MessageDecoder(SCHEMAS, unknown_columns="reject")
    record = with_props("DeviceFileEvents", BrandNewColumn="x")
    for _ in range(2):
        result = decoder.decode(envelope(record, BY_TABLE["DeviceInfo"]))
        assert [r.table for r in result.rows] == ["DeviceInfo"]
        (rejected,) = result.rejected
        assert rejected.reason == "unknown_column" and "BrandNewColumn" in rejected.detail
        assert result.unknown_columns == {("DeviceFileEvents", "BrandNewColumn"): 1}


def test_one_record_per_line_with_crlf_and_blank_lines(decoder: MessageDecoder) -> None:
    body = b"\r\n".join(json.dumps(r).encode() for r in SAMPLES[:4]) + b"\r\n\r\n"
    result = decoder.decode(body)
    assert result.read == 4 and len(result.rows) == 4


def test_bad_records_keep_raw_bytes_reason_and_position(decoder: MessageDecoder) -> None:
    good = json.dumps(BY_TABLE["DeviceRegistryEvents"]).encode()
    body = b"\n".join([good, b'{"category": "AdvancedHunting-DeviceInfo", "properties": {', b"17", good[:-1]])
    position = Position("defender", 3, 1234)
    result = decoder.decode(body, SourceRef(position, 0))
    assert result.read == 4 and len(result.rows) == 1
    reasons = [(r.reason, r.raw, r.source) for r in result.rejected]
    assert reasons == [
        ("malformed_json", b'{"category": "AdvancedHunting-DeviceInfo", "properties": {', SourceRef(position, 1)),
        ("not_an_object", b"17", SourceRef(position, 2)),
        ("malformed_json", good[:-1], SourceRef(position, 3)),
    ]


def test_a_message_that_is_not_json_is_one_dead_letter(decoder: MessageDecoder) -> None:
    result = decoder.decode(b"\x00\xffnot json")
    assert result.read == 1 and result.rejected[0].reason == "malformed_json"


def test_records_not_a_list_is_an_invalid_envelope(decoder: MessageDecoder) -> None:
    result = decoder.decode(b'{"records": {"category": "x"}}', SourceRef(Position("t", 0, 9), 0))
    (rejected,) = result.rejected
    assert rejected.reason == "invalid_envelope" and rejected.source == SourceRef(Position("t", 0, 9), 0)


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"properties": {}}, "invalid_envelope"),
        ({"category": 5, "properties": {}}, "invalid_envelope"),
        ({"category": "AdvancedHunting-DeviceInfo", "properties": "x"}, "invalid_envelope"),
        ({"category": "AdvancedHunting-DeviceInfo"}, "invalid_envelope"),
        ([1, 2], "not_an_object"),
        ("text", "not_an_object"),
    ],
)
def test_broken_envelopes(decoder: MessageDecoder, record: Any, reason: str) -> None:
    result = decoder.decode(envelope(record, BY_TABLE["DeviceInfo"]))
    assert len(result.rows) == 1 and [r.reason for r in result.rejected] == [reason]


def test_oversized_record_is_dead_lettered_before_decoding() -> None:
    decoder = MessageDecoder(SCHEMAS, max_record_bytes=4096)
    big = with_props("DeviceProcessEvents", ProcessCommandLine="x" * 5000)
    result = decoder.decode(envelope(big, BY_TABLE["DeviceInfo"]))
    assert [r.table for r in result.rows] == ["DeviceInfo"]
    (rejected,) = result.rejected
    assert (rejected.reason, rejected.table) == ("oversized_record", "DeviceProcessEvents")


def test_field_values_over_the_limit_are_truncated_and_counted() -> None:
    decoder = MessageDecoder(SCHEMAS, max_field_bytes=2048)
    record = with_props("DeviceProcessEvents", ProcessCommandLine="é" * 3000)
    result = decoder.decode(envelope(record))
    (row,) = rows_of(result)
    assert len(row["ProcessCommandLine"].encode()) <= 2048 and row["ProcessCommandLine"].startswith("éé")
    assert result.truncated_fields == {"DeviceProcessEvents": 1}


# -- property-based: hostile input never crashes the decoder and every record is accounted for ----------------

VALID_MESSAGE = envelope(*SAMPLES)


def accounted(result: DecodeResult) -> int:
    return len(result.rows) + len(result.rejected) + sum(result.skipped.values())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cut=st.integers(min_value=0, max_value=len(VALID_MESSAGE)))
def test_truncated_messages_are_fully_accounted(cut: int) -> None:
    result = MessageDecoder(SCHEMAS).decode(VALID_MESSAGE[:cut])
    assert accounted(result) == result.read


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_byte_mutations_are_fully_accounted(data: st.DataObject) -> None:
    body = bytearray(VALID_MESSAGE)
    for _ in range(data.draw(st.integers(1, 8))):
        index = data.draw(st.integers(0, len(body) - 1))
        body[index] = data.draw(st.integers(0, 255))
    result = MessageDecoder(SCHEMAS).decode(bytes(body))
    assert accounted(result) == result.read >= 1


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_value_mutations_are_fully_accounted_and_rows_match_their_schema(data: st.DataObject) -> None:
    records = []
    for _ in range(data.draw(st.integers(1, 6))):
        record = json.loads(json.dumps(data.draw(st.sampled_from(SAMPLES))))
        properties = record["properties"]
        for _ in range(data.draw(st.integers(0, 3))):
            column = data.draw(st.sampled_from([*sorted(properties), "Extra"]))
            properties[column] = data.draw(JSON_VALUES)
        if data.draw(st.booleans()):
            record["category"] = data.draw(st.sampled_from(["AdvancedHunting-DeviceTvmSoftwareInventory", 7, None]))
        records.append(record if data.draw(st.integers(0, 9)) else data.draw(JSON_VALUES))
    result = MessageDecoder(SCHEMAS).decode(envelope(*records))
    assert result.read == len(records) == accounted(result)
    for row in result.rows:
        columns = set(msgspec.json.decode(row.body))
        # An unknown column ("Extra") is kept in UnmappedColumns, the default (tests/test_unmapped_columns.py).
        assert columns <= {*SCHEMAS[row.table].column_names, UNMAPPED_COLUMNS}
        assert {*SCHEMAS[row.table].required, "TimeGenerated"} <= columns


def test_dynamic_text_over_the_limit_is_truncated_on_the_fast_path_too() -> None:
    decoder = MessageDecoder(SCHEMAS, max_field_bytes=2048)
    script = json.dumps({"Script": "Write-Host " + "x" * 5000})
    result = decoder.decode(envelope(with_props("DeviceEvents", AdditionalFields=script)))
    (row,) = rows_of(result)
    assert row["AdditionalFields"] == script.encode()[:2048].decode()  # cut JSON text stays text
    assert result.truncated_fields == {"DeviceEvents": 1}


def test_fast_and_per_record_paths_shape_rows_identically() -> None:
    decoder = MessageDecoder(SCHEMAS)
    whole = decoder.decode(envelope(*SAMPLES))  # one typed decode of the whole message
    one_by_one = decoder.decode(envelope(*SAMPLES, 5))  # a bad record sends the message record by record
    assert [r.body for r in whole.rows] == [r.body for r in one_by_one.rows]
    assert [r.reason for r in one_by_one.rejected] == ["not_an_object"]


@pytest.mark.parametrize("raw", [b"{}x", b'{"properties": {}} 1', b'{"category": "AdvancedHunting-DeviceInfo"}]'])
def test_schema_errors_before_broken_json_are_malformed_json(decoder: MessageDecoder, raw: bytes) -> None:
    result = decoder.decode(raw)
    assert result.read == 1 and [r.reason for r in result.rejected] == ["malformed_json"]
