"""Input nobody on the team wrote: the decoder returns for any bytes, stays sound, and keeps what input decides
bounded (learned columns, label values, dead-letter copies and details); the Kafka dead letter fits entries by
their encoded size; replay survives the same input."""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import json
import logging
import sys
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import pytest
from test_config import base
from test_decode import BY_TABLE, SAMPLES, SCHEMAS, envelope, rows_of, with_props
from test_fuzz import MemoryStore

from ingestor.bounds import MAX_DETAIL_CHARS, MAX_LABEL_CHARS, OTHER, RAW_COPY_BYTES, BoundedLabels
from ingestor.commit import OffsetTracker, Position
from ingestor.config import ConfigError, parse_config
from ingestor.metrics import Metrics
from ingestor.models import DEAD_LETTER_REASONS, Destination, Rejected, SourceRef
from ingestor.pipeline.decode import INVALID_NAME, MAX_SKIP_LABELS, MAX_UNKNOWN_COLUMN_LABELS, MessageDecoder
from ingestor.retention import Predicate, TableRoute
from ingestor.run.flow import Flow
from ingestor.run.replay import _messages
from ingestor.sinks.dead_letter import DeadLetterEntry, entry_for
from ingestor.sinks.dead_letter_kafka import fit_entry

sys.set_int_max_str_digits(0)  # JSON puts no limit on digits; rows are read back with json.loads

HOSTILE_NAMES = ['bad"name', "back\\slash", "ctl\x01char", "new\nline", "", "9starts_with_digit", "x" * 46, "TenantId"]


def accounted(decoder: MessageDecoder, value: bytes) -> Any:
    result = decoder.decode(value)
    assert result.read == len(result.rows) + len(result.rejected) + result.skipped.total()
    assert all(r.reason in DEAD_LETTER_REASONS and len(r.detail) <= MAX_DETAIL_CHARS for r in result.rejected)
    return result


def samples_still_decode(decoder: MessageDecoder) -> None:
    result = decoder.decode(envelope(*SAMPLES))
    assert len(result.rows) == len(SAMPLES) and not result.rejected


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_an_invalid_column_name_is_never_learned_and_the_record_lands(name: str) -> None:
    decoder = MessageDecoder(SCHEMAS)
    for _ in range(2):  # the second time, a learned name would have taken the fast path
        result = accounted(decoder, envelope(with_props("DeviceFileEvents", **{name: 1}), BY_TABLE["DeviceInfo"]))
        assert len(result.rows) == 2 and not result.rejected
        assert result.unknown_columns == Counter({("DeviceFileEvents", INVALID_NAME): 1})
        assert name not in json.loads(result.rows[0].body)
    samples_still_decode(decoder)


@pytest.mark.parametrize("name", HOSTILE_NAMES[:4])
def test_an_invalid_column_name_is_rejected_by_the_reject_policy(name: str) -> None:
    decoder = MessageDecoder(SCHEMAS, unknown_columns="reject")
    result = accounted(decoder, envelope(with_props("DeviceFileEvents", **{name: 1})))
    (rejected,) = result.rejected
    assert (rejected.reason, rejected.table) == ("unknown_column", "DeviceFileEvents")
    assert result.unknown_columns == Counter({("DeviceFileEvents", INVALID_NAME): 1})
    samples_still_decode(decoder)


def test_a_valid_new_column_is_learned_and_a_mixed_record_learns_nothing() -> None:
    decoder = MessageDecoder(SCHEMAS)
    mixed = with_props("DeviceFileEvents", NewColumnA=1, **{'bad"': 2})
    result = accounted(decoder, envelope(mixed))
    assert len(result.rows) == 1
    assert result.unknown_columns == Counter(
        {("DeviceFileEvents", "NewColumnA"): 1, ("DeviceFileEvents", INVALID_NAME): 1}
    )
    result = accounted(decoder, envelope(with_props("DeviceFileEvents", NewColumnA=1)))
    assert result.unknown_columns == Counter({("DeviceFileEvents", "NewColumnA"): 1})
    assert "NewColumnA" in decoder._codecs["AdvancedHunting-DeviceFileEvents"].learned.values()
    samples_still_decode(decoder)


def test_thousands_of_hostile_names_and_categories_stay_under_the_caps(caplog: pytest.LogCaptureFixture) -> None:
    decoder = MessageDecoder(SCHEMAS)
    metrics = Metrics()
    labels: Counter[tuple[str, str]] = Counter()
    skipped: Counter[str] = Counter()
    tracemalloc.start()
    start = tracemalloc.get_traced_memory()[0]
    with caplog.at_level(logging.INFO):
        for i in range(3_000):
            names = {f"Col{i:05d}": i, f'q"{i}': i, f"ctl\x02{i}": i}
            record = with_props("DeviceNetworkEvents", **names)
            category = {"category": f"AdvancedHunting-Email{i}" + "z" * (i % 7) * 50, "properties": {}}
            result = accounted(decoder, envelope(record, category))
            labels.update(result.unknown_columns)
            skipped.update(result.skipped)
            for (table, column), n in result.unknown_columns.items():
                metrics.unknown_columns.labels(table, column).inc(n)
            for category_label, n in result.skipped.items():
                metrics.events_skipped.labels(category_label).inc(n)
        huge = accounted(decoder, envelope({"category": "X" * 900_000, "properties": {}}))
    grown = tracemalloc.get_traced_memory()[0] - start
    tracemalloc.stop()
    assert huge.skipped.total() == 1 and all(len(label) <= MAX_LABEL_CHARS for label in huge.skipped)
    columns = {column for _, column in labels}
    assert len(columns) <= MAX_UNKNOWN_COLUMN_LABELS + 2 and {OTHER, INVALID_NAME} <= columns
    assert len(skipped) <= MAX_SKIP_LABELS + 1 and OTHER in skipped
    assert labels.total() == 9_000 and skipped.total() == 3_000
    series = [s for m in metrics.registry.collect() for s in m.samples if s.labels]
    assert len(series) <= MAX_UNKNOWN_COLUMN_LABELS + 2 + MAX_SKIP_LABELS + 1
    assert all(len(v) <= MAX_LABEL_CHARS for s in series for v in s.labels.values())
    assert len(caplog.records) <= MAX_UNKNOWN_COLUMN_LABELS + MAX_SKIP_LABELS + 4
    assert all(len(r.getMessage()) + len(str(r.__dict__.get("column", ""))) < 300 for r in caplog.records)
    assert grown < 4 * 1_048_576, f"decoder state grew by {grown:,} bytes"
    samples_still_decode(decoder)


def test_json_nested_too_deep_in_a_value_is_dead_lettered_and_in_json_text_stays_text() -> None:
    decoder = MessageDecoder(SCHEMAS)
    for depth in (1_000, 5_000, 100_000):
        deep = "[" * depth + "]" * depth
        value = envelope(with_props("DeviceEvents", AdditionalFields="x"), BY_TABLE["DeviceInfo"])
        result = accounted(decoder, value.replace(b'"x"', deep.encode()))
        assert [r.reason for r in result.rejected] == ["too_deeply_nested"] and len(result.rows) == 1
        assert (result.rejected[0].table, result.rejected[0].source) == ("DeviceEvents", None)
        one_per_line = json.dumps(with_props("DeviceEvents", AdditionalFields="x")).replace('"x"', deep)
        result = accounted(decoder, f"{one_per_line}\n{json.dumps(BY_TABLE['DeviceInfo'])}".encode())
        assert [r.reason for r in result.rejected] == ["too_deeply_nested"] and len(result.rows) == 1
        assert result.rejected[0].table == "DeviceEvents"
        result = accounted(decoder, envelope(with_props("DeviceEvents", AdditionalFields=deep)))
        (row,) = rows_of(result)
        assert deep.startswith(row["AdditionalFields"])  # the text, not parsed (and cut beyond 64 KB)
    samples_still_decode(decoder)


@pytest.mark.parametrize("text", ["[1e400]", '{"a": -1.5E+309}', "[" + "9" * 5_000 + "]"])
def test_json_text_with_a_number_out_of_range_passes_as_written(text: str) -> None:
    result = accounted(MessageDecoder(SCHEMAS), envelope(with_props("DeviceEvents", AdditionalFields=text)))
    (row,) = result.rows
    assert text.encode() in row.body  # valid JSON syntax, the value for the service to judge
    assert json.loads(row.body)["AdditionalFields"] == json.loads(text)


def test_an_in_predicate_on_a_list_or_object_value_routes_to_the_fallback() -> None:
    archive = Destination("DeviceEvents", "", "Custom-A_CL", "A_CL", "archive")
    default = Destination("DeviceEvents", "", "Custom-D_CL", "D_CL", "default")
    test = Predicate.model_validate({"column": "AdditionalFields", "in": ["x", 1]}).compile()
    routes = {t: TableRoute([], Destination(t, "", f"Custom-{t}_CL", f"{t}_CL")) for t in SCHEMAS}
    routes["DeviceEvents"] = TableRoute([(test, archive)], default)
    decoder = MessageDecoder(SCHEMAS, routes=routes)
    values: list[Any] = [["x"], {"x": 1}, [], "x", 1]
    result = accounted(decoder, envelope(*(with_props("DeviceEvents", AdditionalFields=v) for v in values)))
    assert [r.destination.retention_tag for r in result.rows] == ["default", "default", "default", "archive", "archive"]


def test_an_unforeseen_failure_dead_letters_that_record_once_logged_and_the_decoder_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def explode(row: Any) -> bool:
        if row.ActionType == "boom":
            raise ZeroDivisionError("a bug nobody foresaw")
        return False

    routes = {t: TableRoute([], Destination(t, "", f"Custom-{t}_CL", f"{t}_CL")) for t in SCHEMAS}
    routes["DeviceEvents"] = TableRoute(
        [(explode, Destination("DeviceEvents", "", "Custom-X_CL", "X_CL", "x"))], routes["DeviceEvents"].fallback
    )
    decoder = MessageDecoder(SCHEMAS, routes=routes)
    bad = with_props("DeviceEvents", ActionType="boom")
    with caplog.at_level(logging.ERROR):
        for _ in range(3):
            result = accounted(decoder, envelope(BY_TABLE["DeviceInfo"], bad, BY_TABLE["DeviceEvents"]))
            assert [r.table for r in result.rows] == ["DeviceInfo", "DeviceEvents"]
            (rejected,) = result.rejected
            assert (rejected.reason, rejected.table, rejected.source) == ("internal_error", "DeviceEvents", None)
            assert rejected.detail.startswith("ZeroDivisionError: a bug nobody foresaw")
            assert json.loads(rejected.raw) == bad
    assert len([r for r in caplog.records if "unforeseen" in r.getMessage()]) == 1
    samples_still_decode(decoder)


def test_an_unforeseen_failure_outside_any_record_dead_letters_the_message(monkeypatch: pytest.MonkeyPatch) -> None:
    decoder = MessageDecoder(SCHEMAS)

    def broken(*_: Any) -> Any:
        raise MemoryError("out of luck")

    monkeypatch.setattr(decoder, "_decode_message", broken)
    monkeypatch.setattr(decoder, "_split", broken)
    value = envelope(BY_TABLE["DeviceInfo"])
    result = accounted(decoder, value)
    (rejected,) = result.rejected
    assert (rejected.reason, rejected.raw, result.read) == ("internal_error", value, 1)
    assert rejected.detail.startswith("MemoryError: out of luck")


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b" ",
        b"\n\r\n\t ",
        b'{"records": []}',
        b'{"records": []}\n',
        b'{"x": ' + b"[" * 2000 + b"]" * 2000 + b', "records": []}',
    ],
)
def test_an_empty_message_is_a_dead_letter_entry_not_a_silent_commit(value: bytes) -> None:
    result = accounted(MessageDecoder(SCHEMAS), value)
    (rejected,) = result.rejected
    assert (rejected.reason, rejected.raw, result.read) == ("empty_message", value, 1)


def oversized_checks(rejected: Rejected, raw: bytes, reason: str) -> None:
    assert rejected.reason == reason
    assert len(rejected.raw) <= RAW_COPY_BYTES and raw.startswith(rejected.raw)
    assert rejected.original_bytes == len(raw)
    assert f"{len(raw):,} bytes" in rejected.detail and hashlib.sha256(raw).hexdigest() in rejected.detail
    entry = entry_for(rejected)
    assert entry.raw is not None and entry.raw_original_bytes == len(raw)


def test_an_oversized_record_is_refused_unparsed_with_a_bounded_copy() -> None:
    decoder = MessageDecoder(SCHEMAS, max_record_bytes=200_000)
    big = json.dumps(with_props("DeviceProcessEvents", ProcessCommandLine="é" * 1_500_000), ensure_ascii=False).encode()
    value = b'{"records": [' + big + b", " + json.dumps(BY_TABLE["DeviceInfo"]).encode() + b"]}"
    tracemalloc.start()
    result = accounted(decoder, value)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert [r.table for r in result.rows] == ["DeviceInfo"]
    (rejected,) = result.rejected
    oversized_checks(rejected, big, "oversized_record")
    assert rejected.table == "DeviceProcessEvents"  # from the record's own bytes, without parsing it
    assert peak < 2.5 * len(value), f"peak {peak:,} bytes for a {len(value):,}-byte message"


def test_an_oversized_message_is_refused_unparsed_with_a_bounded_copy() -> None:
    decoder = MessageDecoder(SCHEMAS, max_message_bytes=1_000_000)
    value = envelope(*[BY_TABLE["DeviceInfo"]] * 2_000)
    tracemalloc.start()
    result = accounted(decoder, value)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    (rejected,) = result.rejected
    oversized_checks(rejected, value, "oversized_message")
    assert result.read == 1 and not result.rows
    assert peak < 1_048_576, f"peak {peak:,} bytes: the message was parsed"


def test_a_max_message_smaller_than_a_record_is_a_config_error() -> None:
    doc = base() | {"validation": {"max_record_bytes": 1_000_000, "max_message_bytes": 500_000}}
    with pytest.raises(ConfigError) as caught:
        parse_config(doc)
    (problem,) = caught.value.problems
    assert "validation.max_message_bytes (500000) is smaller than validation.max_record_bytes" in problem


@pytest.mark.parametrize(
    ("raw", "what"),
    [
        ("漢" * 400_000, "CJK"),
        ("\x01" * 1_100_000, "control characters"),
        ('"\\' * 300_000, "quotes and backslashes"),
        (b"\xff\xfe" * 400_000, "not UTF-8"),
    ],
)
def test_a_kafka_dead_letter_entry_is_fitted_by_its_encoded_size(raw: str | bytes, what: str) -> None:
    data = raw.encode() if isinstance(raw, str) else raw
    line = msgspec.json.encode(entry_for(Rejected(data, "DeviceInfo", "invalid_type", "x" * 5_000, None)))
    assert len(line) > 1_000_000, what
    fitted = fit_entry(line, 1_000_000)
    assert 900_000 < len(fitted) <= 1_000_000
    entry = msgspec.json.decode(fitted, type=DeadLetterEntry)
    kept = entry.raw.encode() if entry.raw is not None else base64.b64decode(entry.raw_base64 or "")
    assert data.startswith(kept) and entry.raw_original_bytes == len(data)
    assert hashlib.sha256(data).hexdigest() in entry.detail and len(entry.detail) <= MAX_DETAIL_CHARS
    small = msgspec.json.encode(entry_for(Rejected(b"{}", None, "not_an_object", "", None)))
    assert fit_entry(small, 1_000_000) is small


def test_bounded_labels_keep_the_first_values_and_count_the_rest_as_other() -> None:
    labels = BoundedLabels(2)
    assert labels.admit("a") == ("a", True) and labels.admit("a") == ("a", False)
    assert labels.admit("b" * 500) == ("b" * MAX_LABEL_CHARS, True)
    assert labels.admit("c") == (OTHER, True) and labels.admit("d") == (OTHER, False)
    assert len(labels) == 2


def test_replay_keeps_bounded_copies_as_they_are_and_survives_a_corrupt_file(tmp_path: Path) -> None:
    copy = Rejected(b'{"records": [', "DeviceInfo", "oversized_message", "cut", None, 9_000_000)
    record = Rejected(json.dumps(BY_TABLE["DeviceInfo"]).encode(), "DeviceInfo", "invalid_type", "", None)
    hostile = Rejected(b"{}", "Not<a>table" * 100, "rejected_by_service", "", None)
    lines = [msgspec.json.encode(entry_for(r)) for r in (copy, record, hostile)]
    lines.insert(1, b'{"time": "t", "reason": 1, "raw": [')  # a line that is no entry
    path = tmp_path / "dead-letter-x.jsonl.gz"
    path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    items = list(_messages(path))
    assert isinstance(items[0], Rejected) and items[0].original_bytes == 9_000_000 and items[0].raw == copy.raw
    assert [type(i).__name__ for i in items[1:]] == ["Message", "Message", "Message"]
    assert items[1].value == lines[1]  # type: ignore[union-attr]


async def test_replayed_bounded_copies_and_hostile_rows_are_accounted(tmp_path: Path) -> None:
    config = parse_config(base() | {"dead_letter": {"path": str(tmp_path)}})
    store = MemoryStore()
    flow = Flow(config, Metrics(), dead_letter=store)
    tracker = OffsetTracker()
    ticket = tracker.track(Position("replay", 0, 0))
    flow.dead_letter_again(
        Rejected(b"{", "DeviceInfo", "oversized_record", "d", SourceRef(ticket.position, 0), 5), ticket
    )
    ticket.sealed = True
    rows = tracker.track(Position("replay", 0, 1))
    flow.process_rows("DeviceInfo", [b"not json", b"[" * 5_000], rows)
    rows.sealed = True
    assert rows.pending == 2 and sum(len(b) for c in flow.batchers.values() for b in c.open_batches) == 2
    writer = asyncio.create_task(flow.dead_letter.run())
    await asyncio.wait_for(flow.dead_letter.drain(), 5)
    writer.cancel()
    (line,) = store.lines
    assert msgspec.json.decode(line, type=DeadLetterEntry).raw_original_bytes == 5 and ticket.done
    assert flow.metrics.total("ingestor_dead_lettered_events_total") == 1
