"""Auxiliary destinations: TimeGenerated with six decimals, and no request spanning 30 minutes of it.

Destinations come from a real configuration (a retention class with `plan: Auxiliary`); records are the captured
samples with their times moved around.
"""

from __future__ import annotations

import asyncio
import copy
import json
import random
import re
import time
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from fakes import RecordingUploader

from ingestor.commit import OffsetTracker, Partition, Position, Ticket
from ingestor.config import Config, parse_config
from ingestor.metrics import Metrics
from ingestor.models import AUXILIARY_WINDOW_SECS, Batch, Destination, Message
from ingestor.pipeline.batch import MAX_OPEN_WINDOWS, Batcher, WindowedBatcher, batcher_for
from ingestor.pipeline.decode import UNKNOWN_WINDOW, MessageDecoder, auxiliary_time
from ingestor.run.flow import Flow, cancel
from ingestor.tables import load_schemas
from ingestor_tools import SAMPLES_DIR

KINDS = {table: {(c.name, c.type) for c in schema.columns} for table, schema in load_schemas().items()}
SAMPLES = {
    r["category"].removeprefix("AdvancedHunting-"): r
    for path in sorted(SAMPLES_DIR.glob("*.json"))
    for r in json.loads(path.read_text())
}
AUXILIARY_TABLES = ("DeviceProcessEvents", "DeviceNetworkEvents")
RETENTION = {
    "default_class": "hot",
    "classes": {"hot": {"plan": "Analytics"}, "archive": {"plan": "Auxiliary", "total_retention_days": 365}},
    "rules": [
        {"tables": ["DeviceNetworkEvents"], "when": {"column": "ActionType", "equals": "ConnectionFailed"},
         "class": "hot"},
        {"tables": list(AUXILIARY_TABLES), "class": "archive"},
    ],
}  # fmt: skip
SIX_DECIMALS = re.compile(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z\Z")
START = datetime(2026, 7, 18, 3, 0, tzinfo=UTC)
SPAN = timedelta(hours=12)


def config(tmp_path: Path, **sink: Any) -> Config:
    return parse_config(
        {
            "source": {"bootstrap_servers": ["k:9092"], "topics": ["defender"], "group_id": "g"},
            "sink": {
                "endpoint": "https://x.example",
                "rule_id": "dcr-" + "0" * 32,
                "credential": {"type": "static_token", "token": "t"},
                **sink,
            },
            "dead_letter": {"path": str(tmp_path / "dead-letter")},
            "retention": RETENTION,
        }
    )


def destination(cfg: Config, table: str, tag: str) -> Destination:
    (found,) = [d for d in cfg.routes()[table].destinations if d.retention_tag == tag]
    return found


def render(moment: datetime, seventh: int, digits: int, offset_minutes: int) -> str:
    """`moment` as Defender might write it: `digits` fractional digits (0-7), `Z` or a `+hh:mm` offset."""
    local = moment.astimezone(timezone(timedelta(minutes=offset_minutes)))
    fraction = f"{local.microsecond:06d}{seventh}"[:digits]
    sign, minutes = ("+" if offset_minutes >= 0 else "-"), abs(offset_minutes)
    suffix = "Z" if offset_minutes == 0 else f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"
    return f"{local:%Y-%m-%dT%H:%M:%S}{'.' + fraction if digits else ''}{suffix}"


def expected_time_generated(moment: datetime, digits: int) -> str:
    """What an Auxiliary row must carry: UTC, the digits given, cut or padded to exactly six."""
    kept = f"{moment.microsecond:06d}"[: min(digits, 6)].ljust(6, "0")
    return f"{moment.replace(microsecond=int(kept)):%Y-%m-%dT%H:%M:%S.%f}Z"


def records(count: int, seed: int) -> tuple[list[dict[str, Any]], dict[int, str]]:
    """`count` records cycling through the tables, times spread over SPAN in shuffled order, ReportId = index.

    Returns the records and, by ReportId, the TimeGenerated an Auxiliary row of that record must have.
    """
    rng = random.Random(seed)
    # The tables whose ReportId is a long and that have a DeviceName, which the records are keyed and padded by.
    tables = sorted(t for t in SAMPLES if {("ReportId", "long"), ("DeviceName", "string")} <= KINDS[t])
    out, expected = [], {}
    moments = [START + timedelta(microseconds=rng.randrange(int(SPAN.total_seconds() * 1e6))) for _ in range(count)]
    rng.shuffle(moments)
    for index, moment in enumerate(moments):
        record = copy.deepcopy(SAMPLES[tables[index % len(tables)]])
        digits, offset = rng.randrange(8), rng.choice((0, 0, 120, -300, 330))
        props = record["properties"]
        props["Timestamp"] = render(moment, rng.randrange(10), digits, offset)
        props["ReportId"] = index
        if record["category"].endswith("NetworkEvents"):
            props["ActionType"] = rng.choice(("ConnectionSuccess", "ConnectionFailed"))
        # Incompressible bytes of varying length, so that the size estimate overshoots and the sink trims.
        props["DeviceName"] = f"host-{rng.randbytes(rng.randrange(50, 600)).hex()}.contoso.com"
        out.append(record)
        expected[index] = expected_time_generated(moment, digits)
    return out, expected


def messages(recs: list[dict[str, Any]], seed: int) -> list[Message]:
    """Envelopes of 1-40 records; every seventh also holds a record of a table we skip (the per-record path)."""
    rng = random.Random(seed)
    out, start = [], 0
    while start < len(recs):
        chunk = recs[start : start + rng.randrange(1, 41)]
        start += len(chunk)
        if len(out) % 7 == 0:
            chunk = [*chunk, {"category": "AdvancedHunting-DeviceTvmSoftwareInventory", "properties": {}}]
        out.append(Message(json.dumps({"records": chunk}).encode(), Position("defender", 0, len(out))))
    return out


def epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


async def test_no_auxiliary_request_spans_30_minutes_on_shuffled_input_and_every_row_lands_once(
    tmp_path: Path,
) -> None:
    cfg = config(tmp_path, max_request_bytes=16_384, linger_secs=300)
    recs, expected = records(6000, seed=20260718)
    msgs = messages(recs, seed=7)
    sink = RecordingUploader()
    flow = Flow(cfg, Metrics(), uploader=sink)
    tracker = OffsetTracker()
    tracker.assigned([Partition("defender", 0)])
    workers = asyncio.create_task(flow.delivery.run())
    writer = asyncio.create_task(flow.dead_letter.run())
    try:
        for start in range(0, len(msgs), 50):
            flow.process(msgs[start : start + 50], tracker.track)
            await asyncio.sleep(0)  # let uploads run, as the source loop does
        assert await flow.drain(60)
    finally:
        await cancel(workers)
        await cancel(writer)

    landed: Counter[int] = Counter()
    auxiliary_ids: set[int] = set()
    auxiliary_requests = 0
    seen_windows: set[int] = set()
    for dest, rows in sink.requests:
        landed.update(row["ReportId"] for row in rows)
        assert {row["RetentionTag"] for row in rows} == {dest.retention_tag}
        if dest.plan != "Auxiliary":
            assert all(row["TimeGenerated"] == row["Timestamp"] for row in rows)
            continue
        times = [row["TimeGenerated"] for row in rows]
        for row in rows:
            assert SIX_DECIMALS.match(row["TimeGenerated"]), row["TimeGenerated"]
            assert row["TimeGenerated"] == expected[row["ReportId"]]
            assert row["Timestamp"] == recs[row["ReportId"]]["properties"]["Timestamp"]  # kept as received
        assert max(map(epoch, times)) - min(map(epoch, times)) < AUXILIARY_WINDOW_SECS
        request_windows = {int(epoch(t) // AUXILIARY_WINDOW_SECS) for t in times}
        assert len(request_windows) == 1
        seen_windows |= request_windows
        auxiliary_ids.update(row["ReportId"] for row in rows)
        auxiliary_requests += 1
    assert landed == Counter(range(len(recs)))  # every row exactly once
    routed_auxiliary = {
        i
        for i, r in enumerate(recs)
        if r["category"] == "AdvancedHunting-DeviceProcessEvents"
        or (
            r["category"] == "AdvancedHunting-DeviceNetworkEvents"
            and r["properties"]["ActionType"] != "ConnectionFailed"
        )
    }
    assert auxiliary_ids == routed_auxiliary
    # The input really was out of order over more windows than may be open at once, in many requests each.
    assert len(seen_windows) == SPAN / timedelta(seconds=AUXILIARY_WINDOW_SECS) > MAX_OPEN_WINDOWS
    assert auxiliary_requests > 2 * len(seen_windows)
    # Some batches overshot the request limit and had their tails put back into their windows.
    splits = [
        flow.metrics.registry.get_sample_value(
            "ingestor_batch_splits_total", {"destination": dest.label, "reason": "estimate"}
        )
        for dest in flow.batchers
        if dest.plan == "Auxiliary"
    ]
    assert sum(s or 0 for s in splits) > 0
    assert tracker.committable() == {Partition("defender", 0): len(msgs)}


def ticket() -> Ticket:
    return Ticket(Position("t", 0, 0), 0.0)


def test_an_auxiliary_batcher_keeps_at_most_max_windows_open_and_closes_the_first_opened(tmp_path: Path) -> None:
    dest = destination(config(tmp_path), "DeviceProcessEvents", "archive")
    batcher = batcher_for(dest, max_request_bytes=1_000_000, linger_secs=60)
    assert isinstance(batcher, WindowedBatcher) and batcher.max_windows == MAX_OPEN_WINDOWS
    windows = random.Random(3).sample(range(1000, 2000), MAX_OPEN_WINDOWS)
    for window in windows:
        assert batcher.add(f'{{"w":{window}}}'.encode(), ticket(), window) is None
    # More rows for open windows, the first opened included, open nothing new.
    assert batcher.add(b'{"again":1}', ticket(), windows[0]) is None
    assert batcher.add(b'{"again":2}', ticket(), windows[5]) is None
    assert len(batcher.open_batches) == MAX_OPEN_WINDOWS
    closed = batcher.add(b'{"new":1}', ticket(), 5)
    assert closed is not None and closed.window == windows[0]
    assert closed.rows == [f'{{"w":{windows[0]}}}'.encode(), b'{"again":1}']
    assert [b.window for b in batcher.open_batches] == [*windows[1:], 5]
    assert batcher.open_bytes == sum(b.raw_bytes for b in batcher.open_batches) > 0
    # The next new window closes the next first-opened one.
    closed = batcher.add(b'{"new":2}', ticket(), 6)
    assert closed is not None and closed.window == windows[1]
    everything = batcher.close()
    assert sorted(b.window for b in everything) == sorted([*windows[2:], 5, 6]) and batcher.open_bytes == 0


def test_an_auxiliary_tail_goes_back_into_its_own_window_and_due_returns_every_lingering_window(
    tmp_path: Path,
) -> None:
    dest = destination(config(tmp_path), "DeviceNetworkEvents", "archive")
    batcher = batcher_for(dest, max_request_bytes=1_000_000, linger_secs=10)
    for window in (1, 2, 3):
        batcher.add(f'{{"w":{window}}}'.encode(), ticket(), window)
    started = time.monotonic()
    sent = Batch.of(dest, [b'{"a":2}', b'{"b":2}', b'{"c":2}'], [ticket()] * 3, opened_at=started, window=2)
    head, tail = sent.split(1)
    assert (head.window, tail.window) == (2, 2)
    assert batcher.requeue(tail) is None
    by_window = {b.window: b.rows for b in batcher.open_batches}
    assert by_window == {1: [b'{"w":1}'], 2: [b'{"b":2}', b'{"c":2}', b'{"w":2}'], 3: [b'{"w":3}']}
    # A tail whose window has closed since opens that window again.
    assert batcher.requeue(Batch.of(dest, [b'{"d":9}'], [ticket()], opened_at=started, window=9)) is None
    assert [b.window for b in batcher.open_batches] == [1, 2, 3, 9]
    opened = [b.opened_at for b in batcher.open_batches]
    assert batcher.due(min(opened) + 9.9) == []
    assert sorted(b.window for b in batcher.due(max(opened) + 10)) == [1, 2, 3, 9]
    assert batcher.open_batches == [] and batcher.open_bytes == 0


def test_analytics_destinations_put_rows_of_any_time_into_one_batch(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    decoder = MessageDecoder(load_schemas(), routes=cfg.routes())
    recs, _ = records(300, seed=11)
    hot = [r for r in recs if r["category"] == "AdvancedHunting-DeviceInfo"]
    rows = decoder.decode(json.dumps({"records": hot}).encode()).rows
    (dest,) = {row.destination for row in rows}
    assert dest.plan == "Analytics" and {row.window for row in rows} == {0}
    batcher = batcher_for(dest, max_request_bytes=1_000_000, linger_secs=60)
    assert type(batcher) is Batcher
    assert [batcher.add(row.body, ticket(), row.window) for row in rows] == [None] * len(rows)
    (batch,) = batcher.close()
    bodies = [json.loads(row) for row in batch.rows]
    assert [b["ReportId"] for b in bodies] == [r["properties"]["ReportId"] for r in hot]
    times = [epoch(b["TimeGenerated"]) for b in bodies]
    assert max(times) - min(times) > 6 * AUXILIARY_WINDOW_SECS  # hours apart, one batch
    assert all(b["TimeGenerated"] == b["Timestamp"] for b in bodies)  # sent as received


def test_auxiliary_time_renders_utc_with_six_decimals_and_the_half_hour_window() -> None:
    assert auxiliary_time("2026-07-18T10:58:27.3137769Z") == ("2026-07-18T10:58:27.313776Z", 991317)
    assert auxiliary_time("2026-07-18T10:29:59Z") == ("2026-07-18T10:29:59.000000Z", 991316)
    assert auxiliary_time("2026-07-18T16:00:00.5+05:30") == ("2026-07-18T10:30:00.500000Z", 991317)
    assert auxiliary_time("2026-07-18T05:30:00-05:00")[0] == "2026-07-18T10:30:00.000000Z"
    assert datetime(2026, 7, 18, 10, 30, tzinfo=UTC).timestamp() == 991317 * AUXILIARY_WINDOW_SECS
    # The format check passes these, but they are no time: they stay as they are, apart from real windows.
    assert auxiliary_time("2026-02-30T00:00:00Z") == ("2026-02-30T00:00:00Z", UNKNOWN_WINDOW)
    assert auxiliary_time("0000-01-01T00:00:00Z") == ("0000-01-01T00:00:00Z", UNKNOWN_WINDOW)


@pytest.mark.parametrize("tag", ["archive", "gone"])
def test_replayed_auxiliary_rows_go_into_the_window_of_their_time_generated(tmp_path: Path, tag: str) -> None:
    flow = Flow(config(tmp_path), Metrics())
    times = ["2026-07-18T10:59:59.999999Z", "2026-07-18T10:00:00.000000Z", "2026-07-18T11:00:00.000000Z",
             "2026-07-18T08:10:00.000000Z", "2026-07-18T10:30:00.000001Z"]  # fmt: skip
    rows = [json.dumps({"RetentionTag": tag, "TimeGenerated": t, "ReportId": i}).encode() for i, t in enumerate(times)]
    rows.append(json.dumps({"RetentionTag": tag, "ReportId": 99}).encode())  # no TimeGenerated
    hot = [
        json.dumps({"RetentionTag": "hot", "TimeGenerated": t, "ReportId": 50 + i}).encode()
        for i, t in enumerate(times)
    ]
    flow.process_rows("DeviceNetworkEvents", rows + hot, ticket())
    batchers = {d.retention_tag: b for d, b in flow.batchers.items() if d.table == "DeviceNetworkEvents"}
    # An unknown tag goes where a row matching no predicate goes: the Auxiliary `archive` here.
    archive = {b.window: [json.loads(r)["ReportId"] for r in b.rows] for b in batchers["archive"].open_batches}
    assert archive == {
        int(epoch("2026-07-18T10:30:00Z") // AUXILIARY_WINDOW_SECS): [0, 4],
        int(epoch("2026-07-18T10:00:00Z") // AUXILIARY_WINDOW_SECS): [1],
        int(epoch("2026-07-18T11:00:00Z") // AUXILIARY_WINDOW_SECS): [2],
        int(epoch("2026-07-18T08:00:00Z") // AUXILIARY_WINDOW_SECS): [3],
        UNKNOWN_WINDOW: [99],
    }
    (hot_batch,) = batchers["hot"].open_batches
    assert hot_batch.rows == hot


@pytest.mark.parametrize("sent", ["json_text", "object"])
def test_dynamic_columns_go_to_auxiliary_tables_as_json_text(tmp_path: Path, sent: str) -> None:
    cfg = config(tmp_path)
    record = copy.deepcopy(SAMPLES["DeviceProcessEvents"])
    text = record["properties"]["AdditionalFields"]
    if sent == "object":
        record["properties"]["AdditionalFields"] = json.loads(text)
    decoder = MessageDecoder(load_schemas(), routes=cfg.routes())
    (archived,) = decoder.decode(json.dumps({"records": [record]}).encode()).rows
    assert archived.destination.auxiliary
    value = json.loads(archived.body)["AdditionalFields"]
    assert isinstance(value, str) and json.loads(value) == json.loads(text)
    analytics = MessageDecoder(load_schemas())  # default routes: Analytics
    (row,) = analytics.decode(json.dumps({"records": [record]}).encode()).rows
    assert json.loads(row.body)["AdditionalFields"] == json.loads(text)
