"""No Defender column is lost to schema drift: unknown columns kept in `UnmappedColumns` (the default), dropped or
rejected; columns promoted by `schemas.extra_columns` validated, provisioned and served like schema columns; and,
on real parts, rows with both landing through a provisioned emulator.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml
from azure.core.exceptions import HttpResponseError
from realparts import (
    ingestor_config,
    metric_total,
    produce,
    provisioned_emulator,
    run_until_committed,
    unique_names,
    use_provisioned,
)
from test_config import problems
from test_decode import BY_TABLE, SAMPLES, SCHEMAS, envelope, rows_of, with_props
from test_emulator import TOKEN, gzipped, make_client, upload
from test_fuzz import MemoryStore
from test_retention import config_doc

from ingestor import provision
from ingestor.commit import OffsetTracker, Position
from ingestor.config import Config, load_config, parse_config
from ingestor.metrics import Metrics
from ingestor.models import Message
from ingestor.pipeline.decode import INVALID_NAME, MAX_UNKNOWN_COLUMN_LABELS, MessageDecoder
from ingestor.run.flow import Flow
from ingestor.sinks.dead_letter_file import read_dead_letters
from ingestor.tables import MAX_COLUMNS_PER_TABLE, UNMAPPED_COLUMNS, load_schemas, with_extra_columns
from ingestor_tools.emulator import Emulator
from ingestor_tools.emulator.dcr import default_dcr, template_dcrs
from ingestor_tools.generate import TrafficGenerator

# Promoted columns of several types, and an Auxiliary class for DeviceNetworkEvents (dynamic columns as text).
EXTRA = {
    "DeviceProcessEvents": {"ProcessRiskScore": "long", "ProcessTags": "dynamic", "ScannedAt": "datetime"},
    "DeviceNetworkEvents": {"RemoteCountry": "string"},
}
RETENTION = {
    "default_class": "hot",
    "classes": {"hot": {"plan": "Analytics"}, "archive": {"plan": "Auxiliary", "total_retention_days": 365}},
    "rules": [{"tables": ["DeviceNetworkEvents"], "class": "archive"}],
}


def config(unknown_columns: str = "keep", extra: dict[str, Any] | None = None) -> Config:
    doc = config_doc(RETENTION) | {
        "schemas": {"extra_columns": EXTRA if extra is None else extra},
        "validation": {"unknown_columns": unknown_columns},
    }
    return parse_config(doc)


def decoder_for(cfg: Config, **limits: Any) -> MessageDecoder:
    """The decoder `Flow` builds for `cfg`."""
    mode = cfg.validation.unknown_columns
    return MessageDecoder(cfg.table_schemas(), routes=cfg.routes(), unknown_columns=mode, **limits)


def unmapped_size(row: dict[str, Any]) -> int:
    return len(msgspec.json.encode(row[UNMAPPED_COLUMNS]))


# -- keep, drop, reject -------------------------------------------------------------------------------------------


def test_kept_columns_land_in_one_unmapped_object_with_their_values_exactly() -> None:
    decoder = MessageDecoder(SCHEMAS)
    values = {
        "NewColumn": "new",
        "NewNumber": 2**70,  # exact, as sent
        "NewObject": {"a": [1, 2.5, None, True], "b": {"c": "ü😀"}},
        "NewNull": None,  # a null is no value: not kept, not counted
    }
    record = with_props("DeviceFileEvents", **values)
    for path in ("per-record (learning)", "fast"):
        result = decoder.decode(envelope(record, BY_TABLE["DeviceInfo"]))
        assert not result.rejected and len(result.rows) == 2, path
        row, info = rows_of(result)
        assert row[UNMAPPED_COLUMNS] == {k: v for k, v in values.items() if v is not None}, path
        assert not set(values) & set(row), "kept values are not top-level columns"
        assert UNMAPPED_COLUMNS not in info, "a row without unknown columns has no UnmappedColumns"
        assert result.unknown_columns == Counter({("DeviceFileEvents", c): 1 for c in values if c != "NewNull"})
        assert result.unmapped_bytes == Counter({"DeviceFileEvents": unmapped_size(row)})
    assert "NewColumn" in decoder._codecs["AdvancedHunting-DeviceFileEvents"].learned.values()


def test_without_unknown_columns_keep_sends_the_very_bytes_drop_sends() -> None:
    keep, drop = MessageDecoder(SCHEMAS), MessageDecoder(SCHEMAS, unknown_columns="drop")
    for message in (envelope(*SAMPLES), b"\n".join(json.dumps(r).encode() for r in SAMPLES)):
        kept, dropped = keep.decode(message), drop.decode(message)
        assert [r.body for r in kept.rows] == [r.body for r in dropped.rows]
        assert not kept.unmapped_bytes and all(b"UnmappedColumns" not in r.body for r in kept.rows)


@pytest.mark.parametrize("mode", ["drop", "reject"])
def test_drop_and_reject_never_send_unmapped_columns(mode: str) -> None:
    decoder = MessageDecoder(SCHEMAS, unknown_columns=mode)
    record = with_props("DeviceFileEvents", NewColumn="x", UnmappedColumns={"a": 1})
    for _ in range(2):
        result = decoder.decode(envelope(record, BY_TABLE["DeviceInfo"]))
        assert all(b"UnmappedColumns" not in r.body and b"NewColumn" not in r.body for r in result.rows)
        assert len(result.rows) == (2 if mode == "drop" else 1)
        assert [r.reason for r in result.rejected] == ([] if mode == "drop" else ["unknown_column"])
        assert not result.unmapped_bytes
        assert result.unknown_columns == Counter(
            {("DeviceFileEvents", "NewColumn"): 1, ("DeviceFileEvents", "UnmappedColumns"): 1}
        )


@pytest.mark.parametrize("name", ['bad"name', "ctl\x01char", "", "9digit", "x" * 46, "TenantId", "Type"])
def test_a_name_log_analytics_refuses_is_kept_inside_unmapped_columns_and_counted_as_invalid_name(name: str) -> None:
    decoder = MessageDecoder(SCHEMAS)
    for _ in range(2):  # never learned: every time through the per-record path
        result = decoder.decode(envelope(with_props("DeviceFileEvents", **{name: 7, "Fresh": "f"})))
        (row,) = rows_of(result)
        assert row[UNMAPPED_COLUMNS] == {name: 7, "Fresh": "f"}
        assert result.unknown_columns == Counter(
            {("DeviceFileEvents", INVALID_NAME): 1, ("DeviceFileEvents", "Fresh"): 1}
        )


def test_a_records_own_unmapped_columns_key_is_one_more_unknown_column() -> None:
    decoder = MessageDecoder(SCHEMAS)
    own = {"whatever": [1]}
    for path in ("per-record", "fast"):
        result = decoder.decode(envelope(with_props("DeviceEvents", UnmappedColumns=own, NewColumn=1)))
        (row,) = rows_of(result)
        assert row[UNMAPPED_COLUMNS] == {"UnmappedColumns": own, "NewColumn": 1}, path
        assert result.unknown_columns == Counter(
            {("DeviceEvents", "UnmappedColumns"): 1, ("DeviceEvents", "NewColumn"): 1}
        ), path
    (row,) = rows_of(decoder.decode(envelope(with_props("DeviceEvents", UnmappedColumns="text only"))))
    assert row[UNMAPPED_COLUMNS] == {"UnmappedColumns": "text only"}


def test_labels_stay_bounded_while_every_value_is_kept() -> None:
    decoder = MessageDecoder(SCHEMAS)
    names = [f"Brand{i:03d}" for i in range(MAX_UNKNOWN_COLUMN_LABELS + 36)]
    labels: Counter[tuple[str, str]] = Counter()
    for start in range(0, len(names), 10):
        result = decoder.decode(
            envelope(with_props("DeviceNetworkEvents", **{n: n for n in names[start : start + 10]}))
        )
        (row,) = rows_of(result)
        assert row[UNMAPPED_COLUMNS] == {n: n for n in names[start : start + 10]}
        labels.update(result.unknown_columns)
    assert labels.total() == len(names)
    assert len(labels) == MAX_UNKNOWN_COLUMN_LABELS + 1 and labels[("DeviceNetworkEvents", "other")] == 36


def test_auxiliary_destinations_get_unmapped_columns_as_json_text() -> None:
    decoder = decoder_for(config())
    kept = {"NewColumn": {"nested": [1, "two"]}, "NewFlag": True}
    for _ in range(2):
        result = decoder.decode(envelope(with_props("DeviceNetworkEvents", **kept), with_props("DeviceEvents", **kept)))
        archived, hot = result.rows
        assert archived.destination.auxiliary and not hot.destination.auxiliary
        text = json.loads(archived.body)[UNMAPPED_COLUMNS]
        assert isinstance(text, str) and json.loads(text) == kept
        assert json.loads(hot.body)[UNMAPPED_COLUMNS] == kept
        assert result.unmapped_bytes == Counter({"DeviceNetworkEvents": len(text), "DeviceEvents": len(text)})


@pytest.mark.parametrize("auxiliary", [False, True])
def test_unmapped_columns_over_the_field_limit_are_cut_like_any_long_dynamic_value(auxiliary: bool) -> None:
    cfg = config()
    limit = cfg.validation.max_field_bytes
    decoder = decoder_for(cfg)
    table = "DeviceNetworkEvents" if auxiliary else "DeviceEvents"
    huge = {"Small": 1, "Huge": "é" * limit}  # about twice the limit in UTF-8
    result = decoder.decode(envelope(with_props(table, **huge)))
    (row,) = rows_of(result)
    text = row[UNMAPPED_COLUMNS]
    assert isinstance(text, str) and len(text.encode()) <= limit and text.startswith('{"Small":1,"Huge":"éé')
    assert result.truncated_fields == Counter({table: 1}) and result.unmapped_bytes[table] <= limit
    assert len(result.rows[0].body) < 2 * limit, "the row stays within the field limit plus its schema columns"
    # Just under the limit: sent whole, as an object on Analytics.
    fits = {"Big": "x" * (limit - 20)}
    result = decoder.decode(envelope(with_props(table, **fits)))
    value = rows_of(result)[0][UNMAPPED_COLUMNS]
    assert (json.loads(value) if auxiliary else value) == fits and not result.truncated_fields


def test_unmapped_column_bytes_are_counted_by_table_in_the_flow() -> None:
    flow = Flow(config(), Metrics(), dead_letter=MemoryStore())
    tracker = OffsetTracker()
    values = [
        envelope(with_props("DeviceEvents", NewColumn="abc"), with_props("DeviceEvents", NewColumn="abc")),
        envelope(with_props("DeviceNetworkEvents", NewColumn={"k": 1}), *SAMPLES),
    ]
    messages = [Message(v, Position("defender", 0, i)) for i, v in enumerate(values)]
    flow.process(messages, lambda position, created: tracker.track(position, created))

    def sample(name: str, **labels: str) -> float | None:
        return flow.metrics.registry.get_sample_value(name, labels)

    assert sample("ingestor_unmapped_column_bytes_total", table="DeviceEvents") == 2 * len(b'{"NewColumn":"abc"}')
    assert sample("ingestor_unmapped_column_bytes_total", table="DeviceNetworkEvents") == len(b'{"NewColumn":{"k":1}}')
    assert sample("ingestor_unmapped_column_bytes_total", table="DeviceInfo") is None
    assert sample("ingestor_unknown_columns_total", table="DeviceEvents", column="NewColumn") == 2


# -- promoted columns ---------------------------------------------------------------------------------------------


def test_promoted_columns_are_validated_with_their_type_and_are_no_longer_unknown() -> None:
    decoder = decoder_for(config())
    good = with_props(
        "DeviceProcessEvents",
        ProcessRiskScore=2**62,
        ProcessTags='["a", {"b": 1}]',  # dynamic JSON text is parsed, as for schema columns
        ScannedAt="2026-07-18T10:58:27.3137769Z",
        NewColumn="still unknown",
    )
    wrong_type = with_props("DeviceProcessEvents", ProcessRiskScore="high")
    bad_time = with_props("DeviceProcessEvents", ScannedAt="yesterday")
    for _ in range(2):
        result = decoder.decode(envelope(good, wrong_type, bad_time))
        (row,) = rows_of(result)
        assert row["ProcessRiskScore"] == 2**62 and row["ProcessTags"] == ["a", {"b": 1}]
        assert row["ScannedAt"] == "2026-07-18T10:58:27.3137769Z"
        assert row[UNMAPPED_COLUMNS] == {"NewColumn": "still unknown"}
        assert [(r.reason, r.table) for r in result.rejected] == [
            ("invalid_type", "DeviceProcessEvents"),
            ("invalid_value", "DeviceProcessEvents"),
        ]
        assert "ProcessRiskScore" in result.rejected[0].detail
        assert result.unknown_columns == Counter({("DeviceProcessEvents", "NewColumn"): 1})
    # A promoted string on an Auxiliary destination goes as it came.
    (row,) = rows_of(decoder.decode(envelope(with_props("DeviceNetworkEvents", RemoteCountry="NL"))))
    assert row["RemoteCountry"] == "NL" and UNMAPPED_COLUMNS not in row


def test_table_schemas_put_native_then_promoted_then_unmapped_and_leave_the_cached_schemas_alone() -> None:
    before = {t: s.columns for t, s in load_schemas().items()}
    schemas = config().table_schemas()
    process = schemas["DeviceProcessEvents"]
    native = SCHEMAS["DeviceProcessEvents"].column_names
    assert process.column_names == (*native, "ProcessRiskScore", "ProcessTags", "ScannedAt", UNMAPPED_COLUMNS)
    assert [c.origin for c in process.columns[-4:]] == ["promoted", "promoted", "promoted", "added"]
    assert schemas["DeviceInfo"].column_names == (*SCHEMAS["DeviceInfo"].column_names, UNMAPPED_COLUMNS)
    assert config("drop").table_schemas()["DeviceInfo"].column_names == SCHEMAS["DeviceInfo"].column_names
    assert {t: s.columns for t, s in load_schemas().items()} == before
    assert with_extra_columns(SCHEMAS, {}) == SCHEMAS


# -- configuration ------------------------------------------------------------------------------------------------


def test_keep_is_the_default_and_the_policy_is_checked() -> None:
    assert parse_config(config_doc({})).validation.unknown_columns == "keep"
    (problem,) = problems(config_doc({}) | {"validation": {"unknown_columns": "ignore"}})
    assert (
        problem.startswith("validation.unknown_columns:")
        and "got 'ignore'; expected one of keep | drop | reject" in problem
    )


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"DeviceFoo": {"A": "string"}}, "schemas.extra_columns: unknown tables ['DeviceFoo']; known tables are"),
        ({"DeviceEvents": {"Bad-Name": "string"}}, "schemas.extra_columns: DeviceEvents.Bad-Name: Log Analytics takes"),
        ({"DeviceEvents": {"TenantId": "string"}}, "DeviceEvents.TenantId: Log Analytics takes no such column name"),
        ({"DeviceEvents": {"actiontype": "string"}}, "DeviceEvents.actiontype: DeviceEvents already has the column "
                                                     "ActionType (names are case-insensitive); remove it"),
        ({"DeviceEvents": {"RetentionTag": "string"}}, "DeviceEvents already has the column RetentionTag"),
        ({"DeviceEvents": {"unmappedColumns": "dynamic"}}, "UnmappedColumns is the ingestor's column"),
        ({"DeviceEvents": {"NewCol": "string", "newcol": "long"}}, "DeviceEvents.newcol: also listed as NewCol"),
        ({"DeviceEvents": {"NewCol": "text"}}, "DeviceEvents.NewCol: got 'text'; expected one of string | int"),
        ({"DeviceEvents": {f"C{i}": "string" for i in range(MAX_COLUMNS_PER_TABLE)}}, "a table may have 500"),
    ],
)  # fmt: skip
def test_extra_columns_errors_name_the_key_and_the_fix(extra: dict[str, Any], expected: str) -> None:
    (problem,) = problems(config_doc({}) | {"schemas": {"extra_columns": extra}})
    assert expected in problem, problem


def test_extra_columns_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps(config_doc({})))
    cfg = load_config(path, {"INGESTOR_SCHEMAS__EXTRA_COLUMNS": "{DeviceEvents: {NewCol: long}}"})
    assert cfg.schemas.extra_columns == {"DeviceEvents": {"NewCol": "long"}}
    assert cfg.table_schemas()["DeviceEvents"].column_names[-2:] == ("NewCol", UNMAPPED_COLUMNS)


# -- provisioning -------------------------------------------------------------------------------------------------


def test_tables_and_streams_carry_promoted_columns_and_unmapped_columns() -> None:
    cfg = config()
    template = provision.build_template(cfg)
    assert provision.check_template(template) == []
    tables = provision.template_tables(template)
    streams = {
        name: declaration["columns"]
        for rule in provision.resources_of(template, provision.DCR_TYPE)
        for name, declaration in rule["properties"]["streamDeclarations"].items()
    }
    process = [(c["name"], c["type"]) for c in tables["DeviceProcessEvents_CL"]["schema"]["columns"]]
    assert process[-4:] == [
        ("ProcessRiskScore", "long"),
        ("ProcessTags", "dynamic"),
        ("ScannedAt", "dateTime"),
        ("UnmappedColumns", "dynamic"),
    ]
    assert [c["name"] for c in streams["Custom-DeviceProcessEvents_CL"]] == [n for n, _ in process]
    network = {c["name"]: c["type"] for c in tables["DeviceNetworkEvents_archive_CL"]["schema"]["columns"]}
    assert network["RemoteCountry"] == "string" and network["UnmappedColumns"] == "string"  # Auxiliary: text
    for table in SCHEMAS:
        names = [c.name for c in provision.table_columns(cfg, table)]
        assert names[: len(SCHEMAS[table].columns)] == list(SCHEMAS[table].column_names)
        assert names[-1] == UNMAPPED_COLUMNS and len(names) == len(set(names))
    assert all(
        UNMAPPED_COLUMNS not in {c["name"] for c in t["schema"]["columns"]}
        for t in provision.template_tables(provision.build_template(config("drop"))).values()
    ), "drop sends no UnmappedColumns, so none is declared"


def test_a_table_promoted_up_to_the_column_limit_passes_the_template_checks() -> None:
    room = MAX_COLUMNS_PER_TABLE - len(SCHEMAS["DeviceEvents"].columns) - 1
    cfg = config(extra={"DeviceEvents": {f"NewColumn{i}": "string" for i in range(room)}})
    template = provision.build_template(cfg)
    assert provision.check_template(template) == []
    assert len(provision.template_tables(template)["DeviceEvents_CL"]["schema"]["columns"]) == MAX_COLUMNS_PER_TABLE


# -- the emulator enforces the same streams -----------------------------------------------------------------------


def test_the_default_dcr_takes_unmapped_columns(tmp_path: Path) -> None:
    streams = dict(default_dcr("dcr-x").streams["Custom-DeviceInfo_CL"])
    assert streams[UNMAPPED_COLUMNS] == "dynamic" and "Timestamp" in streams


@pytest.mark.emulator
async def test_the_emulator_serves_promoted_columns_with_their_types(tmp_path: Path) -> None:
    dcrs = template_dcrs(provision.build_template(config()))
    (hot,) = [d for d in dcrs if "Custom-DeviceProcessEvents_CL" in d.streams]
    row = json.loads(decoder_for(config()).decode(envelope(with_props(
        "DeviceProcessEvents", ProcessRiskScore=5, NewColumn={"a": 1}))).rows[0].body)  # fmt: skip
    async with Emulator(tmp_path, token=TOKEN, dcrs=dcrs) as emulator, make_client(emulator) as client:
        stream = "Custom-DeviceProcessEvents_CL"
        await upload(client, gzipped([row]), stream=stream, rule_id=hot.immutable_id)
        (landed,) = emulator.rows("DeviceProcessEvents_CL")
        assert landed["ProcessRiskScore"] == 5 and landed[UNMAPPED_COLUMNS] == {"NewColumn": {"a": 1}}
        # A promoted column of the wrong type is refused as a schema column is; an undeclared one too (the real
        # service would drop it silently, which is why `keep` needs UnmappedColumns declared).
        for broken, code in (
            ({"ProcessRiskScore": "high"}, "InvalidColumnType"),
            ({"NotDeclared": 1}, "InvalidColumn"),
        ):
            with pytest.raises(HttpResponseError) as caught:
                await upload(client, gzipped([row | broken]), stream=stream, rule_id=hot.immutable_id)
            assert caught.value.status_code == 400 and caught.value.error is not None
            assert caught.value.error.code == code and next(iter(broken)) in caught.value.error.message
        assert len(emulator.rows("DeviceProcessEvents_CL")) == 1


# -- real parts -----------------------------------------------------------------------------------------------------


@pytest.mark.emulator
@pytest.mark.process
def test_kept_and_promoted_columns_land_through_a_provisioned_emulator(tmp_path: Path, kafka_bootstrap: str) -> None:
    """Broker -> `ingestor run` -> the emulator serving the DCRs `ingestor provision` wrote for the same config."""
    topic, group = unique_names()
    generator = TrafficGenerator(seed=23, devices=10)
    records = [json.loads(m)["records"] for m in generator.messages(records=400, records_per_message=(5, 5))]
    changed: dict[tuple[Any, ...], dict[str, Any]] = {}
    for index, record in enumerate(r for batch in records for r in batch):
        table = record["category"].removeprefix("AdvancedHunting-")
        if table in ("DeviceProcessEvents", "DeviceNetworkEvents") and index % 2 == 0:
            props = record["properties"]
            props["NewColumn"] = {"seen": index}
            props["bad name"] = index  # a name Log Analytics refuses: kept all the same
            if table == "DeviceProcessEvents":
                props["ProcessRiskScore"] = index
            else:
                props["RemoteCountry"] = "NL"
            changed[props["ReportId"], props["DeviceName"], props["Timestamp"]] = props
    wrong = with_props("DeviceProcessEvents", ProcessRiskScore="high")  # a promoted column of the wrong type
    messages = [json.dumps({"records": batch}).encode() for batch in records]
    messages.append(json.dumps({"records": [wrong]}).encode())
    per_partition = produce(kafka_bootstrap, topic, messages, partitions=2)
    sections = {"schemas": {"extra_columns": EXTRA}}
    emulator, provisioned = provisioned_emulator(tmp_path, RETENTION, **sections)
    try:
        cfg = use_provisioned(
            ingestor_config(tmp_path, kafka_bootstrap, emulator, topic=topic, group=group), provisioned
        )
        samples = run_until_committed(tmp_path, cfg | sections, topic, per_partition, timeout=120)
        statuses = emulator.statuses()
        assert set(statuses) == {204}, statuses
        assert sum(emulator.counts().values()) == generator.manifest.valid_records
        found = 0
        for table_name in ("DeviceProcessEvents_CL", "DeviceNetworkEvents_archive_CL"):
            for row in emulator.rows(table_name):
                key = (row["ReportId"], row["DeviceName"], row["Timestamp"])
                if key not in changed:
                    assert UNMAPPED_COLUMNS not in row
                    continue
                found += 1
                unmapped = row[UNMAPPED_COLUMNS]
                if table_name.endswith("_archive_CL"):  # Auxiliary: JSON text
                    assert isinstance(unmapped, str)
                    unmapped = json.loads(unmapped)
                    assert row["RemoteCountry"] == "NL"
                else:
                    assert row["ProcessRiskScore"] == changed[key]["ProcessRiskScore"]
                assert unmapped == {"NewColumn": changed[key]["NewColumn"], "bad name": changed[key]["bad name"]}
        assert found == len(changed) > 20
        (entry,) = read_dead_letters(tmp_path / "dead-letter")
        assert entry.reason == "invalid_type" and "ProcessRiskScore" in entry.detail

        def total(name: str, **labels: str) -> float:
            return metric_total(samples, name, **labels)

        assert total("ingestor_unmapped_column_bytes_total") > 0
        assert total("ingestor_unknown_columns_total", column="NewColumn") == len(changed)
        assert total("ingestor_unknown_columns_total", column=INVALID_NAME) == len(changed)
        assert total("ingestor_unknown_columns_total", column="ProcessRiskScore") == 0
    finally:
        emulator.stop()


def test_the_readme_promotion_example_validates() -> None:
    reference = (Path(__file__).resolve().parent.parent / "docs" / "configuration.md").read_text()
    section = reference[reference.index("## New columns") :]
    block = section[section.index("```yaml\n") + len("```yaml\n") : section.index("```\n", section.index("```yaml"))]
    cfg = parse_config(config_doc({}) | yaml.safe_load(block))
    assert cfg.table_schemas()["DeviceProcessEvents"].column_names[-2:] == ("ProcessRiskScore", UNMAPPED_COLUMNS)
