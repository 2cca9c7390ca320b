"""No input ends the process (DESIGN.md section 10), end to end on real parts.

Hostile messages and records sit between valid traffic on both partitions of a topic on the real broker, read by
`ingestor run` (a subprocess, from the installed package) against the HTTPS emulator provisioned for two
retention classes. The test proves that, after all of it:

* the process is still up, and exits 0 on SIGTERM;
* every valid row landed, in the table (and class) it belongs to, without columns outside the schema (and
  UnmappedColumns); records whose only fault is an unknown or badly named column land too, those columns' values
  in UnmappedColumns (the default `validation.unknown_columns: keep`), and deep JSON *text* stays a string;
* every hostile record is in the file dead letter at its topic, partition, offset and index, with its reason
  (`invalid_type`, `too_deeply_nested`, `malformed_json`, `empty_message`, `oversized_record`,
  `oversized_message`), its raw bytes, or for oversized input a bounded copy with the length and sha256; a bad
  record is dead-lettered alone and the valid records beside it land, also beside a record nested too deep to
  parse;
* every partition is committed to its end offset;
* records read = landed + dead-lettered + skipped, each as expected;
* `/metrics` stays bounded after thousands of distinct hostile column names and categories: at most 64 column
  labels per table plus `other` and `invalid_name`, at most 32 category labels plus `other`, no label value over
  64 characters, the body under 200 KB;
* the log stays bounded: no line over 4 KB, no hostile name logged more than once.

One run takes about 10 s; every expectation that fails is reported together, not only the first.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import random
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import msgspec
import pytest
from realparts import (
    IngestorProcess,
    committed_offsets,
    end_offsets,
    ingestor_config,
    metric_total,
    parse_metrics,
    provisioned_emulator,
    unique_names,
    use_provisioned,
)

from ingestor.sinks.dead_letter import DeadLetterEntry
from ingestor.sinks.dead_letter_file import read_dead_letters
from ingestor.tables import load_schemas
from ingestor_tools.generate import TrafficGenerator
from ingestor_tools.generate.sinks import ensure_topic
from ingestor_tools.generate.traffic import DEVICE_MIX

pytestmark = [pytest.mark.emulator, pytest.mark.process]

SCHEMAS = load_schemas()
ADDED_COLUMNS = {"TimeGenerated", "SourceTenantId", "RetentionTag", "UnmappedColumns"}
PARTITIONS = 2
MAX_RECORD_BYTES = 200_000
MAX_MESSAGE_BYTES = 1_000_000
COPY_LIMIT = 65_536  # a dead-letter entry of oversized input keeps at most this many bytes of it
LABEL_LIMIT = 64
COLUMN_LABELS = 64  # per table, plus `other` and `invalid_name`
CATEGORY_LABELS = 32  # plus `other`
METRICS_LIMIT = 200_000
LOG_LINE_LIMIT = 4_096
UNKNOWN_NAMES = 3_000
NAMES_PER_RECORD = 30
SKIP_FLOOD = 2_000
SKIPS_PER_MESSAGE = 100
# Column names no DCR can hold: a quote, a backslash, control characters.
BAD_NAMES = ('bad"name', "a\\b", "x\u0001y", "tab\tname", "line\nbreak", "unit\u001fsep")
# Valid characters, hostile lengths (fingerprint, full name).
LONG_NAMES = [(f"LongColumn{i:02d}", f"LongColumn{i:02d}" + "Z" * n) for i, n in enumerate((70, 300, 4_000, 10_000))]
BIG_CATEGORY = "AdvancedHunting-" + "Q" * 100_000
RETENTION = {
    "classes": {"default": {}, "archive": {"plan": "Auxiliary", "total_retention_days": 365}},
    "rules": [
        {"tables": ["DeviceNetworkEvents"], "when": {"column": "ActionType", "in": ["ConnectionSuccess"]},
         "class": "archive"},
    ],
}  # fmt: skip
_encode = msgspec.json.Encoder().encode
_PLACEHOLDER = "@@deep@@"


def kept(values: dict[str, Any]) -> Callable[[dict[str, Any]], bool]:
    """Whether a landed row keeps exactly `values` in UnmappedColumns (JSON text on an Auxiliary class)."""

    def check(row: dict[str, Any]) -> bool:
        unmapped = row.get("UnmappedColumns")
        return bool((json.loads(unmapped) if isinstance(unmapped, str) else unmapped) == values)

    return check


def deep_object(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def deep_array(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@dataclass(slots=True)
class Record:
    """One record (or a whole message that counts as one) and what must become of it."""

    raw: bytes
    outcome: str  # "land", "dead" or "skip"
    table: str = ""
    key: tuple[Any, ...] = ()
    reason: str = ""
    check: Callable[[dict[str, Any]], bool] | None = None  # on the landed row
    oversized: bool = False  # dead letter keeps a bounded copy, length and sha256


@dataclass(slots=True)
class Message:
    value: bytes | None
    records: list[Record]
    key: bytes | None = None


@dataclass
class Traffic:
    """Valid generated traffic with hostile messages between, per partition, and the expected outcome of each."""

    seed: int
    partitions: list[list[Message]] = field(default_factory=lambda: [[] for _ in range(PARTITIONS)])

    def __post_init__(self) -> None:
        self.gen = TrafficGenerator(seed=self.seed, devices=40)
        self.rng = random.Random(self.seed)
        self.unknown_values = 0  # values in columns not in the schema, all non-null
        self.invalid_name_values: Counter[str] = Counter()  # per table

    # -- records ----------------------------------------------------------------------------------------

    def record(self, table: str | None = None) -> dict[str, Any]:
        table = table or self.rng.choices(list(DEVICE_MIX), weights=list(DEVICE_MIX.values()))[0]
        return self.gen.record(table)

    @staticmethod
    def landing(record: dict[str, Any], check: Callable[[dict[str, Any]], bool] | None = None) -> Record:
        props = record["properties"]
        table = record["category"].removeprefix("AdvancedHunting-")
        key = (props["ReportId"], props["DeviceName"], props["Timestamp"])
        return Record(_encode(record), "land", table, key, check=check)

    def valid(self, table: str | None = None) -> Record:
        return self.landing(self.record(table))

    @staticmethod
    def dead(raw: bytes, reason: str, *, oversized: bool = False) -> Record:
        return Record(raw, "dead", reason=reason, oversized=oversized)

    def with_value(self, table: str, column: str, value: bytes) -> bytes:
        """A valid record of `table` whose `column` holds the JSON `value` (built as text: it may be too deep for
        any encoder)."""
        record = self.record(table)
        record["properties"][column] = _PLACEHOLDER
        return _encode(record).replace(b'"' + _PLACEHOLDER.encode() + b'"', value, 1)

    # -- messages ---------------------------------------------------------------------------------------

    def envelope(self, partition: int, records: list[Record], *, padding: bool = True) -> None:
        """`{"records":[...]}` of `records`, between valid records of random tables when `padding`."""
        if padding:
            records = [self.valid(), *records, self.valid()]
        body = b'{"records":[' + b",".join(r.raw for r in records) + b"]}"
        assert len(body) <= MAX_MESSAGE_BYTES or len(records) == 1
        self.partitions[partition].append(Message(body, records))

    def whole(self, partition: int, value: bytes | None, reason: str, *, key: bytes | None = None) -> None:
        """A message that is one dead-letter entry as a whole."""
        raw = value or b""
        self.partitions[partition].append(Message(value, [self.dead(raw, reason)], key))

    def valid_messages(self, partition: int, count: int) -> None:
        for _ in range(count):
            self.envelope(partition, [self.valid() for _ in range(self.rng.randint(3, 20))], padding=False)

    # -- the hostile inputs -----------------------------------------------------------------------------

    def hostile(self) -> list[Callable[[int], None]]:
        """Each item adds one hostile message to the partition it is given."""
        items: list[Callable[[int], None]] = [self.big_category]
        items += [partial(self.bad_name, name=name) for name in BAD_NAMES]
        names = [f"NewCol{i:04d}" for i in range(UNKNOWN_NAMES)] + [name for _, name in LONG_NAMES]
        self.rng.shuffle(names)
        chunks = [names[i : i + NAMES_PER_RECORD] for i in range(0, len(names), NAMES_PER_RECORD)]
        items += [partial(self.unknown_columns, batches=chunks[i : i + 10]) for i in range(0, len(chunks), 10)]
        items += [
            partial(self.deep_value, table=table, column=column, value=value)
            for table, column, value in (
                ("DeviceEvents", "AdditionalFields", deep_object(1_000)),
                ("DeviceEvents", "AdditionalFields", deep_array(5_000)),
                ("DeviceProcessEvents", "AdditionalFields", deep_object(5_000)),
                ("DeviceNetworkEvents", "AdditionalFields", deep_array(1_000)),
                ("DeviceInfo", "LoggedOnUsers", deep_array(5_000)),
            )
        ]
        items += [
            partial(self.deep_text, table=table, text=text.decode())
            for table, text in (
                ("DeviceEvents", deep_object(1_000)),
                ("DeviceFileEvents", deep_array(5_000)),
                ("DeviceNetworkEvents", deep_object(5_000)),  # its ActionType routes it to the Auxiliary class
            )
        ]
        items += [
            partial(self.action_type, value=["ConnectionSuccess"]),
            partial(self.action_type, value={"in": "ConnectionSuccess"}),
            partial(self.whole, value=b"this is not JSON {", reason="malformed_json"),
            self.latin1,
            partial(self.whole, value=b"\xff\xfe\x00\x80\xc3(", reason="malformed_json"),
            partial(self.whole, value=b"", reason="empty_message"),
            partial(self.whole, value=b" \r\n\t \n", reason="empty_message"),
            partial(self.whole, value=None, reason="empty_message", key=b"tombstone"),
            partial(self.whole, value=b'{"records":[]}', reason="empty_message"),
            self.oversized_record,
            self.oversized_message,
        ]
        flood = [f"AdvancedHunting-X{self.rng.getrandbits(64):016x}" for _ in range(SKIP_FLOOD)]
        for i in range(10):  # hostile characters in a few of them
            flood[i] += '"}\n\\ {le="1"}'[: i + 1]
        items += [
            partial(self.skipped, categories=flood[i : i + SKIPS_PER_MESSAGE])
            for i in range(0, SKIP_FLOOD, SKIPS_PER_MESSAGE)
        ]
        return items

    def latin1(self, partition: int) -> None:
        """A record as one line in Latin-1, not UTF-8."""
        text = _encode(self.record("DeviceEvents")).decode().replace("a", "\u00e4")
        self.whole(partition, text.encode("latin-1", errors="replace"), "malformed_json")

    def big_category(self, partition: int) -> None:
        record = self.record("DeviceEvents") | {"category": BIG_CATEGORY}
        self.envelope(partition, [Record(_encode(record), "skip")])

    def bad_name(self, partition: int, name: str) -> None:
        record = self.record()
        record["properties"][name] = "value"
        landed = self.landing(record, check=kept({name: "value"}))
        self.invalid_name_values[landed.table] += 1
        self.unknown_values += 1
        self.envelope(partition, [landed])

    def unknown_columns(self, partition: int, batches: list[list[str]]) -> None:
        records = []
        for names in batches:
            record = self.record()
            values = {name: f"value of {name[:20]}" for name in names}
            record["properties"] |= values
            self.unknown_values += len(names)
            records.append(self.landing(record, check=kept(values)))
        self.envelope(partition, records)

    def deep_value(self, partition: int, table: str, column: str, value: bytes) -> None:
        """Between two valid records, which land: the envelope is split by its brackets, not parsed."""
        self.envelope(partition, [self.dead(self.with_value(table, column, value), "too_deeply_nested")])

    def deep_text(self, partition: int, table: str, text: str) -> None:
        record = self.record(table)
        record["properties"]["AdditionalFields"] = text
        if table == "DeviceNetworkEvents":
            record["properties"]["ActionType"] = "ConnectionSuccess"
        self.envelope(partition, [self.landing(record, check=lambda row: row.get("AdditionalFields") == text)])

    def action_type(self, partition: int, value: Any) -> None:
        raw = self.with_value("DeviceNetworkEvents", "ActionType", _encode(value))
        self.envelope(partition, [self.dead(raw, "invalid_type")])

    def oversized_record(self, partition: int) -> None:
        raw = self.with_value("DeviceEvents", "ProcessCommandLine", _encode("A" * (MAX_RECORD_BYTES + 100_000)))
        self.envelope(partition, [self.dead(raw, "oversized_record", oversized=True)])

    def oversized_message(self, partition: int) -> None:
        raw = self.with_value("DeviceEvents", "ProcessCommandLine", _encode("B" * (MAX_MESSAGE_BYTES + 500_000)))
        body = b'{"records":[' + raw + b"]}"
        self.partitions[partition].append(Message(body, [self.dead(body, "oversized_message", oversized=True)]))

    def skipped(self, partition: int, categories: list[str]) -> None:
        base = self.record()  # a small one: a hundred of them stay far under the message limit
        base["properties"] = {k: base["properties"][k] for k in ("Timestamp", "DeviceId", "DeviceName", "ReportId")}
        records = [Record(_encode(base | {"category": category}), "skip") for category in categories]
        self.envelope(partition, records)

    def build(self) -> None:
        for index, add in enumerate(self.hostile()):
            partition = index % PARTITIONS
            self.valid_messages(partition, self.rng.randint(0, 2))
            add(partition)
        for partition in range(PARTITIONS):
            self.valid_messages(partition, 2)

    def records(self) -> list[Record]:
        return [r for messages in self.partitions for m in messages for r in m.records]


def produce(bootstrap: str, topic: str, traffic: Traffic) -> dict[tuple[int, int], Message]:
    """Create the topic, produce every partition's messages in order; the messages by (partition, offset)."""
    from aiokafka import AIOKafkaProducer

    async def run() -> dict[tuple[int, int], Message]:
        await ensure_topic(bootstrap, topic, PARTITIONS)
        # Large enough for the oversized message: the point is that the ingestor, not the producer, refuses it.
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=4 * 1_048_576, acks="all",
                                    linger_ms=5)  # fmt: skip
        await producer.start()
        try:
            sent = [
                (message, await producer.send(topic, message.value, key=message.key, partition=partition))
                for partition, messages in enumerate(traffic.partitions)
                for message in messages
            ]
            return {(md.partition, md.offset): message for message, future in sent for md in [await future]}
        finally:
            await producer.stop()

    return asyncio.run(run())


def raw_bytes(entry: DeadLetterEntry) -> bytes:
    return base64.b64decode(entry.raw_base64) if entry.raw_base64 is not None else (entry.raw or "").encode()


def log_text(line: str) -> str:
    """The string values of a JSON log line (escapes undone), else the line."""
    try:
        doc = json.loads(line)
    except ValueError:
        return line
    return "\n".join(str(v) for v in doc.values()) if isinstance(doc, dict) else line


class Problems(list[str]):
    """Failed expectations, collected so one run reports every property that does not hold."""

    def check(self, ok: object, what: str, detail: object = "") -> None:
        if not ok:
            self.append(f"{what}: {detail}" if detail != "" else what)


def test_hostile_input_ends_in_the_dead_letter_and_the_process_stays_up(kafka_bootstrap: str, tmp_path: Path) -> None:
    topic, group = unique_names()
    traffic = Traffic(seed=4242)
    traffic.build()
    positions = produce(kafka_bootstrap, topic, traffic)
    ends = end_offsets(kafka_bootstrap, topic)
    assert sum(ends.values()) == len(positions)
    records = traffic.records()
    landing = [r for r in records if r.outcome == "land"]
    dead = [r for r in records if r.outcome == "dead"]
    skips = [r for r in records if r.outcome == "skip"]

    emulator, provisioned = provisioned_emulator(tmp_path, RETENTION)
    try:
        config = ingestor_config(
            tmp_path,
            kafka_bootstrap,
            emulator,
            topic=topic,
            group=group,
            validation__max_record_bytes=MAX_RECORD_BYTES,
            validation__max_message_bytes=MAX_MESSAGE_BYTES,
        )
        use_provisioned(config, provisioned)
        ingestor = IngestorProcess(tmp_path, config)
        try:
            # Rows are counted before their offsets settle: once committed, every count is final.
            ingestor.wait_committed(topic, ends, timeout=75)
            assert ingestor.process.poll() is None, "the ingestor must still be running"
            assert ingestor.get("/healthz")[0] == 200
            status, metrics_text = ingestor.get("/metrics")
            assert status == 200
            (tmp_path / "metrics.txt").write_text(metrics_text)  # for a look after a failure
        finally:
            code = ingestor.terminate()
        log = ingestor.log()
        assert code == 0, log[-3000:]
        landed_by_table = {name: emulator.rows(name) for name in emulator.counts()}
    finally:
        emulator.stop()
    problems = Problems()

    # 1. offsets committed to the end of every partition, read back from the broker
    committed = committed_offsets(kafka_bootstrap, topic, group)
    problems.check(committed == ends, "committed offsets are not the end offsets", (committed, ends))

    # 2. every landing row landed, in its table and class, with schema columns only
    expected: dict[str, Counter[tuple[Any, ...]]] = defaultdict(Counter)
    for r in landing:
        expected[r.table][r.key] += 1
    got: dict[str, Counter[tuple[Any, ...]]] = defaultdict(Counter)
    rows_by_key: dict[tuple[Any, ...], dict[str, Any]] = {}
    misplaced: Counter[str] = Counter()  # destination table: rows with foreign columns, tag or class
    for name, rows in landed_by_table.items():
        table = name.removesuffix("_CL").removesuffix("_archive")
        assert table in SCHEMAS, name
        allowed = set(SCHEMAS[table].column_names) | ADDED_COLUMNS
        for row in rows:
            key = (row["ReportId"], row["DeviceName"], row["Timestamp"])
            got[table][key] += 1
            rows_by_key[key] = row
            tag = "archive" if table == "DeviceNetworkEvents" and row.get("ActionType") == "ConnectionSuccess" else ""
            where = f"{table}_{tag}_CL" if tag else f"{table}_CL"
            misplaced[name] += not set(row) <= allowed or row["RetentionTag"] != (tag or "default") or name != where
    misplaced = +misplaced
    problems.check(not misplaced, "rows with columns outside the schema, or in the wrong class", misplaced)
    missing = {t: sum((expected[t] - got[t]).values()) for t in expected if expected[t] - got[t]}
    extra = {t: sum((got[t] - expected[t]).values()) for t in got if got[t] - expected[t]}
    problems.check(not missing, "valid rows missing, per table", missing)
    problems.check(not extra, "rows landed that should not have, per table", extra)
    problems.check(landed_by_table.get("DeviceNetworkEvents_archive_CL"), "the retention rule routed no row")
    for r in landing:
        if r.check is not None and r.key in rows_by_key:
            problems.check(r.check(rows_by_key[r.key]), "landed row has the wrong value", (r.table, r.key))

    # 3. every hostile record in the dead letter at its position, with its reason and raw bytes
    entries = list(read_dead_letters(tmp_path / "dead-letter"))
    by_position = {(e.partition, e.offset, e.index or 0): e for e in entries}
    problems.check(len(by_position) == len(entries), "dead-letter entries at the same position")
    want = {
        (partition, offset, index): record
        for (partition, offset), message in positions.items()
        for index, record in enumerate(message.records)
        if record.outcome == "dead"
    }
    for position in sorted(want.keys() - by_position.keys()):
        problems.check(False, "not in the dead letter", (position, want[position].reason))
    for position in sorted(by_position.keys() - want.keys()):
        entry = by_position[position]
        problems.check(False, "dead-lettered, should not be", (position, entry.reason, entry.detail[:160]))
    for position in sorted(by_position.keys() & want.keys()):
        entry, record = by_position[position], want[position]
        problems.check(entry.reason == record.reason, f"dead letter at {position}: reason",
                       f"{entry.reason} ({entry.detail[:160]}), want {record.reason}")  # fmt: skip
        problems.check(entry.topic == topic, f"dead letter at {position}: topic", entry.topic)
        raw = raw_bytes(entry)
        if record.oversized:
            problems.check(len(raw) <= COPY_LIMIT and record.raw.startswith(raw),
                           f"{record.reason}: raw is not a bounded copy", len(raw))  # fmt: skip
            problems.check(entry.raw_original_bytes == len(record.raw), f"{record.reason}: raw_original_bytes",
                           (entry.raw_original_bytes, len(record.raw)))  # fmt: skip
            problems.check(str(len(record.raw)) in entry.detail.replace(",", "") and "sha256" in entry.detail
                           and hashlib.sha256(record.raw).hexdigest() in entry.detail,
                           f"{record.reason}: detail lacks the length or sha256", entry.detail)  # fmt: skip
        else:
            problems.check(raw == record.raw, f"{record.reason} at {position}: raw is not the record's bytes",
                           (len(raw), len(record.raw), raw[:80]))  # fmt: skip

    # 4. read = landed + dead-lettered + skipped, each what was sent
    samples = parse_metrics(metrics_text)

    def total(name: str, **labels: str) -> float:
        return metric_total(samples, name, **labels)

    read, accepted = total("ingestor_read_events_total"), total("ingestor_accepted_events_total")
    dead_lettered, skipped = total("ingestor_dead_lettered_events_total"), total("ingestor_skipped_events_total")
    problems.check(read == accepted + dead_lettered + skipped, "read != accepted + dead-lettered + skipped",
                   (read, accepted, dead_lettered, skipped))  # fmt: skip
    problems.check(read == len(records), "records read", (read, len(records)))
    problems.check(accepted == len(landing), "rows accepted", (accepted, len(landing)))
    problems.check(dead_lettered == len(dead), "records dead-lettered", (dead_lettered, len(dead)))
    problems.check(skipped == len(skips), "records skipped", (skipped, len(skips)))
    for reason, n in sorted(Counter(r.reason for r in dead).items()):
        counted = total("ingestor_dead_lettered_events_total", reason=reason)
        problems.check(counted == n, f"dead-lettered with reason {reason}", (counted, n))

    # 5. /metrics bounded after thousands of distinct hostile names
    size = len(metrics_text.encode())
    problems.check(size < METRICS_LIMIT, f"/metrics is {size} bytes, over {METRICS_LIMIT}")
    too_long = {v[:80] for (_, labels) in samples for _, v in labels if len(v) > LABEL_LIMIT}
    problems.check(not too_long, f"label values over {LABEL_LIMIT} characters", sorted(too_long)[:5])
    unknown = total("ingestor_unknown_columns_total")
    problems.check(unknown == traffic.unknown_values, "unknown column values counted",
                   (unknown, traffic.unknown_values))  # fmt: skip
    columns: dict[str, set[str]] = defaultdict(set)
    for name, labels in samples:
        if name == "ingestor_unknown_columns_total":
            columns[dict(labels)["table"]].add(dict(labels)["column"])
    for table, labels in sorted(columns.items()):
        n = len(labels - {"other", "invalid_name"})
        problems.check(n <= COLUMN_LABELS, f"{table}: {n} column labels besides other and invalid_name")
    for table, n in sorted(traffic.invalid_name_values.items()):
        counted = total("ingestor_unknown_columns_total", table=table, column="invalid_name")
        problems.check(counted >= n, f"{table}: invalid names counted under invalid_name", (counted, n))
    column_lines = [line for line in metrics_text.splitlines() if line.startswith("ingestor_unknown_columns_total{")]
    problems.check(len(column_lines) <= len(columns) * (COLUMN_LABELS + 2),
                   f"{len(column_lines)} ingestor_unknown_columns_total series for {len(columns)} tables")  # fmt: skip
    categories = {dict(labels)["category"] for (name, labels) in samples if name == "ingestor_skipped_events_total"}
    n = len(categories - {"other"})
    problems.check(n <= CATEGORY_LABELS and "other" in categories, f"{n} category labels besides other",
                   sorted(c[:40] for c in categories)[:5])  # fmt: skip
    skip_lines = [line for line in metrics_text.splitlines() if line.startswith("ingestor_skipped_events_total{")]
    problems.check(len(skip_lines) <= CATEGORY_LABELS + 1, f"{len(skip_lines)} ingestor_skipped_events_total series")

    # 6. the log bounded: no long line, no hostile name more than once
    lines = log.splitlines()
    long_lines = [(len(line.encode()), line[:160]) for line in lines if len(line.encode()) > LOG_LINE_LIMIT]
    problems.check(not long_lines, f"{len(long_lines)} log lines over {LOG_LINE_LIMIT} bytes", long_lines[:2])
    seen: Counter[str] = Counter()
    for text in map(log_text, lines):
        seen.update(set(re.findall(r"NewCol\d{4}|X[0-9a-f]{16}", text)))
        seen.update({name for name in BAD_NAMES if name in text})
        seen.update({mark for mark, _ in LONG_NAMES if mark in text})
        seen.update({"Q" * 40} if "Q" * 40 in text else set())
    repeated = {name[:40]: n for name, n in seen.items() if n > 1}
    problems.check(not repeated, f"{len(repeated)} hostile names logged more than once", list(repeated.items())[:5])

    assert not problems, f"{len(problems)} expectations failed:\n" + "\n".join(problems[:60])
