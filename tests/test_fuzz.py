"""Fuzz campaign: no input ends the process, every record is accounted for, shared state stays sound.

Properties checked for every generated message (random bytes, token soup, byte flips of the real samples, and
samples mutated with hostile keys, deep nesting, type swaps, huge strings and numbers, NaN/Infinity, lone
surrogates, invalid UTF-8, duplicate keys, hostile categories and envelopes; see fuzzing.py):

- `MessageDecoder.decode` never raises; `read == rows + rejected + skipped`; every row is one JSON object whose
  keys are columns of its table (UnmappedColumns included: a non-empty object, or JSON text on an Auxiliary
  destination or when cut to the field limit), with TimeGenerated and its table's required columns set, and
  every value of the JSON class of its column's type (type drift converted); conversions are counted under a
  table, a column of its schema and a known rule; every reject has a documented reason, a detail of at most
  1,000 characters, a bounded raw copy when oversized, a known table or none, and makes a dead-letter entry that
  encodes.
- Records whose typed columns hold Defender's own spellings of their values (`fuzzing.drifted`) all land, each
  value converted, each conversion counted once.
- After each hostile message the same decoder still turns the real samples into the very rows a fresh decoder
  makes (fast path, per-record path, one record per line).
- Through `Flow.process`: records read = rows in batches + entries written to the dead-letter store + skipped,
  by the metrics as well as by what was stored; tickets hold exactly the rows left in batches; metric label
  values stay bounded (unknown columns per table <= 66, skipped categories <= 33, converted values' columns of
  the schema and rules of spellings.RULES, no value over 64 characters).

Decoders run with `unknown_columns` keep (the default), drop and reject, small and default limits, and retention
routes whose predicates test a string column (ActionType) and a dynamic one (AdditionalFields) into an Auxiliary
class.

`make test` runs about 3,000 cases; `make fuzz` runs FUZZ_EXAMPLES (default 100,000) and prints the outcomes.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import random
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from fuzzing import KINDS, MESSAGES, OUTCOMES, SAMPLES, SCHEMAS, Case, drifted, dump, examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_config import base

from ingestor.commit import OffsetTracker, Position, Ticket
from ingestor.config import Config, parse_config
from ingestor.metrics import Metrics
from ingestor.models import Batch, Message, SourceRef
from ingestor.pipeline.decode import DecodeResult, MessageDecoder
from ingestor.pipeline.spellings import RULES
from ingestor.run.flow import Flow
from ingestor.sinks.dead_letter import DeadLetterEntry, entry_for

sys.set_int_max_str_digits(0)  # JSON puts no limit on digits; rows are read back with json.loads

REASONS = frozenset(
    {"malformed_json", "not_an_object", "invalid_envelope", "missing_required_column", "unknown_column",
     "invalid_type", "invalid_value", "oversized_record", "oversized_message", "empty_message",
     "too_deeply_nested", "internal_error"}
)  # fmt: skip
OVERSIZED = ("oversized_record", "oversized_message")
MAX_DETAIL_CHARS = 1_000
MAX_OVERSIZED_RAW = 65_536
NON_NULL = {table: ("TimeGenerated", *schema.required) for table, schema in SCHEMAS.items()}
COLUMNS = {table: frozenset({*schema.column_names, "UnmappedColumns"}) for table, schema in SCHEMAS.items()}
TYPES = {table: {c.name: c.type for c in schema.columns} for table, schema in SCHEMAS.items()}
# The JSON classes (as json.loads makes them) a row's value of each column type may have once sent.
ROW_CLASSES: dict[str, tuple[type, ...] | None] = {
    "string": (str,), "int": (int,), "long": (int,), "real": (int, float), "boolean": (bool,), "datetime": (str,),
    "guid": (str,), "dynamic": None,
}  # fmt: skip
MAX_COLUMN_LABELS = 66  # 64 names + `other` + `invalid_name`
MAX_CATEGORY_LABELS = 33
MAX_LABEL_CHARS = 64
POSITION = Position("defender", 3, 41)
SOURCE = SourceRef(POSITION, 0)
FUZZING = bool(os.environ.get("FUZZ_EXAMPLES"))

RETENTION = {
    "default_class": "hot",
    "classes": {"hot": {"plan": "Analytics"}, "archive": {"plan": "Auxiliary", "total_retention_days": 365}},
    "rules": [
        {"tables": ["DeviceNetworkEvents"], "when": {"column": "ActionType", "in": ["ConnectionSuccess"]},
         "class": "archive"},
        {"tables": ["DeviceEvents"], "when": {"column": "AdditionalFields", "in": ["x", 1]}, "class": "archive"},
        {"tables": ["DeviceProcessEvents"], "when": {"column": "ProcessId", "equals": 4}, "class": "archive"},
        {"tables": ["DeviceFileEvents"], "when": {"column": "FileName", "prefix": "a"}, "class": "archive"},
        {"tables": ["DeviceLogonEvents"], "when": {"column": "AccountName", "regex": "^adm"}, "class": "archive"},
    ],
}  # fmt: skip

settings.register_profile(
    "fuzz-quick",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
settings.register_profile("fuzz", settings.get_profile("fuzz-quick"), print_blob=True)
PROFILE = settings.get_profile("fuzz" if FUZZING else "fuzz-quick")


def config(unknown_columns: str = "keep", **validation: Any) -> Config:
    doc = base()  # the dead letter is a store in memory, never its path
    # A long linger: batches rarely close, and nothing is ever sent anyway.
    doc["sink"] |= {"credential": {"type": "static_token", "token": "t"}, "linger_secs": 300}
    return parse_config(
        doc | {"validation": {"unknown_columns": unknown_columns, **validation}, "retention": RETENTION}
    )


def decoder(**kwargs: Any) -> MessageDecoder:
    return MessageDecoder(SCHEMAS, **kwargs)


# -- the checks ----------------------------------------------------------------------------------------------


def decode(target: MessageDecoder, case: Case) -> DecodeResult:
    KINDS[case.kind] += 1
    try:
        result = target.decode(case.data, SOURCE)
    except BaseException as exc:
        OUTCOMES[f"decode raised {exc.__class__.__name__}"] += 1
        raise
    tally(result)
    return result


def tally(result: DecodeResult) -> None:
    OUTCOMES["row"] += len(result.rows)
    OUTCOMES.update(f"dead-lettered {r.reason}" for r in result.rejected)
    OUTCOMES["skipped"] += result.skipped.total()


def check_result(result: DecodeResult, source: SourceRef | None = SOURCE) -> None:
    assert result.read == len(result.rows) + len(result.rejected) + result.skipped.total(), (
        f"read {result.read} != {len(result.rows)} rows + {len(result.rejected)} rejected + {result.skipped} skipped"
    )
    for row in result.rows:
        check_row(row.destination.table, row.destination.retention_tag, row.body)
    for rejected in result.rejected:
        assert rejected.reason in REASONS, f"undocumented reason {rejected.reason!r}: {rejected.detail[:300]!r}"
        assert isinstance(rejected.raw, bytes)
        assert len(rejected.detail) <= MAX_DETAIL_CHARS, f"{rejected.reason} detail is {len(rejected.detail)} chars"
        if rejected.reason in OVERSIZED:
            assert len(rejected.raw) <= MAX_OVERSIZED_RAW, f"{rejected.reason} keeps {len(rejected.raw)} raw bytes"
        assert rejected.table is None or rejected.table in SCHEMAS, f"table {rejected.table[:100]!r}"
        if source is not None:
            assert rejected.source is not None and rejected.source.position == source.position
            assert rejected.source.index is not None and 0 <= rejected.source.index < max(result.read, 1)
        line = msgspec.json.encode(entry_for(rejected))  # what the dead letter writes must encode
        assert msgspec.json.decode(line, type=DeadLetterEntry).reason == rejected.reason
    for label, count in result.skipped.items():
        assert isinstance(label, str) and count > 0
    for (table, column, rule), count in result.converted.items():
        assert column in TYPES[table] and rule in RULES and count > 0, (table, column, rule)
    OUTCOMES.update({f"converted {rule}": n for (_, _, rule), n in result.converted.items()})


def check_row(table: str, retention_tag: str, body: bytes) -> None:
    # JSON's grammar, not a double's range: dynamic JSON text passes with numbers like 1e400 as written.
    row = json.loads(body)
    assert isinstance(row, dict), f"row is {type(row).__name__}"
    assert set(row) <= COLUMNS[table], f"columns not in {table}: {sorted(set(row) - COLUMNS[table])[:5]!r}"
    nulls = [c for c in NON_NULL[table] if row.get(c) is None]
    assert not nulls, f"{table} row without {nulls}"
    assert row["RetentionTag"] == retention_tag
    types = TYPES[table]
    for column, value in row.items():
        classes = ROW_CLASSES[types[column]] if column in types else None
        if classes is not None and value is not None:
            assert value.__class__ in classes, f"{table}.{column} ({types[column]}) holds {value!r:.80}"
    if "UnmappedColumns" in row:
        unmapped = row["UnmappedColumns"]
        assert (isinstance(unmapped, dict) and unmapped) or (isinstance(unmapped, str) and unmapped[:1] == "{")


class Baseline:
    """What a fresh decoder makes of the real samples: the same decoder must keep making it."""

    MESSAGES = (
        dump({"records": SAMPLES}),  # fast path
        dump({"records": [*SAMPLES, 5]}),  # per-record path (one record is not an object)
        b"\n".join(dump(r) for r in SAMPLES) + b"\n",  # one record per line
    )

    def __init__(self, **options: Any) -> None:
        self.expected = [self.outcome(decoder(**options), message) for message in self.MESSAGES]
        assert all(rows == len(SAMPLES) for rows, _ in (self.counts(e) for e in self.expected))

    @staticmethod
    def outcome(target: MessageDecoder, message: bytes) -> tuple[list[tuple[str, str, bytes]], list[str]]:
        result = target.decode(message)
        rows = [(r.destination.table, r.destination.retention_tag, r.body) for r in result.rows]
        return rows, [r.reason for r in result.rejected]

    @staticmethod
    def counts(expected: tuple[list[Any], list[str]]) -> tuple[int, int]:
        return len(expected[0]), len(expected[1])

    def check(self, target: MessageDecoder) -> None:
        for message, expected in zip(self.MESSAGES, self.expected, strict=True):
            actual = self.outcome(target, message)
            assert actual[1] == expected[1], f"samples now rejected: {actual[1]}"
            assert actual[0] == expected[0], "samples no longer decode to the rows a fresh decoder makes"


# -- decoder properties ----------------------------------------------------------------------------------------

# One decoder per configuration, shared across examples: learned columns, seen categories and any other state
# build up over the campaign, which is what the soundness check is about.
DECODERS = {
    "keep": {"max_message_bytes": 4_000_000},
    "drop": {"unknown_columns": "drop", "max_message_bytes": 4_000_000},
    "reject_small": {
        "unknown_columns": "reject",
        "max_record_bytes": 16_384,
        "max_field_bytes": 1_024,
        "max_message_bytes": 131_072,
    },
    "retention": {"routes": config().routes(), "max_message_bytes": 4_000_000},
}
SHARED = {name: (decoder(**options), Baseline(**options)) for name, options in DECODERS.items()}


@pytest.mark.parametrize(("name", "share"), [("keep", 0.2), ("drop", 0.1), ("reject_small", 0.15), ("retention", 0.2)])
def test_hostile_messages_are_accounted_for_and_leave_the_decoder_sound(name: str, share: float) -> None:
    target, baseline = SHARED[name]

    @settings(PROFILE, max_examples=examples(share))
    @given(case=MESSAGES)
    def run(case: Case) -> None:
        try:
            check_result(decode(target, case))
            baseline.check(target)
        except Exception as exc:
            raise AssertionError(f"{exc.__class__.__name__}: {exc} ({on_fresh_decoder(name, case)})") from exc

    run()


def on_fresh_decoder(name: str, case: Case) -> str:
    """Whether a failure needs the state earlier cases left behind: the case again, on a new decoder."""
    try:
        fresh = decoder(**DECODERS[name])
        check_result(fresh.decode(case.data, SOURCE))
        SHARED[name][1].check(fresh)
    except Exception as exc:
        return f"a fresh decoder fails too: {exc.__class__.__name__}: {str(exc)[:300]}"
    return "a fresh decoder passes: the failure needs state left by earlier cases"


# Every other table, left out as `schemas.tables` leaves tables out: their records are skipped in the typed pass.
CHOSEN = {table: SCHEMAS[table] for table in sorted(SCHEMAS)[::2]}


def test_hostile_messages_through_a_narrowed_selection_make_the_rows_the_whole_set_makes() -> None:
    """Whatever a message holds, a decoder of some tables reads as many records as a decoder of every table, accounts
    for each, and makes, for its tables, the rows the other makes: skipping the rest never changes what lands or
    loses a record, on either path."""
    narrowed = MessageDecoder(CHOSEN, max_message_bytes=4_000_000)
    whole = decoder(max_message_bytes=4_000_000)
    skipped = 0

    @settings(PROFILE, max_examples=examples(0.1))
    @given(case=MESSAGES)
    def run(case: Case) -> None:
        nonlocal skipped
        result = decode(narrowed, case)
        check_result(result)
        reference = whole.decode(case.data, SOURCE)
        assert result.read == reference.read, case
        rows = [(r.destination.table, r.body) for r in result.rows]
        expected = [(r.destination.table, r.body) for r in reference.rows]
        assert rows == [row for row in expected if row[0] in CHOSEN], case
        skipped += result.skipped.total()

    run()
    assert skipped, "no record of a table left out was met: the property was never tried"


@pytest.mark.parametrize(("name", "share"), [("keep", 0.05), ("retention", 0.05)])
def test_records_in_defenders_own_spellings_land_converted_and_counted(name: str, share: float) -> None:
    """The shared decoder, whatever earlier cases left in it: every record of Defender's type drift lands."""
    target = SHARED[name][0]

    @settings(PROFILE, max_examples=examples(share))
    @given(case=drifted())
    def run(case: tuple[list[dict[str, Any]], list[dict[str, tuple[Any, str]]]]) -> None:
        records, expected = case
        result = target.decode(dump({"records": records}), SOURCE)
        tally(result)
        check_result(result)
        assert not result.rejected, [(r.reason, r.detail) for r in result.rejected]
        counted: Counter[tuple[str, str, str]] = Counter()
        for row, record, changes in zip(result.rows, records, expected, strict=True):
            table = row.destination.table
            values = json.loads(row.body)
            for column, (value, rule) in changes.items():
                assert values.get(column) == value, (column, record["properties"][column])  # None: left out
                counted[(table, column, rule)] += 1
        assert result.converted == counted

    run()


def test_decoder_takes_the_documented_limits() -> None:
    """`max_message_bytes`: a larger message is one `oversized_message` reject with a bounded copy of its bytes."""
    limited = MessageDecoder(SCHEMAS, max_record_bytes=4096, max_field_bytes=1024, max_message_bytes=100_000)
    message = dump({"records": SAMPLES * 30})
    assert len(message) > 100_000
    result = limited.decode(message, SOURCE)
    check_result(result)
    assert [r.reason for r in result.rejected] == ["oversized_message"]


# -- the whole flow: decode -> batches and dead letter, with metrics ---------------------------------------------


class MemoryStore:
    """A dead-letter store that keeps the lines it was given."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []

    async def write(self, lines: list[bytes]) -> None:
        self.lines.extend(lines)

    async def close(self) -> None:
        pass


class FlowHarness:
    """A Flow on its own event loop whose dead-letter writer runs and whose batches are never sent."""

    def __init__(self, unknown_columns: str = "keep") -> None:
        self.loop = asyncio.new_event_loop()
        self.store = MemoryStore()
        self.metrics = Metrics()
        self.flow = Flow(config(unknown_columns), self.metrics, dead_letter=self.store)
        self.sent_rows = 0
        self.flow.delivery.submit = self._submit  # type: ignore[method-assign]  # count closed batches, drop them
        self.writer = self.loop.create_task(self.flow.dead_letter.run())
        self.tracker = OffsetTracker()
        self.offset = 0

    def _submit(self, batch: Batch | None) -> None:
        if batch is not None:
            self.sent_rows += len(batch)

    def batched_rows(self) -> int:
        return self.sent_rows + sum(len(b) for batcher in self.flow.batchers.values() for b in batcher.open_batches)

    def totals(self) -> tuple[float, float, float]:
        """Records read, dead-lettered and skipped: from their three counters (collecting them all is slow)."""
        m = self.metrics
        read, dead, skipped = (
            sum(s.value for family in counter.collect() for s in family.samples if s.name == f"{family.name}_total")
            for counter in (m.events_read, m.events_dead_lettered, m.events_skipped)
        )
        return read, dead, skipped

    def process(self, values: list[bytes]) -> None:
        """Process one fetched batch of messages and check that every record ended somewhere."""
        read0, dead0, skipped0 = self.totals()
        rows0, lines0 = self.batched_rows(), len(self.store.lines)
        tickets: list[Ticket] = []

        def track(position: Position, created_at: float | None) -> Ticket:
            tickets.append(ticket := self.tracker.track(position, created_at))
            return ticket

        messages = [Message(v, Position("defender", 0, self.offset + i)) for i, v in enumerate(values)]
        self.offset += len(values)
        try:
            self.flow.process(messages, track)
        except BaseException as exc:
            OUTCOMES[f"flow raised {exc.__class__.__name__}"] += 1
            raise
        self.loop.run_until_complete(asyncio.wait_for(self.flow.dead_letter.drain(), 30))
        read, dead, skipped = (b - a for a, b in zip((read0, dead0, skipped0), self.totals(), strict=True))
        rows, lines = self.batched_rows() - rows0, self.store.lines[lines0:]
        assert read == rows + len(lines) + skipped, (
            f"read {read} != {rows} rows in batches + {len(lines)} dead-lettered + {skipped} skipped"
        )
        assert dead == len(lines), f"{dead} counted dead-lettered, {len(lines)} written"
        assert all(t.sealed for t in tickets)
        assert sum(t.pending for t in tickets) == rows, "tickets must wait for exactly the rows still in batches"
        for line in lines:
            entry = msgspec.json.decode(line, type=DeadLetterEntry)
            assert entry.reason in REASONS and len(entry.detail) <= MAX_DETAIL_CHARS
            assert entry.topic == "defender" and entry.offset is not None and entry.offset < self.offset
            OUTCOMES[f"flow dead-lettered {entry.reason}"] += 1
        OUTCOMES["flow row"] += rows
        OUTCOMES["flow skipped"] += int(skipped)
        check_labels(self.metrics)

    def close(self) -> None:
        self.writer.cancel()
        self.loop.run_until_complete(asyncio.gather(self.writer, return_exceptions=True))
        self.loop.close()


def check_labels(metrics: Metrics) -> None:
    columns: defaultdict[str, set[str]] = defaultdict(set)
    categories: set[str] = set()
    for metric in metrics.registry.collect():
        for sample in metric.samples:
            for label, value in sample.labels.items():
                assert len(value) <= MAX_LABEL_CHARS, f"{sample.name}{{{label}}} is {len(value)} chars: {value[:80]!r}"
            if sample.name == "ingestor_unknown_columns_total":
                columns[sample.labels["table"]].add(sample.labels["column"])
            elif sample.name == "ingestor_skipped_events_total":
                categories.add(sample.labels["category"])
            elif sample.name == "ingestor_values_converted_total":
                table, column, rule = sample.labels["table"], sample.labels["column"], sample.labels["rule"]
                assert column in TYPES[table] and rule in RULES, (table, column, rule)
    for table, names in columns.items():
        assert len(names) <= MAX_COLUMN_LABELS, f"{len(names)} column labels for {table[:80]!r}"
    assert len(categories) <= MAX_CATEGORY_LABELS, f"{len(categories)} category labels"


@pytest.fixture(scope="module")
def harness() -> Iterator[FlowHarness]:
    flow = FlowHarness()
    yield flow
    flow.close()


def test_hostile_messages_through_the_flow_end_in_batches_dead_letter_or_skips(harness: FlowHarness) -> None:
    @settings(PROFILE, max_examples=examples(0.35))
    @given(cases=st.lists(MESSAGES, min_size=1, max_size=3))
    def run(cases: list[Case]) -> None:
        KINDS.update(f"flow {c.kind}" for c in cases)
        harness.process([c.data for c in cases])

    run()
    # The flow's decoder, after all that, still makes the rows of the real samples.
    Baseline(routes=harness.flow.routes).check(harness.flow.decoder)


@pytest.mark.parametrize("unknown_columns", ["keep", "drop", "reject"])
def test_metric_labels_stay_bounded_after_thousands_of_hostile_names_and_categories(unknown_columns: str) -> None:
    """3,000 distinct new column names (valid ones, hostile ones, long ones) and 3,000 distinct categories."""
    rng = random.Random(20260718)
    alphabet = '"\\\x00\x1f\x7féü😀\u2028abcXYZ .$`[]{}'

    def junk(longest: int) -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, longest)))

    harness = FlowHarness(unknown_columns)
    try:
        for start in range(0, 3000, 100):
            values = []
            for i in range(start, start + 100):
                record = copy.deepcopy(SAMPLES[i % len(SAMPLES)])
                name = (f"NewColumn{i}", f"{junk(200)}{i}", f"Column{'x' * 60}{i}", f"{i}")[i % 4]
                record["properties"][name] = i
                category = (f"AdvancedHunting-Table{i}", f"AdvancedHunting-{junk(300)}{i}", f"{junk(80)}{i}")[i % 3]
                values.append(json.dumps({"records": [record, {"category": category, "properties": {}}]}).encode())
            harness.process(values)
        check_labels(harness.metrics)
        assert harness.metrics.total("ingestor_skipped_events_total") == 3000
        assert harness.metrics.total("ingestor_unknown_columns_total") == 3000, "every unknown column is counted"
        rows = harness.batched_rows()
        assert rows == (0 if unknown_columns == "reject" else 3000)
    finally:
        harness.close()


# -- the tally ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def outcome_report(pytestconfig: pytest.Config) -> Iterator[None]:
    """Under `make fuzz`, print what the campaign made of its cases when the module is done."""
    yield
    if not FUZZING:
        return
    lines = ["", "fuzz campaign: cases by kind"]
    lines += [f"  {count:>9,}  {kind}" for kind, count in sorted(KINDS.items())]
    lines += [f"  {KINDS.total():>9,}  cases in all", "outcomes"]
    lines += [f"  {count:>9,}  {outcome}" for outcome, count in sorted(OUTCOMES.items())]
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print("\n".join(lines))
