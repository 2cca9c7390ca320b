"""`ingestor replay`: dead-letter files or Storage-export files back through the pipeline, with progress.

A dead-letter entry of a record goes through decoding again; an entry of a row the sink refused
(`rejected_by_service`, `oversized_row`) goes straight to its table's batcher; an entry that holds only a bounded
copy of its record goes back to the dead letter as it is. Storage-export files (`PT1H.json`, one record per line,
gzip or not) are read in chunks of lines. What still fails is written to a new dead-letter file; the exit code is 0
only if everything landed.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec

from ingestor.commit import OffsetTracker
from ingestor.config import Config
from ingestor.flow import Flow, cancel
from ingestor.metrics import Metrics
from ingestor.models import DEAD_LETTER_REASONS, Message, Position, Rejected, SourceRef
from ingestor.sinks.dead_letter import DeadLetterEntry, FileStore, raw_bytes, read_dead_letter_lines
from ingestor.tables import load_schemas

log = logging.getLogger(__name__)
# Rows the sink dead-lettered: their raw bytes are shaped rows, not Streaming API records.
ROW_REASONS = frozenset({"rejected_by_service", "oversized_row"})
LINES_PER_MESSAGE = 500
CHUNK_BYTES = 1_048_576


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="the ingestor's YAML file (sink, validation, dead_letter)")
    parser.add_argument("files", type=Path, nargs="+", help="dead-letter *.jsonl.gz or Storage-export files")
    parser.add_argument(
        "--dead-letter-dir", type=Path, help="where what still fails goes (default: dead_letter.path, else ./)"
    )
    parser.add_argument(
        "--progress", choices=("auto", "always", "never"), default="auto", help="progress bar (auto: on a terminal)"
    )


def is_dead_letter(path: Path) -> bool:
    return path.name.startswith("dead-letter") and path.name.endswith(".jsonl.gz")


def storage_export_messages(path: Path) -> Iterator[Message]:
    """Chunks of non-blank lines of a Storage-export file as messages (position: file, line of the chunk's start),
    each at most LINES_PER_MESSAGE lines and, unless one line is longer, CHUNK_BYTES."""
    opener = gzip.open if path.suffix == ".gz" else open
    topic = f"replay:{path.name}"
    with opener(path, "rb") as handle:
        chunk: list[bytes] = []
        start = size = 0
        for number, line in enumerate(handle):
            if not line.strip():
                continue
            if chunk and size + len(line) > CHUNK_BYTES:
                yield Message(b"".join(chunk), Position(topic, 0, start))
                chunk, size = [], 0
            if not chunk:
                start = number
            chunk.append(line)
            size += len(line)
            if len(chunk) >= LINES_PER_MESSAGE:
                yield Message(b"".join(chunk), Position(topic, 0, start))
                chunk, size = [], 0
        if chunk:
            yield Message(b"".join(chunk), Position(topic, 0, start))


class Progress:
    """A one-line progress bar on stderr, redrawn at most ten times a second.

    Twenty lines rather than tqdm or rich: a bar drawn only on a terminal, by a command run by hand, does not
    justify a dependency in every image.
    """

    def __init__(self, total_bytes: int, *, enabled: bool) -> None:
        self.total = max(total_bytes, 1)
        self.enabled = enabled
        self.started = time.monotonic()
        self._drawn = 0.0

    def update(self, done_bytes: int, records: int, *, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (now - self._drawn < 0.1 and not force):
            return
        self._drawn = now
        share = min(done_bytes / self.total, 1.0)
        bar = "#" * int(share * 30)
        rate = records / max(now - self.started, 1e-9)
        sys.stderr.write(f"\rreplay [{bar:<30}] {share:6.1%} {records:,} records {rate:,.0f}/s")
        if force:
            sys.stderr.write("\n")
        sys.stderr.flush()


async def replay(config: Config, files: list[Path], dead_letter_dir: Path, *, progress: str = "auto") -> int:
    metrics = Metrics()
    store = FileStore(dead_letter_dir, max_file_bytes=config.dead_letter.max_file_bytes, prefix="dead-letter-replay")
    tracker = OffsetTracker()
    show = progress == "always" or (progress == "auto" and sys.stderr.isatty())
    bar = Progress(sum(p.stat().st_size for p in files), enabled=show)
    done_bytes = records = 0
    async with Flow(config, metrics, dead_letter=store) as flow:
        runner = asyncio.create_task(flow.run())
        try:
            for path in files:
                for item in _messages(path):
                    while flow.backpressure():  # noqa: ASYNC110 - a condition over several parts, polled
                        await asyncio.sleep(0.05)
                    if isinstance(item, Message):
                        flow.process([item], tracker.track)
                        records += item.value.count(b"\n") + 1
                    elif isinstance(item, Rejected):
                        ticket = tracker.track(item.source.position if item.source else Position("replay", 0, 0))
                        flow.dead_letter_again(item, ticket)
                        ticket.sealed = True
                        records += 1
                    else:
                        position, table, rows = item
                        ticket = tracker.track(position, None)
                        flow.process_rows(table, rows, ticket)
                        ticket.sealed = True
                        records += len(rows)
                    bar.update(done_bytes, records)
                    await asyncio.sleep(0)  # let uploads run
                done_bytes += path.stat().st_size
            drained = await flow.drain(config.shutdown_grace_secs)
        finally:
            await cancel(runner)
    bar.update(done_bytes, records, force=True)
    landed, failed = (
        metrics.total("ingestor_accepted_events_total"),
        metrics.total("ingestor_dead_lettered_events_total"),
    )
    print(f"replay: {landed:,.0f} rows landed, {failed:,.0f} records dead-lettered again", file=sys.stderr)
    if failed:
        print(f"replay: what still fails is in {dead_letter_dir}/dead-letter-replay-*.jsonl.gz", file=sys.stderr)
    return 0 if drained and not failed else 1


def _messages(path: Path) -> Iterator[Message | Rejected | tuple[Position, str, list[bytes]]]:
    """What to send again: records (as messages), rows the service refused (by table), and entries that hold
    only a bounded copy of their record (they go back to the dead letter as they are)."""
    if not is_dead_letter(path):
        yield from storage_export_messages(path)
        return
    topic = f"replay:{path.name}"
    decode = msgspec.json.Decoder(DeadLetterEntry).decode
    tables = load_schemas()
    for number, line in enumerate(read_dead_letter_lines(path)):
        position = Position(topic, 0, number)
        try:
            entry = decode(line)
            raw = raw_bytes(entry)
        except (msgspec.DecodeError, ValueError):  # not an entry: decoded as a record, it gets a reason of its own
            yield Message(line, position)
            continue
        if entry.raw_original_bytes is not None and entry.reason in DEAD_LETTER_REASONS:
            ref = SourceRef(position, entry.index)
            table = entry.table if entry.table in tables else None  # a metric label: only known tables
            yield Rejected(raw, table, entry.reason, entry.detail, ref, entry.raw_original_bytes)
        elif entry.reason in ROW_REASONS and entry.table in tables:
            yield position, entry.table, [raw]
        else:
            yield Message(raw, position)
