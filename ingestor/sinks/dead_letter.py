"""Dead letter: records that cannot be delivered, with the reason, in rotated gzip JSON-lines files (default)
or a Kafka topic.

Each entry holds the raw record (or a bounded copy and the original's length), table, reason code, detail, source
position and time; nothing else, so no secret can reach it. A record's ticket settles only once its entry is
durable (fsynced, or acknowledged by the brokers), so a committed offset never covers a record that is neither
landed nor here.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import logging
import os
import time
import zlib
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Protocol

import msgspec
from aiokafka import AIOKafkaProducer

from ingestor.bounds import MAX_DETAIL_CHARS, cut, fingerprint
from ingestor.commit import Ticket, settle
from ingestor.config import KafkaSourceConfig
from ingestor.connect.identity import SourceCredentials
from ingestor.connect.kafka import EntraTokenProvider, connection_settings, start_client
from ingestor.errors import IngestorError
from ingestor.metrics import Metrics
from ingestor.models import Rejected
from ingestor.sinks.compress import BACKEND

if BACKEND == "isal":
    from isal import isal_zlib as _zlib
else:  # pragma: no cover
    import zlib as _zlib  # type: ignore[no-redef]

log = logging.getLogger(__name__)


class DeadLetterEntry(msgspec.Struct, omit_defaults=True):
    time: str
    reason: str
    detail: str
    table: str | None = None
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    index: int | None = None
    raw: str | None = None
    raw_base64: str | None = None
    # Set when `raw` holds only the first bytes of a record too big to keep: the record's length in bytes.
    raw_original_bytes: int | None = None


def entry_for(rejected: Rejected) -> DeadLetterEntry:
    try:
        raw, raw_b64 = rejected.raw.decode("utf-8"), None
    except UnicodeDecodeError:
        raw, raw_b64 = None, base64.b64encode(rejected.raw).decode()
    ref = rejected.source
    return DeadLetterEntry(
        time=datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
        reason=rejected.reason,
        detail=cut(rejected.detail),
        table=rejected.table,
        topic=ref.position.topic if ref else None,
        partition=ref.position.partition if ref else None,
        offset=ref.position.offset if ref else None,
        index=ref.index if ref else None,
        raw=raw,
        raw_base64=raw_b64,
        raw_original_bytes=rejected.original_bytes,
    )


def raw_bytes(entry: DeadLetterEntry) -> bytes:
    """The record's bytes as the entry holds them (`raw` as UTF-8, or `raw_base64`)."""
    return entry.raw.encode() if entry.raw is not None else base64.b64decode(entry.raw_base64 or "")


class DeadLetterFull(IngestorError, OSError):
    """The dead letter holds `max_total_bytes` already: the write is refused and nothing is deleted."""


class DeadLetterFile:
    """Appends entries to `<dir>/dead-letter-<time>-<pid>-<n>.jsonl.gz`, rotating at `max_file_bytes`.

    Every `append()` writes one complete gzip member and fsyncs it, so an appended entry survives a crash. After a
    failed append the file is abandoned (its earlier members stay readable) and the next append starts a new one.
    Files are created 0600 (they hold raw telemetry), whatever the umask.

    `max_total_bytes` caps the `dead-letter-*` files of the directory, those of earlier runs included: an append
    that would pass it raises DeadLetterFull without writing anything, and is accepted again once files were moved
    away. The directory is measured at the first append, at every rotation and while full; in between, what
    this process appended is added up. An empty directory always takes one append, so an append larger than
    the cap cannot block for ever.
    """

    def __init__(
        self,
        directory: Path,
        *,
        max_file_bytes: int = 64 * 1_048_576,
        prefix: str = "dead-letter",
        max_total_bytes: int | None = None,
    ) -> None:
        self.directory = directory
        self.max_file_bytes = max_file_bytes
        self.max_total_bytes = max_total_bytes
        self.prefix = prefix
        self._file: BinaryIO | None = None
        self._sequence = 0
        self._used: int | None = None  # bytes of dead-letter files in the directory, None until measured

    def append(self, lines: bytes) -> None:
        compressor = _zlib.compressobj(1, _zlib.DEFLATED, 31)
        member = compressor.compress(lines) + compressor.flush()
        self._check_room(len(member))
        try:
            if self._file is None or self._file.tell() >= self.max_file_bytes:
                self._rotate()
            assert self._file is not None
            self._file.write(member)
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError:
            self._abandon()
            self._used = None  # a partial write may have landed: measure again
            raise
        if self._used is not None:
            self._used += len(member)

    def used_bytes(self) -> int:
        """Bytes of the directory's dead-letter files, measured now."""
        total = 0
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return 0
        for entry in entries:
            if entry.name.startswith("dead-letter-"):
                try:
                    if entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
                except FileNotFoundError:
                    continue  # moved away meanwhile
        return total

    def _check_room(self, size: int) -> None:
        cap = self.max_total_bytes
        if cap is None:
            return
        if self._used is None or self._used + size > cap:
            self._used = self.used_bytes()  # files may have been moved away since the last measure
        if self._used and self._used + size > cap:
            raise DeadLetterFull(
                f"dead letter full: {self._used:,} bytes of dead-letter files in {self.directory}, "
                f"dead_letter.max_total_bytes is {cap:,}; replay and move the files away, nothing is deleted",
            )

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _abandon(self) -> None:
        try:
            self.close()
        except OSError:
            self._file = None

    def _rotate(self) -> None:
        self.close()
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._sequence += 1
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        path = self.directory / f"{self.prefix}-{stamp}-{os.getpid()}-{self._sequence}.jsonl.gz"
        # 0600 from the start: the umask can only take bits away, and there is no moment with wider rights.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        self._file = os.fdopen(fd, "ab")
        if self.max_total_bytes is not None:
            self._used = self.used_bytes()


class DeadLetterStore(Protocol):
    """Where dead-letter entries (JSON lines, newline included) become durable; `write` raises when they did not."""

    async def write(self, lines: list[bytes]) -> None: ...

    async def close(self) -> None: ...


class FileStore:
    def __init__(
        self, directory: Path, *, max_file_bytes: int, prefix: str = "dead-letter", max_total_bytes: int | None = None
    ) -> None:
        self.file = DeadLetterFile(
            directory, max_file_bytes=max_file_bytes, prefix=prefix, max_total_bytes=max_total_bytes
        )

    async def write(self, lines: list[bytes]) -> None:
        await asyncio.to_thread(self.file.append, b"".join(lines))

    async def close(self) -> None:
        self.file.close()


def fit_entry(line: bytes, max_bytes: int) -> bytes:
    """An encoded entry at most `max_bytes` long: `line` itself, or its entry with `raw` cut by encoded size.

    JSON escaping and UTF-8 make an entry up to six times longer than its raw text, so the cut is searched on the
    encoding itself. The detail gains the raw bytes' original length and SHA-256.
    """
    if len(line) <= max_bytes:
        return line
    entry = msgspec.json.decode(line, type=DeadLetterEntry)
    as_text = entry.raw is not None
    raw = raw_bytes(entry)
    entry.detail = cut(entry.detail, MAX_DETAIL_CHARS - 200)
    entry.detail += f"; raw cut to fit the dead-letter topic: {fingerprint(raw)}"
    entry.raw_original_bytes = entry.raw_original_bytes or len(raw)

    def encoded(size: int) -> bytes:
        head = raw[:size]
        if as_text:
            entry.raw = head.decode(errors="ignore")  # a character cut in two goes whole
        else:
            entry.raw_base64 = base64.b64encode(head).decode()
        return msgspec.json.encode(entry)

    low, high = 0, len(raw)  # the longest head whose entry fits: encoded size grows with the head
    while low < high:
        middle = (low + high + 1) // 2
        if len(encoded(middle)) <= max_bytes:
            low = middle
        else:
            high = middle - 1
    return encoded(low)


class KafkaStore:
    """One message per entry on a topic of the source's brokers, acknowledged by all in-sync replicas.

    An entry larger than the topic's message limit (Event Hubs: 1 MB) keeps as much of `raw` as fits once
    encoded (`fit_entry`), says so in `detail`, and is counted in `ingestor_dead_letter_truncated_entries_total`.
    """

    MAX_MESSAGE_BYTES = 1_000_000

    def __init__(
        self, source: KafkaSourceConfig, topic: str, metrics: Metrics, credentials: SourceCredentials | None = None
    ) -> None:
        self._settings = connection_settings(source, credentials)
        self._topic = topic
        self._metrics = metrics
        self._producer: AIOKafkaProducer | None = None

    async def write(self, lines: list[bytes]) -> None:
        if self._producer is None:
            producer = AIOKafkaProducer(
                **self._settings, acks="all", max_request_size=self.MAX_MESSAGE_BYTES + 4096, linger_ms=5
            )
            try:
                await start_client(producer)  # a broker's error named; the queue retries, logging once per flip
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        pending = [await self._producer.send(self._topic, self._fit(line.rstrip(b"\n"))) for line in lines]
        await asyncio.gather(*pending)

    def _fit(self, value: bytes) -> bytes:
        fitted = fit_entry(value, self.MAX_MESSAGE_BYTES)
        if fitted is not value:
            self._metrics.dead_letter_truncated.inc()
            log.warning("dead-letter entry cut to fit the topic", extra={"entry_bytes": len(value)})
        return fitted

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
        provider = self._settings.get("sasl_oauth_token_provider")
        if isinstance(provider, EntraTokenProvider):
            await provider.close()


class DeadLetterQueue:
    """Records on their way to the dead letter; their tickets settle only once the store made them durable.

    A store that fails is backpressure, never a drop: entries stay queued (their bytes count toward the
    in-flight bound, so the source pauses) and the write is retried every `retry_secs` until it succeeds.
    """

    def __init__(self, store: DeadLetterStore, metrics: Metrics, *, retry_secs: float = 5.0) -> None:
        self._store = store
        self._metrics = metrics
        self._retry_secs = retry_secs
        self._encode = msgspec.json.Encoder().encode
        self._lines: list[bytes] = []
        self._tickets: list[Ticket] = []
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self.pending_bytes = 0
        self.failing = ""

    def put(self, rejected: Sequence[Rejected], tickets: Sequence[Ticket]) -> None:
        """Queue records (one ticket per record, already counted in its `pending`)."""
        if not rejected:
            return
        encode = self._encode
        for r in rejected:
            line = encode(entry_for(r)) + b"\n"
            self._lines.append(line)
            self.pending_bytes += len(line)
        self._tickets.extend(tickets)
        self._idle.clear()
        self._wakeup.set()

    async def drain(self) -> None:
        await self._idle.wait()

    async def run(self) -> None:
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                while self._lines:
                    lines, tickets = self._lines, self._tickets
                    self._lines, self._tickets = [], []
                    await self._write(lines)
                    self.pending_bytes -= sum(map(len, lines))
                    settle(tickets, self._metrics.ack_latency.labels("dead-letter"))
                self._idle.set()
        finally:
            await self._store.close()

    async def _write(self, lines: list[bytes]) -> None:
        while True:
            try:
                await self._store.write(lines)
            except Exception as exc:  # noqa: BLE001 - any store failure is retried, never dropped
                self._metrics.dead_letter_write_errors.inc()
                if not self.failing:
                    log.error(
                        "cannot write the dead letter; consumption pauses until it works again",
                        extra={"error": f"{exc.__class__.__name__}: {exc}", "retry_secs": self._retry_secs},
                    )
                self.failing = f"{exc.__class__.__name__}: {exc}"
                await asyncio.sleep(self._retry_secs)
                continue
            if self.failing:
                log.info("dead letter writable again")
                self.failing = ""
            self._metrics.dead_letter_written.inc(len(lines))
            return


def read_dead_letters(directory: Path) -> Iterator[DeadLetterEntry]:
    """Every complete entry in a dead-letter directory, oldest file first (a torn last member is skipped)."""
    decoder = msgspec.json.Decoder(DeadLetterEntry)
    for path in sorted(directory.glob("dead-letter-*.jsonl.gz"), key=lambda p: p.stat().st_mtime_ns):
        yield from read_dead_letter_file(path, decoder)


def read_dead_letter_file(
    path: Path, decoder: msgspec.json.Decoder[DeadLetterEntry] | None = None
) -> Iterator[DeadLetterEntry]:
    decode = (decoder or msgspec.json.Decoder(DeadLetterEntry)).decode
    for line in read_dead_letter_lines(path):
        yield decode(line)


def read_dead_letter_lines(path: Path) -> Iterator[bytes]:
    """The entries of a dead-letter file as JSON lines, undecoded (a torn last member is skipped)."""
    for line in _complete_members(path.read_bytes()).splitlines():
        if line:
            yield line


def _complete_members(data: bytes) -> bytes:
    try:
        return gzip.decompress(data)
    except (EOFError, gzip.BadGzipFile):
        out = []
        decompressor = zlib.decompressobj(31)
        while data:
            try:
                chunk = decompressor.decompress(data)
            except zlib.error:
                break
            if not decompressor.eof:
                break  # a member cut short by a crash: its entries were never committed
            out.append(chunk)
            data = decompressor.unused_data
            decompressor = zlib.decompressobj(31)
        return b"".join(out)
