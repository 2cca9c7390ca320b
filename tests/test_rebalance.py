"""Rebalances in the middle of fetched batches, on the real broker: ownership is checked where tickets are made and
where offsets are committed.

Other members join and leave the ingestor's group every couple of seconds while it processes large fetches in
small slices, with uploads slow enough that some drains on revocation time out. Every commit the ingestor makes
is checked against every ticket it ever made: a commit of offset `o` for a partition is right only if each offset
below `o` (from the group's previous commit on) has a done ticket. The test asserts that no commit passes a
message in flight, that no commit failure repeats, that every row lands, and that everything is committed.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from fakes import MovingSource
from realparts import emulator_sink, end_offsets, produce, unique_names

import ingestor.run.app
from ingestor.commit import Partition, Position, Ticket
from ingestor.config import parse_config
from ingestor.metrics import Metrics
from ingestor.run.app import Ingestor
from ingestor_tools.emulator import Emulator
from ingestor_tools.generate import TrafficGenerator

PARTITIONS = 4
RECORDS = 20_000


class Audit:
    """Every ticket the ingestor makes and every commit it asks for, checked as they happen."""

    def __init__(self, running: Ingestor) -> None:
        self.tickets: dict[Partition, list[Ticket]] = {}
        self.committed: dict[Partition, int] = {}
        self.outcomes: list[bool] = []
        self.violations: list[str] = []
        track, commit = running.tracker.track, running.source.commit

        def tracked(position: Position, created_at: float | None = None) -> Ticket:
            ticket = track(position, created_at)
            self.tickets.setdefault(position.key, []).append(ticket)
            return ticket

        async def checked(offsets: dict[Partition, int]) -> Any:
            for key, offset in offsets.items():
                done = {t.position.offset for t in self.tickets.get(key, []) if t.done}
                missing = [o for o in range(self.committed.get(key, 0), offset) if o not in done]
                if missing:
                    self.violations.append(f"{key} committed at {offset} with {missing[:5]} not settled")
            ok = await commit(offsets)
            self.outcomes.append(bool(ok))
            if ok:
                self.committed.update(offsets)
            return ok

        running.tracker.track = tracked  # type: ignore[method-assign]
        running.source.commit = checked  # type: ignore[method-assign]

    def repeated_failures(self) -> int:
        return sum(1 for a, b in zip(self.outcomes, self.outcomes[1:], strict=False) if not a and not b)


async def churn(
    bootstrap: str, topic: str, group: str, stop: asyncio.Event, members: list[int], *, stay_secs: float
) -> None:
    """Members that join the group, hold partitions for `stay_secs` without committing, and leave; until `stop`."""
    while not stop.is_set():
        other = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
            session_timeout_ms=6000, auto_offset_reset="earliest", max_partition_fetch_bytes=1024,
        )  # fmt: skip
        await other.start()
        members.append(1)
        try:
            leave_at = time.monotonic() + stay_secs
            while time.monotonic() < leave_at and not stop.is_set():
                await other.getmany(timeout_ms=100, max_records=1)
        finally:
            await other.stop()
        await asyncio.sleep(stay_secs / 2)


async def until(predicate: Callable[[], Awaitable[bool]], what: str, within_secs: float) -> None:
    deadline = time.monotonic() + within_secs
    while not await predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.25)


@pytest.mark.timeout(400)
async def test_rebalances_mid_fetch_never_commit_past_a_message_in_flight(
    kafka_bootstrap: str, emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic, group = unique_names()
    generator = TrafficGenerator(seed=12, devices=40)
    messages = list(generator.messages(records=RECORDS))
    await asyncio.to_thread(produce, kafka_bootstrap, topic, messages, partitions=PARTITIONS)
    ends = await asyncio.to_thread(end_offsets, kafka_bootstrap, topic)
    monkeypatch.setattr(ingestor.run.app, "PROCESS_SLICE", 2)  # many yields inside each fetch
    emulator.update_faults({"latency_ms": 400})  # drains on revocation outlast the grace period
    config = parse_config(
        {
            "source": {
                "bootstrap_servers": [kafka_bootstrap], "topics": [topic], "group_id": group,
                "session_timeout_secs": 6, "max_poll_records": 400, "commit_interval_secs": 0.25,
            },
            "sink": emulator_sink(emulator, linger_secs=0.2, auth_retry_secs=0.3, max_backoff_secs=0.5),
            "dead_letter": {"path": str(tmp_path / "dead-letter")},
            "metrics": {"host": "127.0.0.1", "port": 0},
            "shutdown_grace_secs": 0.3,
        }
    )  # fmt: skip
    running = Ingestor(config, metrics=Metrics())
    audit = Audit(running)
    slow = running.flow.process

    def process(batch: Any, track: Any) -> None:
        time.sleep(0.05)  # a fetch takes a while to go through, slice by slice
        slow(batch, track)

    running.flow.process = process  # type: ignore[method-assign]
    task = asyncio.create_task(running.run())
    stop = asyncio.Event()
    members: list[int] = []
    churning = asyncio.create_task(churn(kafka_bootstrap, topic, group, stop, members, stay_secs=2.0))
    try:
        await until(lambda: _true(len(members) >= 6), "six members come and go while fetches are processed", 200)
    finally:
        stop.set()
        await churning
    emulator.update_faults({"latency_ms": 0})

    async def committed_to_the_end() -> bool:
        return all(audit.committed.get(Partition(topic, p)) == end for p, end in ends.items())

    await until(committed_to_the_end, "every partition committed to its end", 120)
    running.stop()
    await asyncio.wait_for(task, 60)

    assert audit.violations == []
    assert audit.repeated_failures() == 0, audit.outcomes
    read = running.metrics.total("ingestor_read_messages_total")
    assert read >= len(messages), "the churn ended before every message was read once"
    with sqlite3.connect(emulator.db_path) as db:
        landed = db.execute("SELECT COUNT(DISTINCT table_name || ' ' || row) FROM rows").fetchone()[0]
    assert landed == sum(generator.manifest.valid.values())


async def _true(value: bool) -> bool:
    return value


async def test_a_partition_revoked_mid_fetch_is_neither_tracked_nor_committed_afterwards(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingestor.run.app, "PROCESS_SLICE", 2)
    config = parse_config(
        {
            "source": {"bootstrap_servers": ["127.0.0.1:9"], "topics": ["t"], "group_id": "g",
                       "commit_interval_secs": 0.25},
            "sink": emulator_sink(emulator, linger_secs=0.2),
            "dead_letter": {"path": str(tmp_path / "dead-letter")},
            "metrics": {"host": "127.0.0.1", "port": 0},
        }
    )  # fmt: skip
    running = Ingestor(config, metrics=Metrics(), source_factory=MovingSource)
    source = running.source
    assert isinstance(source, MovingSource)
    process = running.flow.process
    slices = 0

    def slice_by_slice(batch: Any, track: Any) -> None:
        nonlocal slices
        slices += 1
        if slices == 2:  # partition 1 goes to another member while this fetch is being processed
            source.owned.discard(Partition("t", 1))
            asyncio.get_running_loop().create_task(source.on_revoked({Partition("t", 1)}))
        process(batch, track)

    running.flow.process = slice_by_slice  # type: ignore[method-assign]
    task = asyncio.create_task(running.run())
    done = Partition("t", 0)
    await until(lambda: _true(any(c.get(done) == 8 for c in source.commits)), "partition 0 committed", 30)
    await asyncio.sleep(1)  # several commit intervals: a commit naming partition 1 would fail at each
    running.stop()
    await asyncio.wait_for(task, 30)
    assert running.metrics.registry.get_sample_value("ingestor_commits_total", {"outcome": "failed"}) is None
    assert running.metrics.registry.get_sample_value("ingestor_commits_total", {"outcome": "ok"}) >= 1
    assert not running.tracker.owns(Partition("t", 1))
