"""Offset tracker, batcher, gzip and dead letter: small parts with exact expectations."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest

from ingestor.commit import OffsetTracker
from ingestor.models import Batch, Destination, Partition, Position, Rejected, SourceRef
from ingestor.pipeline.batch import FILL_TARGET, Batcher
from ingestor.pipeline.compress import gunzip, gzip_rows
from ingestor.sinks.dead_letter import DeadLetterWriter, read_dead_letters

DEST = Destination("DeviceInfo", "dcr-" + "0" * 32, "Custom-DeviceInfo_CL", "DeviceInfo_CL")


def test_commits_advance_only_over_contiguous_done_messages() -> None:
    tracker = OffsetTracker()
    tickets = [tracker.track(Position("t", 0, offset)) for offset in range(5)]
    other = tracker.track(Position("t", 1, 70))
    for ticket in tickets:
        ticket.pending, ticket.sealed = 2, True
    other.sealed = True  # a message with no rows (all skipped) is done at once
    tickets[1].pending = 0
    tickets[2].pending = 0
    assert tracker.committable() == {Partition("t", 1): 71}
    tickets[0].pending = 1
    assert tracker.committable() == {}
    tickets[0].pending = 0
    assert tracker.committable() == {Partition("t", 0): 3}
    assert tracker.committable() == {}
    assert tracker.open_messages() == 2
    tracker.forget([Partition("t", 0)])
    assert tracker.open_messages() == 0


def test_unsealed_message_is_never_committable() -> None:
    tracker = OffsetTracker()
    ticket = tracker.track(Position("t", 0, 0))
    assert ticket.pending == 0 and tracker.committable() == {}
    ticket.sealed = True
    assert tracker.committable() == {Partition("t", 0): 1}


def test_batcher_closes_on_estimated_compressed_size_and_learns_the_ratio() -> None:
    batcher = Batcher(DEST, max_request_bytes=100_000, linger_secs=60)
    tracker = OffsetTracker()
    ticket = tracker.track(Position("t", 0, 0))
    row = b'{"DeviceName":"' + b"x" * 998 + b'"}'
    closed = [b for b in (batcher.add(row, ticket) for _ in range(2000)) if b is not None]
    first = closed[0]
    assert first.raw_bytes >= 100_000 * FILL_TARGET / 0.2  # initial ratio 0.2
    assert first.raw_bytes < 100_000 * FILL_TARGET / 0.2 + len(row) + 1
    batcher.observe(first.raw_bytes, first.raw_bytes / 10)  # type: ignore[arg-type]  # it compressed 10:1
    assert batcher.ratio == pytest.approx(0.2 + 0.3 * (0.1 - 0.2))


def test_batcher_linger_and_requeue() -> None:
    batcher = Batcher(DEST, max_request_bytes=1_000_000, linger_secs=1.0)
    ticket = OffsetTracker().track(Position("t", 0, 0))
    assert batcher.add(b"{}", ticket) is None
    opened = batcher._batch.opened_at
    assert batcher.due(opened + 0.5) is None
    batch = batcher.due(opened + 1.0)
    assert batch is not None and batch.rows == [b"{}"] and batcher.open_bytes == 0
    head, tail = Batch(DEST, [b"1", b"22", b"333"], [ticket] * 3, raw_bytes=9).split(1)
    assert (head.rows, head.raw_bytes, tail.rows, tail.raw_bytes) == ([b"1"], 2, [b"22", b"333"], 7)
    batcher.add(b"4444", ticket)
    assert batcher.requeue(tail) is None
    assert batcher.close().rows == [b"22", b"333", b"4444"]  # type: ignore[union-attr]


def test_gzip_rows_is_a_json_array() -> None:
    rows = [json.dumps({"i": i, "s": "é" * i}).encode() for i in range(100)]
    payload = gzip_rows(rows, 1)
    assert payload[:2] == b"\x1f\x8b"
    assert json.loads(gzip.decompress(payload)) == [json.loads(r) for r in rows]
    assert gunzip(payload) == b"[" + b",".join(rows) + b"]"


def rejected(i: int, raw: bytes = b'{"x": 1}') -> Rejected:
    return Rejected(raw, "DeviceInfo", "invalid_type", f"detail {i}", SourceRef(Position("defender", 2, 100 + i), i))


def test_dead_letter_entries_survive_sync_and_rotate(tmp_path: Path) -> None:
    writer = DeadLetterWriter(tmp_path, max_file_bytes=65_536)
    for i in range(300):
        writer.write([rejected(i, b'{"payload": "' + os.urandom(400).hex().encode() + b'"}')])
        if i % 50 == 0:
            writer.sync()
    writer.write([rejected(999, b"\xff\xfe not utf-8")])
    writer.close()
    assert len(list(tmp_path.glob("dead-letter-*.jsonl.gz"))) > 1
    entries = list(read_dead_letters(tmp_path))
    assert len(entries) == 301
    assert [e.offset for e in entries[:3]] == [100, 101, 102]
    assert entries[0].reason == "invalid_type" and entries[0].table == "DeviceInfo" and entries[0].partition == 2
    assert entries[-1].raw is None and entries[-1].raw_base64 is not None


def test_dead_letter_reader_keeps_synced_members_of_a_torn_file(tmp_path: Path) -> None:
    writer = DeadLetterWriter(tmp_path)
    writer.write([rejected(0), rejected(1)])
    writer.sync()
    writer.write([rejected(2)])
    writer._file.write(writer._compressor.flush(2))  # type: ignore[union-attr]  # Z_SYNC_FLUSH, then "crash"
    writer._file.flush()  # type: ignore[union-attr]
    assert [e.index for e in read_dead_letters(tmp_path)] == [0, 1]
