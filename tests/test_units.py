"""Offset tracker, batcher, gzip and dead letter: small parts with exact expectations."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
from pathlib import Path

import msgspec
import pytest

from ingestor.commit import OffsetTracker, Partition, Position
from ingestor.metrics import Metrics
from ingestor.models import FILL_TARGET, Batch, Destination, Rejected, SourceRef
from ingestor.pipeline.batch import Batcher
from ingestor.sinks.compress import gunzip, gzip_array
from ingestor.sinks.dead_letter import DeadLetterQueue, entry_for
from ingestor.sinks.dead_letter_file import DeadLetterFile, read_dead_letters

DEST = Destination("DeviceInfo", "dcr-" + "0" * 32, "Custom-DeviceInfo_CL", "DeviceInfo_CL")


def test_commits_advance_only_over_contiguous_done_messages() -> None:
    tracker = OffsetTracker()
    tracker.assigned([Partition("t", 0), Partition("t", 1)])
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
    tracker.assigned([Partition("t", 0)])
    ticket = tracker.track(Position("t", 0, 0))
    assert ticket.pending == 0 and tracker.committable() == {}
    ticket.sealed = True
    assert tracker.committable() == {Partition("t", 0): 1}


def test_only_owned_partitions_are_tracked_and_committed() -> None:
    tracker = OffsetTracker()
    p0, p1 = Partition("t", 0), Partition("t", 1)
    tracker.assigned([p0])
    stray = tracker.track(Position("t", 1, 5))  # a partition this process does not own
    stray.sealed = True
    assert tracker.committable() == {} and not tracker.owns(p1)
    first = tracker.track(Position("t", 0, 0))
    tracker.closing([p0])  # about to go: no new tickets, but what was taken can still be committed
    late = tracker.track(Position("t", 0, 1))
    first.sealed = late.sealed = True
    assert tracker.committable() == {p0: 1} and tracker.owns(p0)
    tracker.forget([p0])
    assert tracker.committable() == {} and not tracker.owns(p0) and tracker.open_messages() == 0


def test_a_partition_that_comes_back_starts_afresh() -> None:
    """Stale tickets of an earlier ownership never let a commit pass re-read messages still in flight."""
    tracker = OffsetTracker()
    p0 = Partition("t", 0)
    tracker.assigned([p0])
    stale = [tracker.track(Position("t", 0, offset)) for offset in (10, 11)]
    tracker.assigned([p0])  # revoked after a drain that timed out, then assigned again, without a forget between
    again = [tracker.track(Position("t", 0, offset)) for offset in (8, 9, 10, 11)]
    for ticket in stale:
        ticket.sealed = True
    again[0].sealed = True
    for ticket in again[1:]:
        ticket.sealed, ticket.pending = True, 1  # in flight
    assert tracker.committable() == {p0: 9}


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
    assert batcher.due(opened + 0.5) == []
    (batch,) = batcher.due(opened + 1.0)
    assert batch.rows == [b"{}"] and batcher.open_bytes == 0
    head, tail = Batch.of(DEST, [b"1", b"22", b"333"], [ticket] * 3).split(1)
    assert (head.rows, head.raw_bytes, tail.rows, tail.raw_bytes) == ([b"1"], 2, [b"22", b"333"], 7)
    batcher.add(b"4444", ticket)
    assert batcher.requeue(tail) is None
    (merged,) = batcher.close()
    assert merged.rows == [b"22", b"333", b"4444"] and merged.tickets == [ticket] * 3
    assert gunzip(gzip_array(merged.body)) == b"[22,333,4444]" and merged.raw_bytes == 12


def test_a_batch_body_gzips_to_a_json_array_of_its_rows() -> None:
    rows = [json.dumps({"i": i, "s": "é" * i}).encode() for i in range(100)]
    payload = gzip_array(Batch.of(DEST, rows, []).body, 1)
    assert payload[:2] == b"\x1f\x8b"
    assert json.loads(gzip.decompress(payload)) == [json.loads(r) for r in rows]
    assert gunzip(payload) == b"[" + b",".join(rows) + b"]"


def rejected(i: int, raw: bytes = b'{"x": 1}') -> Rejected:
    return Rejected(raw, "DeviceInfo", "invalid_type", f"detail {i}", SourceRef(Position("defender", 2, 100 + i), i))


def lines(*entries: Rejected) -> bytes:
    return b"".join(msgspec.json.encode(entry_for(r)) + b"\n" for r in entries)


def test_dead_letter_entries_survive_and_rotate(tmp_path: Path) -> None:
    file = DeadLetterFile(tmp_path, max_file_bytes=65_536)
    for i in range(300):
        file.append(lines(rejected(i, b'{"payload": "' + os.urandom(400).hex().encode() + b'"}')))
    file.append(lines(rejected(999, b"\xff\xfe not utf-8")))
    file.close()
    assert len(list(tmp_path.glob("dead-letter-*.jsonl.gz"))) > 1
    entries = list(read_dead_letters(tmp_path))
    assert len(entries) == 301
    assert [e.offset for e in entries[:3]] == [100, 101, 102]
    assert entries[0].reason == "invalid_type" and entries[0].table == "DeviceInfo" and entries[0].partition == 2
    assert entries[-1].raw is None and entries[-1].raw_base64 is not None


def test_dead_letter_reader_keeps_the_complete_members_of_a_torn_file(tmp_path: Path) -> None:
    file = DeadLetterFile(tmp_path)
    file.append(lines(rejected(0), rejected(1)))
    file.close()
    (path,) = tmp_path.glob("*.jsonl.gz")
    whole = gzip.compress(lines(rejected(2)))
    with path.open("ab") as out:
        out.write(whole[: len(whole) // 2])  # a crash in the middle of the next append
    assert [e.index for e in read_dead_letters(tmp_path)] == [0, 1]


class FailingStore:
    """Fails the first `failures` writes, then keeps what it is given."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.kept: list[bytes] = []

    async def write(self, lines: list[bytes]) -> None:
        if self.failures:
            self.failures -= 1
            raise OSError(28, "No space left on device")
        self.kept.extend(lines)

    async def close(self) -> None:
        return None


async def test_a_failing_dead_letter_is_backpressure_never_a_drop() -> None:
    metrics = Metrics()
    store = FailingStore(failures=3)
    queue = DeadLetterQueue(store, metrics, retry_secs=0.01)
    tracker = OffsetTracker()
    tracker.assigned([Partition("t", 0)])
    ticket = tracker.track(Position("t", 0, 0))
    ticket.pending, ticket.sealed = 2, True
    runner = asyncio.create_task(queue.run())
    queue.put([rejected(0), rejected(1)], [ticket, ticket])
    assert queue.pending_bytes > 0
    await asyncio.wait_for(queue.drain(), 10)
    runner.cancel()
    assert ticket.done and len(store.kept) == 2 and queue.pending_bytes == 0 and not queue.failing
    assert metrics.registry.get_sample_value("ingestor_dead_letter_write_errors_total") == 3
    assert metrics.registry.get_sample_value("ingestor_dead_letter_written_entries_total") == 2
    assert tracker.committable() == {Partition("t", 0): 1}


async def test_a_record_is_not_settled_while_its_dead_letter_write_fails() -> None:
    store = FailingStore(failures=10**9)
    metrics = Metrics()
    queue = DeadLetterQueue(store, metrics, retry_secs=0.01)
    ticket = OffsetTracker().track(Position("t", 0, 0))
    ticket.pending, ticket.sealed = 1, True
    runner = asyncio.create_task(queue.run())
    queue.put([rejected(0)], [ticket])
    while (metrics.registry.get_sample_value("ingestor_dead_letter_write_errors_total") or 0) < 5:
        await asyncio.sleep(0.01)
    assert not ticket.done and queue.failing.startswith("OSError") and queue.pending_bytes > 0
    runner.cancel()
