"""`ingestor replay`: dead-letter files or Storage-export files back through the pipeline, patiently, with progress.

A dead-letter entry of a record goes through decoding again; an entry of a row the sink refused
(`rejected_by_service`, `oversized_row`) goes straight to its table's batcher; an entry that holds only a bounded
copy of its record goes back to the dead letter as it is. Storage-export files (`PT1H.json`, one record per line,
gzip or not) are read in chunks of lines. While the sink refuses (401/403/404), throttles (429) or fails (5xx, the
network), replay waits as the delivery loop retries, until no record has landed or been dead-lettered for
`--max-wait`. It never changes its input files. Its summary adds up, `read = landed + dead-lettered again +
skipped + left in place`; what still fails goes to a new dead-letter file; the exit code says which (EXIT_CODES).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import logging
import os
import re
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import msgspec

from ingestor.bounds import cut
from ingestor.commit import Position, Ticket
from ingestor.config import Config, LogsIngestionSinkConfig
from ingestor.errors import UploadError
from ingestor.metrics import Metrics
from ingestor.models import DEAD_LETTER_REASONS, Destination, Message, Rejected, SourceRef
from ingestor.run.flow import Flow, cancel
from ingestor.sinks.dead_letter import DeadLetterEntry, raw_bytes
from ingestor.sinks.dead_letter_file import FileStore, read_dead_letter_lines
from ingestor.sinks.logs_ingestion import LogsIngestionSink
from ingestor.sinks.retry import RetryPolicy
from ingestor.sinks.service import Uploader
from ingestor.tables import load_schemas

log = logging.getLogger(__name__)
# Rows the sink dead-lettered: their raw bytes are shaped rows, not Streaming API records.
ROW_REASONS = frozenset({"rejected_by_service", "oversized_row"})
LINES_PER_MESSAGE = 500
CHUNK_BYTES = 1_048_576
# A role assignment can take 30 minutes to propagate (docs/retention.md, Provisioning), plus a margin.
DEFAULT_MAX_WAIT_SECS = 45 * 60
POLL_SECS = 0.05
EXIT_LANDED = 0
EXIT_DEAD_LETTERED = 1
EXIT_LEFT_IN_PLACE = 4
EXIT_CODES = (
    f"exit codes: {EXIT_LANDED} every record landed (or was skipped as configured); {EXIT_DEAD_LETTERED} some were "
    f"dead-lettered again (in a new dead-letter-replay-*.jsonl.gz); 2 a usage or configuration error; "
    f"{EXIT_LEFT_IN_PLACE} some were left in place: the sink did not take them within --max-wait, replay the files "
    "the summary names again"
)
PREFIX = "dead-letter-replay"
DEAD_LETTER_WRITTEN = "ingestor_dead_letter_written_entries_total"  # durable entries, not queued ones
Item = Message | Rejected | tuple[Position, str, list[bytes]]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXIT_CODES
    parser.add_argument("--config", type=Path, help="the ingestor's YAML file (sink, validation, dead_letter)")
    parser.add_argument("files", type=Path, nargs="+", help="dead-letter *.jsonl.gz or Storage-export files")
    parser.add_argument(
        "--dead-letter-dir", type=Path, help="where what still fails goes (default: dead_letter.path, else ./)"
    )
    parser.add_argument(
        "--progress", choices=("auto", "always", "never"), default="auto", help="progress bar (auto: on a terminal)"
    )
    parser.add_argument(
        "--max-wait",
        type=parse_duration,
        default=DEFAULT_MAX_WAIT_SECS,
        metavar="DURATION",
        help="while the sink refuses, throttles or fails, keep waiting until no record landed for this long, then "
        "leave the rest in place (seconds, or e.g. 90s, 45m, 1h30m; default: 45m, a role assignment's "
        "propagation and a margin)",
    )


def parse_duration(text: str) -> float:
    """Seconds in `text`: a number of seconds, or hours, minutes and seconds such as `1h30m`, `45m`, `90s`."""
    match = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?", text.strip())
    if not text.strip() or match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is no duration: write seconds, or e.g. 90s, 45m, 1h30m")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def duration(secs: float) -> str:
    """`secs` as parse_duration reads it, to the second: 45m, 3m12s, 1h, 0s."""
    hours, rest = divmod(int(secs), 3600)
    minutes, seconds = divmod(rest, 60)
    text = "".join(f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (seconds, "s")) if n)
    return text or "0s"


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
    """A one-line progress bar on stderr, redrawn at most ten times a second, with the wait under way if any.

    Twenty lines rather than tqdm or rich: a bar drawn only on a terminal, by a command run by hand, does not
    justify a dependency in every image.
    """

    def __init__(self, total_bytes: int, *, enabled: bool) -> None:
        self.total = max(total_bytes, 1)
        self.enabled = enabled
        self.started = time.monotonic()
        self._drawn = 0.0

    def due(self) -> bool:
        return self.enabled and time.monotonic() - self._drawn >= 0.1

    def draw(self, done_bytes: int, records: int, waiting: str = "", *, last: bool = False) -> None:
        now = self._drawn = time.monotonic()
        share = min(done_bytes / self.total, 1.0)
        bar = "#" * int(share * 30)
        rate = records / max(now - self.started, 1e-9)
        line = f"replay [{bar:<30}] {share:6.1%} {records:,} records {rate:,.0f}/s"
        sys.stderr.write(f"\r{line}{'  ' + waiting if waiting else ''}\x1b[K{chr(10) if last else ''}")
        sys.stderr.flush()


HINTS = {401: "credential not valid?", 403: "role not propagated yet?", 404: "DCR, stream or endpoint not there yet?"}


class WatchedSink:
    """The Logs Ingestion client, watched: the last request's failure (None once one lands) and when it came."""

    def __init__(self, sink: Uploader, config: LogsIngestionSinkConfig) -> None:
        self._sink = sink
        self._policy = RetryPolicy.from_config(config)
        self._max_backoff_secs = config.max_backoff_secs
        self.failure: UploadError | None = None
        self.failed_at = 0.0

    async def send(self, destination: Destination, payload: bytes, request_id: str) -> None:
        try:
            await self._sink.send(destination, payload, request_id)
        except UploadError as error:
            self.failure, self.failed_at = error, time.monotonic()
            raise
        self.failure = None

    async def __aenter__(self) -> WatchedSink:
        await self._sink.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._sink.__aexit__(exc_type, exc, tb)

    def trouble(self) -> str:
        """What the sink's last answer says, '' when it took the last request; the same text while it lasts."""
        error = self.failure
        if error is None:
            return ""
        if error.status is None:
            return (
                "no Entra ID token for the Logs Ingestion API"
                if error.kind == "unauthorized"
                else "Logs Ingestion API cannot be reached"
            )
        hint = HINTS.get(error.status) or ("throttled" if error.status == 429 else "")
        return f"Logs Ingestion API answers {error.status}" + (f" ({hint})" if hint else "")

    def next_try(self) -> str:
        """When the delivery loop tries again: the sink's Retry-After or auth_retry_secs, else its back-off."""
        error = self.failure
        if error is None:
            return ""
        if error.kind != "unauthorized" and error.retry_after is None:
            return f"retrying with back-off of up to {duration(self._max_backoff_secs)}"
        due = self.failed_at + self._policy.wait(error, 0) - time.monotonic()
        return f"retry in {max(due, 0):.0f} s"


class Patience:
    """How long replay has waited for something to settle; it stops waiting `max_wait_secs` after the last time."""

    def __init__(self, max_wait_secs: float) -> None:
        self.max_wait_secs = max_wait_secs
        self._settled = 0.0
        self._since = time.monotonic()

    def observe(self, settled: float) -> None:
        if settled != self._settled:
            self._settled, self._since = settled, time.monotonic()

    @property
    def waited(self) -> float:
        return time.monotonic() - self._since

    @property
    def exhausted(self) -> bool:
        return self.waited >= self.max_wait_secs


@dataclass
class Input:
    """One file replayed: its messages' tickets not yet done, and where reading stopped if it did."""

    path: Path
    tickets: deque[Ticket] = field(default_factory=deque)
    read_all: bool = False
    unread_from: int = 0  # the first line not read, while not read_all

    def left(self) -> int:
        """Records read from this file and not settled: neither landed nor durable in the dead letter."""
        return sum(t.pending for t in self.tickets if not t.done)


class Replay:
    """Feeds files to a Flow, waits while the sink refuses or fails, and accounts for every record read."""

    def __init__(self, config: Config, dead_letter_dir: Path, *, max_wait_secs: float, progress: Progress) -> None:
        self.metrics = Metrics()
        self.dead_letter_dir = dead_letter_dir
        store = FileStore(dead_letter_dir, max_file_bytes=config.dead_letter.max_file_bytes, prefix=PREFIX)
        self.sink = WatchedSink(LogsIngestionSink(config.sink), config.sink)
        self.flow = Flow(config, self.metrics, dead_letter=store, uploader=self.sink)
        self.patience = Patience(max_wait_secs)
        self.bar = progress
        self.inputs: list[Input] = []
        self.done_bytes = 0
        self.gave_up = ""  # what replay waited for when it stopped waiting
        self._trouble = ""
        self._ticked = 0.0
        self._runner: asyncio.Task[None] | None = None

    async def send(self, files: list[Path]) -> None:
        self.inputs = [Input(path) for path in files]
        async with self.flow as flow:
            self._runner = asyncio.create_task(flow.run())
            try:
                if await self._read():
                    drained = asyncio.create_task(self._drain())
                    try:
                        await self._wait(drained.done)
                    finally:
                        await cancel(drained)
            finally:
                await cancel(self._runner)
        self._tick(force=True)

    async def _read(self) -> bool:
        """Feed every file; False if replay stopped waiting for the sink before all was read."""
        flow = self.flow
        for source in self.inputs:
            for item in _messages(source.path):
                if flow.backpressure() and not await self._wait(lambda: not flow.backpressure()):
                    source.unread_from = _position(item).offset
                    return False
                self._feed(source, item)
                while source.tickets and source.tickets[0].done:
                    source.tickets.popleft()
                self._tick()
                await asyncio.sleep(0)  # let uploads run
            source.read_all = True
            self.done_bytes += source.path.stat().st_size
        return True

    def _feed(self, source: Input, item: Item) -> None:
        def track(position: Position, created_at: float | None = None) -> Ticket:
            ticket = Ticket(position, time.time() if created_at is None else created_at)
            source.tickets.append(ticket)
            return ticket

        if isinstance(item, Message):
            self.flow.process([item], track)
            return
        ticket = track(_position(item))
        if isinstance(item, Rejected):
            self.flow.dead_letter_again(item, ticket)
        else:
            _, table, rows = item
            self.flow.process_rows(table, rows, ticket)
        ticket.seal()

    async def _drain(self) -> None:
        """Every open batch sent and every record settled (no grace period: `_wait` decides how long)."""
        await self.flow.delivery.drain()
        await self.flow.dead_letter.drain()

    async def _wait(self, done: Callable[[], bool]) -> bool:
        """Poll until `done()`; False once nothing settled for --max-wait. Re-raises what ended the flow's tasks."""
        while not done():
            assert self._runner is not None
            if self._runner.done():
                self._runner.result()
                raise RuntimeError("replay's delivery tasks ended")
            self._tick()
            if self.patience.exhausted:
                self.gave_up = self.trouble() or "records to settle"
                return False
            await asyncio.sleep(POLL_SECS)
        return True

    def trouble(self) -> str:
        if failing := self.flow.dead_letter.failing:
            return f"dead letter cannot be written ({cut(failing, 200)})"
        return self.sink.trouble()

    def _tick(self, *, force: bool = False) -> None:
        """At most every POLL_SECS: patience, the wait under way (without a bar, one log line per change), the bar."""
        now = time.monotonic()
        if now - self._ticked < POLL_SECS and not force:
            return
        self._ticked = now
        m = self.metrics
        self.patience.observe(m.total("ingestor_accepted_events_total") + m.total(DEAD_LETTER_WRITTEN))
        trouble = self.trouble()
        if trouble != self._trouble and not self.bar.enabled:
            if trouble:
                log.warning("replay waits: %s", trouble, extra={"max_wait_secs": self.patience.max_wait_secs})
            else:
                log.info("replay goes on: the sink takes records again")
        self._trouble = trouble
        if self.bar.enabled and (force or self.bar.due()):
            waiting = ""
            if trouble:
                waited = f"waited {duration(self.patience.waited)} of {duration(self.patience.max_wait_secs)}"
                waiting = ", ".join(filter(None, (f"waiting: {trouble}", self.sink.next_try(), waited)))
            records = int(m.total("ingestor_read_events_total"))
            self.bar.draw(self.done_bytes, records, "" if force else waiting, last=force)

    def summary(self) -> Summary:
        m = self.metrics
        pid = os.getpid()
        return Summary(
            read=int(m.total("ingestor_read_events_total")),
            landed=int(m.total("ingestor_accepted_events_total")),
            dead_lettered=int(m.total(DEAD_LETTER_WRITTEN)),
            skipped=int(m.total("ingestor_skipped_events_total")),
            left={source.path: source.left() for source in self.inputs},
            unread={s.path: s.unread_from for s in self.inputs if not s.read_all},
            dead_letter_files=sorted(self.dead_letter_dir.glob(f"{PREFIX}-*-{pid}-*.jsonl.gz")),
            gave_up=self.gave_up,
            max_wait_secs=self.patience.max_wait_secs,
        )


@dataclass(frozen=True)
class Summary:
    """What became of every record read: `read = landed + dead_lettered + skipped + left in place`."""

    read: int
    landed: int
    dead_lettered: int
    skipped: int
    left: dict[Path, int]  # by file: records read and not settled
    unread: dict[Path, int]  # by file: the first line not read (0: none was)
    dead_letter_files: list[Path]
    gave_up: str
    max_wait_secs: float

    @property
    def left_in_place(self) -> int:
        return sum(self.left.values())

    @property
    def kept(self) -> list[Path]:
        """Files not fully delivered, to replay again."""
        return [path for path, left in self.left.items() if left or path in self.unread]

    @property
    def exit_code(self) -> int:
        if self.kept:
            return EXIT_LEFT_IN_PLACE
        return EXIT_DEAD_LETTERED if self.dead_lettered else EXIT_LANDED

    def lines(self) -> list[str]:
        accounted = self.landed + self.dead_lettered + self.skipped + self.left_in_place
        files = ", ".join(map(str, self.dead_letter_files))
        kept = self.kept
        lines = [
            f"{self.read:,} records read {'=' if accounted == self.read else '!='} {self.landed:,} rows landed"
            f" + {self.dead_lettered:,} dead-lettered again{f' (in {files})' if files else ''}"
            f" + {self.skipped:,} skipped + {self.left_in_place:,} left in place"
            + (f" (not delivered; still in {', '.join(map(str, kept))})" if kept else "")
        ]
        if kept:
            lines.append(
                f"nothing landed for {duration(self.max_wait_secs)} (--max-wait) while waiting for: {self.gave_up}"
            )
            for path in kept:
                parts = [f"{self.left[path]:,} records not delivered"] if self.left[path] else []
                if path in self.unread:
                    parts.append(f"not read from line {self.unread[path] + 1:,}")
                lines.append(f"  {path}: {', '.join(parts)}")
            lines.append(
                "these files are as they were (replay never changes its inputs): replay them again once the sink "
                "takes records (their records that landed will land again)"
            )
        return lines

    def fields(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "landed": self.landed,
            "dead_lettered": self.dead_lettered,
            "skipped": self.skipped,
            "left_in_place": self.left_in_place,
            "left_in": [str(path) for path in self.kept],
            "dead_letter_files": [str(path) for path in self.dead_letter_files],
            "exit_code": self.exit_code,
        }


async def replay(
    config: Config,
    files: list[Path],
    dead_letter_dir: Path,
    *,
    progress: str = "auto",
    max_wait_secs: float = DEFAULT_MAX_WAIT_SECS,
) -> int:
    """Replay `files`, print the summary on stderr (and log it); the exit code of EXIT_CODES."""
    show = progress == "always" or (progress == "auto" and sys.stderr.isatty())
    bar = Progress(sum(p.stat().st_size for p in files), enabled=show)
    run = Replay(config, dead_letter_dir, max_wait_secs=max_wait_secs, progress=bar)
    await run.send(files)
    summary = run.summary()
    log.info("replay finished", extra=summary.fields())
    for line in summary.lines():
        print(f"replay: {line}", file=sys.stderr)
    return summary.exit_code


def _position(item: Item) -> Position:
    if isinstance(item, Message):
        return item.position
    if isinstance(item, Rejected):
        return item.source.position if item.source else Position("replay", 0, 0)
    return item[0]


def _messages(path: Path) -> Iterator[Item]:
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
