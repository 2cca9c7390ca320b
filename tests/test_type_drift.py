"""Defender's own type drift: each spelling of a value its column's type allows is converted and counted, on the
whole-message path and on the per-record path, for every table; anything else is still dead-lettered with the
reason and detail it always had (ingestor/pipeline/spellings.py holds the rules, docs/architecture.md#type-drift
states them).

Columns of every type are promoted columns of DeviceInfo (`X<type>`: no Device table has a real or a guid column);
the table-wide tests take every typed column of every schema there is, from the schemas alone.
"""

from __future__ import annotations

import copy
import json
import logging
import re
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import pytest
from docblocks import tables
from landed import expected_row
from prometheus_client import generate_latest
from realparts import (
    EmulatorProcess,
    IngestorProcess,
    ingestor_config,
    parse_metrics,
    produce,
    unique_names,
    wait_for,
)
from test_config import base
from test_fuzz import MemoryStore

from ingestor.commit import OffsetTracker, Position
from ingestor.config import parse_config
from ingestor.metrics import Metrics
from ingestor.models import Destination, Message
from ingestor.pipeline.codec import VALUE_RULES
from ingestor.pipeline.decode import DecodeResult, MessageDecoder
from ingestor.pipeline.spellings import RULES, SPELLINGS, STRING_OF_DYNAMIC
from ingestor.retention import TableRoute
from ingestor.run.flow import Flow
from ingestor.sinks.dead_letter_file import read_dead_letters
from ingestor.tables import COLUMN_TYPES, TableSchema, load_schemas, with_extra_columns
from ingestor_tools.generate import TrafficGenerator

SCHEMAS = load_schemas()
DOCS = Path(__file__).resolve().parent.parent / "docs"
TYPED = with_extra_columns(SCHEMAS, {"DeviceInfo": {f"X{t}": t for t in sorted(COLUMN_TYPES)}})
TIME = "2026-07-18T14:00:54.7649349Z"
GUID = "0f0e0d0c-0b0a-0908-0706-050403020100"
# A valid value of each type, for the columns a minimal record must carry.
VALID = {"string": "x", "int": 7, "long": 7, "real": 1.5, "boolean": True, "datetime": TIME, "guid": GUID,
         "dynamic": {"a": 1}}  # fmt: skip
PATHS = ("whole", "per_record")

# (type, value as Defender writes it, value as the row holds it (None: left out), rule)
SPELLED: list[tuple[str, Any, Any, str]] = [
    ("int", "", None, "empty_as_null"),
    ("int", "58210", 58210, "text_as_integer"),
    ("int", "-7", -7, "text_as_integer"),
    ("int", "0", 0, "text_as_integer"),
    ("int", "007", 7, "text_as_integer"),
    ("int", "2147483647", 2**31 - 1, "text_as_integer"),
    ("int", "-2147483648", -(2**31), "text_as_integer"),
    ("long", "", None, "empty_as_null"),
    ("long", "639199803770463703", 639199803770463703, "text_as_integer"),
    ("long", "9223372036854775807", 2**63 - 1, "text_as_integer"),
    ("long", "-9223372036854775808", -(2**63), "text_as_integer"),
    ("long", "000000000000000000000042", 42, "text_as_integer"),
    ("long", "-" + "0" * 5_000 + "42", -42, "text_as_integer"),  # more digits than Python's int() takes
    ("real", "", None, "empty_as_null"),
    ("real", "1.5", 1.5, "text_as_real"),
    ("real", "-2.5e3", -2500.0, "text_as_real"),
    ("real", "5", 5.0, "text_as_real"),
    ("real", "0", 0.0, "text_as_real"),
    ("boolean", "", None, "empty_as_null"),
    ("boolean", "0", False, "text_as_boolean"),
    ("boolean", "1", True, "text_as_boolean"),
    ("boolean", "true", True, "text_as_boolean"),
    ("boolean", "false", False, "text_as_boolean"),
    ("boolean", "True", True, "text_as_boolean"),  # .NET's Boolean.ToString()
    ("boolean", "FALSE", False, "text_as_boolean"),
    ("boolean", 0, False, "integer_as_boolean"),
    ("boolean", 1, True, "integer_as_boolean"),
    ("datetime", "", None, "empty_as_null"),
    ("guid", "", None, "empty_as_null"),
    ("string", 58210, "58210", "number_as_text"),
    ("string", -1, "-1", "number_as_text"),
    ("string", 1.5, "1.5", "number_as_text"),
    ("string", 2**70, str(2**70), "number_as_text"),
    ("string", True, "true", "boolean_as_text"),
    ("string", False, "false", "boolean_as_text"),
    ("dynamic", "", None, "empty_as_null"),
]
KIND = {"str": "a string", "int": "an integer", "float": "a number with a fraction or an exponent",
        "bool": "a boolean", "list": "an array", "dict": "an object"}  # fmt: skip
# (type, value that is no spelling of a value of the type, reason); the detail is the one it always was.
NOT_SPELLED: list[tuple[str, Any, str]] = [
    ("int", "5.0", "invalid_type"),
    ("int", 5.0, "invalid_type"),
    ("int", " 1", "invalid_type"),
    ("int", "1 ", "invalid_type"),
    ("int", "+1", "invalid_type"),
    ("int", "1_000", "invalid_type"),
    ("int", "1e3", "invalid_type"),
    ("int", "\u0663", "invalid_type"),  # ARABIC-INDIC DIGIT THREE: a digit to Python's int(), not to us
    ("int", "0x10", "invalid_type"),
    ("int", "2147483648", "invalid_type"),
    ("int", "-", "invalid_type"),
    ("int", "--1", "invalid_type"),
    ("int", "-+1", "invalid_type"),
    ("int", "\u00b2", "invalid_type"),  # SUPERSCRIPT TWO: a digit to str.isdigit()
    ("int", True, "invalid_type"),
    ("long", 5.5, "invalid_type"),
    ("long", "9223372036854775808", "invalid_type"),
    ("long", "-9223372036854775809", "invalid_type"),
    ("long", "99999999999999999999999999", "invalid_type"),
    ("long", "12\n", "invalid_type"),
    ("long", [1], "invalid_type"),
    ("real", "NaN", "invalid_type"),
    ("real", "Infinity", "invalid_type"),
    ("real", "1e400", "invalid_type"),
    ("real", ".5", "invalid_type"),
    ("real", "5.", "invalid_type"),
    ("real", "+1", "invalid_type"),
    ("real", "1,5", "invalid_type"),
    ("real", True, "invalid_type"),
    ("boolean", "yes", "invalid_type"),
    ("boolean", " 1", "invalid_type"),
    ("boolean", "2", "invalid_type"),
    ("boolean", "t", "invalid_type"),
    ("boolean", "truе", "invalid_type"),  # noqa: RUF001 - a Cyrillic e: only ASCII words are booleans
    ("boolean", 2, "invalid_type"),
    ("boolean", -1, "invalid_type"),
    ("boolean", 1.0, "invalid_type"),
    ("datetime", "abc", "invalid_value"),
    ("datetime", " ", "invalid_value"),
    ("datetime", 0, "invalid_type"),
    ("guid", "abc", "invalid_value"),
    ("guid", 0, "invalid_type"),
    ("string", {"a": 1}, "invalid_type"),
    ("string", [58210], "invalid_type"),
]


def detail(column_type: str, value: Any, reason: str) -> str:
    """What TableCodec.problem has always said of `value` in the column `X<type>`."""
    column = f"X{column_type}"
    if reason == "invalid_type":
        return f"column {column} is {column_type} but holds {KIND[value.__class__.__name__]}"
    return f"column {column} ({column_type}) must be {VALUE_RULES[column_type]}, not {json.dumps(value)}"


def minimal(schema: TableSchema, **properties: Any) -> dict[str, Any]:
    """A valid record of `schema`'s table: its required columns, then `properties`."""
    types = {c.name: c.type for c in schema.columns}
    required = {name: VALID[types[name]] for name in schema.required}
    return {"category": schema.category, "tenantId": "t", "properties": {**required, **properties}}


def info(**properties: Any) -> dict[str, Any]:
    return minimal(TYPED["DeviceInfo"], **properties)


def envelope(*records: Any) -> bytes:
    return json.dumps({"records": list(records)}).encode()


def rows_of(result: DecodeResult) -> list[dict[str, Any]]:
    return [msgspec.json.decode(r.body) for r in result.rows]


def decode(decoder: MessageDecoder, path: str, *records: Any) -> DecodeResult:
    """`records` in one message, through the whole-message path or (after a record that is no object, which
    dead-letters as not_an_object) the per-record one."""
    result = decoder.decode(envelope(*records) if path == "whole" else envelope(*records, 5))
    if path == "per_record":
        assert result.rejected[-1].reason == "not_an_object"
        result.rejected.pop()
    return result


@pytest.fixture
def decoder() -> MessageDecoder:
    return MessageDecoder(TYPED)


def test_every_column_type_has_its_spellings() -> None:
    assert set(SPELLINGS) == set(COLUMN_TYPES) | {STRING_OF_DYNAMIC}
    assert {rule for _, _, _, rule in SPELLED} | {"dynamic_as_text"} == set(RULES)  # see the documented-dynamic test
    assert {t for t, _, _, _ in SPELLED} == set(COLUMN_TYPES)


def test_the_docs_state_the_rules_and_the_metric() -> None:
    """docs/architecture.md, "Type drift": one row per (types, rule), as the tests above pin them; the metric's row
    in docs/operations.md, "Metrics", with its labels."""
    (table,) = [t for t in tables(DOCS / "architecture.md") if t.headings[-1:] == ("Type drift",)]
    assert table.header == ("Column type", "Written as", "Becomes", "`rule`"), table.where()
    documented = {
        (t.strip(" `"), rule.strip("`")) for types, _, _, rule in table.rows for t in types.split(" (")[0].split(",")
    }
    assert documented == {(t, rule) for t, _, _, rule in SPELLED} | {("string", "dynamic_as_text")}, table.where()
    (listed,) = [t for t in tables(DOCS / "operations.md") if t.headings[-1:] == ("Metrics",)]
    rows = {name.strip("`"): labels for name, labels, _ in listed.rows}
    assert rows["ingestor_values_converted_total"] == "`table`, `column`, `rule`", listed.where()
    metrics = Metrics()
    metrics.values_converted.labels("DeviceInfo", "ReportId", "text_as_integer").inc()
    labels = (("column", "ReportId"), ("rule", "text_as_integer"), ("table", "DeviceInfo"))
    assert parse_metrics(generate_latest(metrics.registry).decode())[("ingestor_values_converted_total", labels)] == 1


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("column_type", "spelled", "value", "rule"), SPELLED)
def test_each_spelling_lands_converted_and_counted(
    decoder: MessageDecoder, path: str, column_type: str, spelled: Any, value: Any, rule: str
) -> None:
    column = f"X{column_type}"
    result = decode(decoder, path, info(**{column: spelled}))
    assert not result.rejected, [r.detail for r in result.rejected]
    (row,) = rows_of(result)
    if value is None:
        assert column not in row  # nulls are left out of the row
    else:
        assert row[column] == value and row[column].__class__ is value.__class__
    assert result.converted == Counter({("DeviceInfo", column, rule): 1})


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("column_type", "value", "reason"), NOT_SPELLED)
def test_values_that_are_no_spelling_are_dead_lettered_as_before(
    decoder: MessageDecoder, path: str, column_type: str, value: Any, reason: str
) -> None:
    bad = info(**{f"X{column_type}": value})
    result = decode(decoder, path, bad)
    assert not result.rows and not result.converted
    (rejected,) = result.rejected
    assert (rejected.reason, rejected.table) == (reason, "DeviceInfo")
    assert rejected.detail == detail(column_type, value, reason)
    assert json.loads(rejected.raw) == bad  # the raw record, as it came


# Every table's required columns of a type whose spellings make null of `""` (for a string, `""` is its own value).
EMPTIABLE = [
    (table, c.name) for table, schema in SCHEMAS.items() for c in schema.columns
    if c.name in schema.required and c.type != "string"
]  # fmt: skip


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("table", "column"), EMPTIABLE)
def test_a_required_column_written_empty_is_missing(path: str, table: str, column: str) -> None:
    """`""` is null for every type that has that spelling; a required column null is missing, as always."""
    result = decode(MessageDecoder(SCHEMAS), path, minimal(SCHEMAS[table], **{column: ""}))
    (rejected,) = result.rejected
    assert (rejected.reason, rejected.table) == ("missing_required_column", table) and not result.converted
    assert rejected.detail == f'required column {column} is "" (empty, so null)'


def test_a_drifting_record_lands_beside_an_invalid_one(decoder: MessageDecoder) -> None:
    """The message goes record by record: the drifting record lands converted, the invalid one is dead-lettered,
    and only the conversions of the row made are counted."""
    drifting = info(Xlong="42", Xboolean="1", Xstring=5, Xdynamic="")
    invalid = info(Xlong="42", Xint="5.0")  # its Xlong spelling is not counted: no row is made of it
    result = decoder.decode(envelope(drifting, invalid, drifting))
    assert [r.reason for r in result.rejected] == ["invalid_type"]
    assert "Xint" in result.rejected[0].detail and json.loads(result.rejected[0].raw) == invalid
    rows = rows_of(result)
    assert len(rows) == 2 and all(r["Xlong"] == 42 and r["Xboolean"] is True and r["Xstring"] == "5" for r in rows)
    assert all("Xdynamic" not in r for r in rows)
    assert result.converted == Counter(
        {(("DeviceInfo", c, rule)): 2 for c, rule in
         [("Xlong", "text_as_integer"), ("Xboolean", "text_as_boolean"), ("Xstring", "number_as_text"),
          ("Xdynamic", "empty_as_null")]}
    )  # fmt: skip
    assert result.read == 3 == len(result.rows) + len(result.rejected)


def test_a_drifting_message_takes_the_whole_message_path(
    decoder: MessageDecoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No record-by-record decode: one tolerant decode of the message and one pass over its typed columns."""

    def no_split(*args: Any) -> Any:
        raise AssertionError("the message went record by record")

    monkeypatch.setattr(decoder, "_split", no_split)
    records = [info(**{f"X{t}": spelled}) for t, spelled, _, _ in SPELLED]
    result = decoder.decode(envelope(*records))
    assert len(result.rows) == len(SPELLED) and not result.rejected
    assert result.converted.total() == len(SPELLED)


def test_both_paths_make_the_same_rows_and_counts() -> None:
    records = [info(**{f"X{t}": spelled, "Xint": "3"}) for t, spelled, _, _ in SPELLED if t != "int"]
    whole = MessageDecoder(TYPED).decode(envelope(*records))
    one_by_one = MessageDecoder(TYPED).decode(envelope(*records, 5))
    assert [r.body for r in whole.rows] == [r.body for r in one_by_one.rows]
    assert whole.converted == one_by_one.converted and whole.converted.total() == 2 * len(records)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("table", sorted(SCHEMAS))
def test_every_typed_column_of_every_table_converts(path: str, table: str) -> None:
    """From the schema alone: every column Defender sends, of each type that has spellings, in one record."""
    schema = SCHEMAS[table]
    spelled = {t: (s, v, rule) for t, s, v, rule in reversed(SPELLED) if v is not None}  # one non-null each
    spelled |= {t: ("", None, "empty_as_null") for t in ("datetime", "guid", "dynamic")}
    columns = [c for c in schema.input_columns if c.type in spelled and c.name not in schema.required]
    record = minimal(schema, **{c.name: spelled[c.type][0] for c in columns})
    result = decode(MessageDecoder(SCHEMAS), path, record)
    assert not result.rejected, [r.detail for r in result.rejected]
    (row,) = rows_of(result)
    for column in columns:
        assert row.get(column.name) == spelled[column.type][1], column.name
    assert result.converted == Counter({(table, c.name, spelled[c.type][2]): 1 for c in columns})


def test_unknown_and_learned_columns_are_never_converted() -> None:
    decoder = MessageDecoder(TYPED)
    record = info(NewColumn="", NewNumber="5", NewFlag="1")
    for _ in range(2):  # first while learning the columns (per record), then through the learned codec (fast)
        result = decoder.decode(envelope(record))
        (row,) = rows_of(result)
        assert row["UnmappedColumns"] == {"NewColumn": "", "NewNumber": "5", "NewFlag": "1"}
        assert not result.converted


def test_auxiliary_destinations_take_the_converted_values_and_dynamic_as_text() -> None:
    routes = {
        t: TableRoute([], Destination(t, "", f"Custom-{t}_CL", f"{t}_CL", "cold", plan="Auxiliary")) for t in TYPED
    }
    decoder = MessageDecoder(TYPED, routes=routes)
    for path in PATHS:
        result = decode(decoder, path, info(Xdynamic="", AdditionalFields={"a": [1]}, Xlong="12", Xreal="0.5"))
        (row,) = rows_of(result)
        assert "Xdynamic" not in row and row["AdditionalFields"] == '{"a":[1]}'  # dynamic goes as JSON text
        assert row["Xlong"] == 12 and row["Xreal"] == 0.5 and row["RetentionTag"] == "cold"
        assert result.converted == Counter(
            {("DeviceInfo", "Xdynamic", "empty_as_null"): 1, ("DeviceInfo", "Xlong", "text_as_integer"): 1,
             ("DeviceInfo", "Xreal", "text_as_real"): 1}
        )  # fmt: skip


def retention_routes() -> dict[str, TableRoute]:
    rules = [
        {"tables": ["DeviceProcessEvents"], "when": {"column": "ProcessId", "equals": 4}, "class": "archive"},
        {"tables": ["DeviceEvents"], "when": {"column": "AdditionalFields", "equals": ""}, "class": "archive"},
    ]
    retention = {"default_class": "hot", "rules": rules,
                 "classes": {"hot": {"plan": "Analytics"}, "archive": {"plan": "Analytics"}}}  # fmt: skip
    return parse_config(base() | {"retention": retention}).routes()


@pytest.mark.parametrize("path", PATHS)
def test_retention_rules_test_the_converted_value(path: str) -> None:
    decoder = MessageDecoder(SCHEMAS, routes=retention_routes())
    process = minimal(SCHEMAS["DeviceProcessEvents"], ProcessId="4")
    event = minimal(SCHEMAS["DeviceEvents"], AdditionalFields="")  # null when the rule looks: no match
    result = decode(decoder, path, process, event)
    assert [r.destination.retention_tag for r in result.rows] == ["archive", "hot"]
    assert result.converted == Counter(
        {("DeviceProcessEvents", "ProcessId", "text_as_integer"): 1, ("DeviceEvents", "AdditionalFields",
                                                                        "empty_as_null"): 1}
    )  # fmt: skip


@pytest.mark.parametrize("path", PATHS)
def test_conversions_count_where_the_destination_drops_the_column(path: str) -> None:
    """What Defender sent is counted whatever a destination keeps of it."""
    dropped = {"DeviceEvents": {"hot": {"drop_columns": ["AdditionalFields", "RemotePort"]}}}
    retention = {"default_class": "hot", "classes": {"hot": {"plan": "Analytics"}}, "destinations": dropped}
    decoder = MessageDecoder(SCHEMAS, routes=parse_config(base() | {"retention": retention}).routes())
    record = minimal(SCHEMAS["DeviceEvents"], AdditionalFields="", RemotePort="", LocalPort="")
    result = decode(decoder, path, record)
    (row,) = rows_of(result)
    assert not {"AdditionalFields", "RemotePort", "LocalPort"} & set(row)
    assert result.converted == Counter(
        {("DeviceEvents", column, "empty_as_null"): 1 for column in ("AdditionalFields", "RemotePort", "LocalPort")}
    )


def test_the_first_conversion_of_each_column_and_rule_is_logged_once(
    decoder: MessageDecoder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ingestor.pipeline.decode")
    for _ in range(3):
        decoder.decode(envelope(info(Xint="1", Xboolean="0"), info(Xint="", Xboolean=1)))
    seen = [(r.table, r.column, r.rule) for r in caplog.records if hasattr(r, "rule")]
    assert sorted(seen) == [
        ("DeviceInfo", "Xboolean", "integer_as_boolean"),
        ("DeviceInfo", "Xboolean", "text_as_boolean"),
        ("DeviceInfo", "Xint", "empty_as_null"),
        ("DeviceInfo", "Xint", "text_as_integer"),
    ]
    assert all(r.levelno == logging.INFO for r in caplog.records if hasattr(r, "rule"))


def test_the_flow_publishes_the_conversions_per_table_column_and_rule() -> None:
    metrics = Metrics()
    doc = base()
    doc["sink"] |= {"credential": {"type": "static_token", "token": "t"}, "linger_secs": 300}
    flow = Flow(parse_config(doc), metrics, dead_letter=MemoryStore())
    flow.delivery.submit = lambda batch: None  # type: ignore[method-assign]  # nothing is sent here
    network = minimal(SCHEMAS["DeviceNetworkEvents"], RemotePort="", LocalPort="58210", ReportId="1")
    messages = [Message(envelope(network, network), Position("defender", 0, i)) for i in range(3)]
    tracker = OffsetTracker()
    flow.process(messages, tracker.track)
    for column, rule in [("RemotePort", "empty_as_null"), ("LocalPort", "text_as_integer"),
                         ("ReportId", "text_as_integer")]:  # fmt: skip
        labels = {"table": "DeviceNetworkEvents", "column": column, "rule": rule}
        assert metrics.registry.get_sample_value("ingestor_values_converted_total", labels) == 6
    assert metrics.total("ingestor_dead_lettered_events_total") == 0


# -- on real parts: Kafka -> `ingestor run` -> the emulator ----------------------------------------------------

DECIMAL = re.compile(r"-?(?:0|[1-9][0-9]*)\Z")


def drift(record: dict[str, Any], counts: Counter[tuple[str, str, str]]) -> dict[str, Any]:
    """`record` as Defender's real exports write it: numbers and flags as text, numbers in string columns, `""`
    for null; each conversion the ingestor must make counted in `counts`."""
    table = record["category"].removeprefix("AdvancedHunting-")
    schema = SCHEMAS[table]
    types = {c.name: c.type for c in schema.columns}
    drifted = copy.deepcopy(record)
    properties = drifted["properties"]
    for index, (name, value) in enumerate(properties.items()):
        column_type = types.get(name)
        if column_type is None or name in schema.required:
            continue
        if value is None and column_type != "string":
            properties[name], rule = "", "empty_as_null"
        elif column_type in ("int", "long"):
            properties[name], rule = str(value), "text_as_integer"
        elif column_type == "boolean":
            properties[name] = ("1" if value else "0") if index % 2 else ("True" if value else "false")
            rule = "text_as_boolean"
        elif column_type == "string" and isinstance(value, str) and DECIMAL.match(value) and len(value) < 16:
            properties[name], rule = int(value), "number_as_text"
        else:
            continue
        counts[(table, name, rule)] += 1
    return drifted


@pytest.mark.emulator
@pytest.mark.process
def test_drifted_records_land_converted_through_the_running_ingestor(tmp_path: Path, kafka_bootstrap: str) -> None:
    """Generated records of every table, respelled as real exports write them, through Kafka and `ingestor run` to
    the emulator (which checks every value against its column's declared type): each lands as Defender meant it,
    nothing is dead-lettered, and /metrics counts each conversion."""
    generator = TrafficGenerator(seed=21, devices=5)
    records = [r for m in generator.messages(records=400) for r in json.loads(m)["records"]]
    counts: Counter[tuple[str, str, str]] = Counter()
    drifted = [drift(r, counts) for r in records]
    assert {rule for _, _, rule in counts} == {"empty_as_null", "text_as_integer", "text_as_boolean", "number_as_text"}
    messages = [json.dumps({"records": drifted[i : i + 20]}).encode() for i in range(0, len(drifted), 20)]
    topic, group = unique_names()
    per_partition = produce(kafka_bootstrap, topic, messages, partitions=1)
    emulator = EmulatorProcess(tmp_path / "emulator")
    ingestor = IngestorProcess(tmp_path, ingestor_config(tmp_path, kafka_bootstrap, emulator, topic=topic, group=group))
    try:
        wait_for(lambda: ingestor.total("ingestor_accepted_events_total") == len(records), what="every row landed")
        ingestor.wait_committed(topic, per_partition)
        samples = parse_metrics(ingestor.get("/metrics")[1])
        lines = ingestor.log_lines()
    finally:
        code = ingestor.terminate()
        emulator.stop()
    assert code == 0, ingestor.log()[-3000:]

    def canonical(row: dict[str, Any]) -> str:
        return json.dumps(row, sort_keys=True)

    names = {r["category"].removeprefix("AdvancedHunting-") for r in records}
    landed = Counter(canonical(row) for t in names for row in emulator.rows(f"{t}_CL"))
    assert landed == Counter(canonical(expected_row(r)) for r in records)  # each row as Defender meant it
    assert not list(read_dead_letters(tmp_path / "dead-letter"))

    published = {
        (labels["table"], labels["column"], labels["rule"]): value
        for (name, label_items), value in samples.items()
        if name == "ingestor_values_converted_total" and (labels := dict(label_items))
    }
    assert published == counts
    sightings = [(line["table"], line["column"], line["rule"]) for line in lines if "rule" in line]
    assert sorted(sightings) == sorted(counts), "one INFO line per (table, column, rule), the first time"


def documented_dynamic() -> list[tuple[str, str]]:
    """(table, column) of every string column Microsoft documents as dynamic (the schema's `stream_type`)."""
    return [(t, c.name) for t, s in SCHEMAS.items() for c in s.columns if c.stream_type == "dynamic"]


def test_a_string_column_documented_as_dynamic_keeps_an_array_or_object_as_its_json_text() -> None:
    assert ("IdentityInfo", "Tags") in documented_dynamic()
    assert all(SCHEMAS[t].columns[SCHEMAS[t].column_names.index(c)].type == "string" for t, c in documented_dynamic())
    decoder = MessageDecoder(SCHEMAS)
    values = [["Sensitive", "Honeytoken"], {"source": "mdi"}, [], 5]
    texts = ['["Sensitive","Honeytoken"]', '{"source":"mdi"}', "[]", "5"]
    records = [
        {"category": "AdvancedHunting-IdentityInfo", "tenantId": "t", "properties": {"Timestamp": TIME, "Tags": v}}
        for v in values
    ]
    whole = decoder.decode(json.dumps({"records": records}).encode())
    alone = [decoder.decode(json.dumps(r).encode()) for r in records]
    for result in (whole, *alone):
        assert not result.rejected
    assert [json.loads(r.body)["Tags"] for r in whole.rows] == texts
    assert [json.loads(a.rows[0].body)["Tags"] for a in alone] == texts
    assert whole.converted == Counter({("IdentityInfo", "Tags", "dynamic_as_text"): 3,
                                       ("IdentityInfo", "Tags", "number_as_text"): 1})  # fmt: skip
    # Any other string column still refuses an array: only the documented type is Defender's own spelling.
    other = {"category": "AdvancedHunting-IdentityInfo", "properties": {"Timestamp": TIME, "AccountName": ["a"]}}
    refused = decoder.decode(json.dumps(other).encode())
    assert [(r.reason, r.detail) for r in refused.rejected] == [
        ("invalid_type", "column AccountName is string but holds an array")
    ]
