"""The file dead letter's total size cap (`dead_letter.max_total_bytes`) and the rights of its files.

When the cap is reached the store refuses the write and deletes nothing; the queue keeps the entries and retries
(the source pauses, `/readyz` says the dead letter is full) until files are moved away. Files are created 0600.
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from fakes import StillSource

from ingestor.commit import Position, Ticket
from ingestor.config import parse_config
from ingestor.metrics import Metrics
from ingestor.models import Rejected, SourceRef
from ingestor.run.app import Ingestor
from ingestor.sinks.dead_letter import DeadLetterQueue, entry_for
from ingestor.sinks.dead_letter_file import DeadLetterFile, DeadLetterFull, FileStore, read_dead_letters

RULE = "dcr-" + "ab" * 16


def rejected(i: int) -> Rejected:
    raw = b'{"payload": "' + os.urandom(600).hex().encode() + b'"}'  # incompressible: sizes add up
    return Rejected(raw, "DeviceInfo", "invalid_type", f"detail {i}", SourceRef(Position("defender", 0, i), 0))


def lines(*entries: Rejected) -> bytes:
    return b"".join(msgspec.json.encode(entry_for(r)) + b"\n" for r in entries)


def on_disk(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.glob("dead-letter-*"))


@pytest.fixture
def umask() -> Iterator[Any]:
    """Sets the process umask for a test and restores it afterwards."""
    previous = os.umask(0o022)
    try:
        yield os.umask
    finally:
        os.umask(previous)


# -- the cap --------------------------------------------------------------------------------------------------


def test_a_full_dead_letter_refuses_the_write_and_deletes_nothing(tmp_path: Path) -> None:
    cap = 200_000
    file = DeadLetterFile(tmp_path, max_file_bytes=65_536, max_total_bytes=cap)
    written = 0
    with pytest.raises(DeadLetterFull) as full:
        while True:
            refused = lines(rejected(written))
            file.append(refused)
            written += 1
    assert written > 50
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert on_disk(tmp_path) <= cap  # never past the cap
    assert "dead letter full" in str(full.value) and "dead_letter.max_total_bytes is 200,000" in str(full.value)
    assert isinstance(full.value, OSError)

    with pytest.raises(DeadLetterFull):  # still full: refused again, nothing written, nothing removed
        file.append(refused)
    bigger = lines(rejected(10_000), rejected(10_001))
    with pytest.raises(DeadLetterFull):
        file.append(bigger)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    file.close()
    assert [e.offset for e in read_dead_letters(tmp_path)] == list(range(written))


def test_moving_files_away_makes_room_again(tmp_path: Path) -> None:
    file = DeadLetterFile(tmp_path, max_file_bytes=65_536, max_total_bytes=150_000)
    with pytest.raises(DeadLetterFull):
        for i in range(10_000):
            file.append(lines(rejected(i)))
    file.close()
    elsewhere = tmp_path / "replayed"
    elsewhere.mkdir()
    for path in tmp_path.glob("dead-letter-*"):
        path.rename(elsewhere / path.name)  # what an operator does after `ingestor replay`
    file.append(lines(rejected(20_000)))
    assert [e.offset for e in read_dead_letters(tmp_path)] == [20_000]


def test_files_of_earlier_runs_count_toward_the_cap(tmp_path: Path) -> None:
    earlier = DeadLetterFile(tmp_path, max_file_bytes=65_536)
    for i in range(60):
        earlier.append(lines(rejected(i)))
    earlier.close()
    used = on_disk(tmp_path)
    (tmp_path / "notes.txt").write_bytes(b"x" * 500_000)  # not a dead-letter file: not counted
    restarted = DeadLetterFile(tmp_path, max_file_bytes=65_536, max_total_bytes=used + 100)
    assert restarted.used_bytes() == used
    with pytest.raises(DeadLetterFull):
        restarted.append(lines(rejected(100)))
    roomy = DeadLetterFile(tmp_path, max_file_bytes=65_536, max_total_bytes=used + 100_000)
    roomy.append(lines(rejected(100)))
    roomy.close()
    assert len(list(read_dead_letters(tmp_path))) == 61


def test_an_empty_dead_letter_takes_one_write_larger_than_the_cap(tmp_path: Path) -> None:
    file = DeadLetterFile(tmp_path, max_total_bytes=10_000)
    big = lines(*(rejected(i) for i in range(40)))  # about 50 KB once compressed
    file.append(big)  # otherwise it could never be written
    with pytest.raises(DeadLetterFull):
        file.append(lines(rejected(99)))
    file.close()
    assert len(list(read_dead_letters(tmp_path))) == 40


def test_without_a_cap_nothing_is_refused(tmp_path: Path) -> None:
    file = DeadLetterFile(tmp_path, max_file_bytes=65_536)
    for i in range(300):
        file.append(lines(rejected(i)))
    file.close()
    assert on_disk(tmp_path) > 300 * 600


def test_the_cap_has_a_default_and_a_floor() -> None:
    config = parse_config(
        {
            "source": {"bootstrap_servers": ["127.0.0.1:9092"], "topics": ["t"], "group_id": "g"},
            "sink": {"endpoint": "https://dce.example", "rule_id": RULE},
            "dead_letter": {"path": "/var/lib/ingestor/dead-letter"},
        }
    )
    assert config.dead_letter.max_total_bytes == 1 << 30  # default: 1 GiB, 16 files of the default size
    with pytest.raises(Exception, match="max_total_bytes"):
        parse_config(
            {
                "source": {"bootstrap_servers": ["127.0.0.1:9092"], "topics": ["t"], "group_id": "g"},
                "sink": {"endpoint": "https://dce.example", "rule_id": RULE},
                "dead_letter": {"path": "/d", "max_total_bytes": 1000},
            }
        )


# -- a full dead letter is backpressure: the source pauses, /readyz says why -----------------------------------


async def test_a_full_dead_letter_pauses_the_source_and_readyz_says_full(tmp_path: Path) -> None:
    config = parse_config(
        {
            "source": {"bootstrap_servers": ["127.0.0.1:9092"], "topics": ["defender"], "group_id": "g"},
            "sink": {
                "endpoint": "https://dce.example",
                "rule_id": RULE,
                "credential": {"type": "static_token", "token": "t"},
            },
            "dead_letter": {"path": str(tmp_path), "max_total_bytes": 1_048_576, "retry_secs": 0.01},
        }
    )
    (tmp_path / "dead-letter-earlier.jsonl.gz").write_bytes(b"\0" * 1_048_576)  # an earlier run filled it
    ingestor = Ingestor(config, source_factory=StillSource)
    flow = ingestor.flow
    assert await ingestor._start_source()  # what /readyz asks first: the source's start returned
    assert flow.backpressure() == "" and ingestor.readiness() == (True, "")

    ticket = Ticket(Position("defender", 0, 0), 0.0)
    ticket.pending, ticket.sealed = 1, True
    runner = asyncio.create_task(flow.dead_letter.run())
    try:
        flow.dead_letter.put([rejected(0)], [ticket])
        errors = "ingestor_dead_letter_write_errors_total"
        while (flow.metrics.registry.get_sample_value(errors) or 0) < 3:
            await asyncio.sleep(0.01)
        assert flow.backpressure() == "dead letter cannot be written"
        ready, why = ingestor.readiness()
        assert not ready and why.startswith("dead letter cannot be written (DeadLetterFull: dead letter full: ")
        assert not ticket.done and flow.dead_letter.pending_bytes > 0  # kept, not dropped, not committed
        assert (tmp_path / "dead-letter-earlier.jsonl.gz").stat().st_size == 1_048_576  # nothing deleted

        (tmp_path / "dead-letter-earlier.jsonl.gz").unlink()  # the operator moved it away
        await asyncio.wait_for(flow.dead_letter.drain(), 10)
        assert ticket.done and flow.backpressure() == "" and ingestor.readiness() == (True, "")
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    assert [e.offset for e in read_dead_letters(tmp_path)] == [0]


# -- rights -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mask", [0o000, 0o022, 0o002])
def test_dead_letter_files_are_created_0600_whatever_the_umask(tmp_path: Path, umask: Any, mask: int) -> None:
    umask(mask)
    file = DeadLetterFile(tmp_path / "dead-letter", max_file_bytes=65_536)
    for i in range(200):
        file.append(lines(rejected(i)))
    file.close()
    paths = list((tmp_path / "dead-letter").glob("dead-letter-*.jsonl.gz"))
    assert len(paths) > 1  # rotated files too
    assert {stat.S_IMODE(p.stat().st_mode) for p in paths} == {0o600}
    assert stat.S_IMODE((tmp_path / "dead-letter").stat().st_mode) == 0o700 & ~mask  # a directory it creates


def file_modes(directory: Path) -> dict[str, int]:
    return {p.name.split("-2")[0]: stat.S_IMODE(p.stat().st_mode) for p in directory.iterdir()}


async def test_the_file_store_and_replay_files_are_0600(tmp_path: Path, umask: Any) -> None:
    umask(0)
    for prefix in ("dead-letter", "dead-letter-replay"):
        store = FileStore(tmp_path, max_file_bytes=65_536, prefix=prefix)
        await store.write([lines(rejected(1))])
        await store.close()
    assert file_modes(tmp_path) == {"dead-letter": 0o600, "dead-letter-replay": 0o600}


async def test_a_queue_over_a_file_store_keeps_entries_while_full(tmp_path: Path) -> None:
    metrics = Metrics()
    (tmp_path / "dead-letter-old.jsonl.gz").write_bytes(b"\0" * 2_000_000)
    queue = DeadLetterQueue(
        FileStore(tmp_path, max_file_bytes=65_536, max_total_bytes=2_000_000), metrics, retry_secs=0.01
    )
    ticket = Ticket(Position("t", 0, 0), 0.0)
    ticket.pending, ticket.sealed = 2, True
    runner = asyncio.create_task(queue.run())
    try:
        queue.put([rejected(0), rejected(1)], [ticket, ticket])
        while (metrics.registry.get_sample_value("ingestor_dead_letter_write_errors_total") or 0) < 2:
            await asyncio.sleep(0.01)
        assert queue.failing.startswith("DeadLetterFull: dead letter full")
        assert not ticket.done and queue.pending_bytes > 0  # its offset cannot be committed
        (tmp_path / "dead-letter-old.jsonl.gz").rename(tmp_path / "moved-away")
        await asyncio.wait_for(queue.drain(), 10)
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    assert not queue.failing and ticket.done and queue.pending_bytes == 0
    assert metrics.registry.get_sample_value("ingestor_dead_letter_written_entries_total") == 2
