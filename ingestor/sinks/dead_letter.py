"""The dead letter: records that cannot be delivered, each an entry with the reason, kept by a store until durable.

Each entry holds the raw record (or a bounded copy and the original's length), table, reason code, detail, source
position and time; nothing else, so no secret can reach it. A record's ticket settles only once its entry is
durable (`DeadLetterStore.write` returned), so a committed offset never covers a record that is neither landed nor
here. The stores: rotated gzip JSON-lines files (`dead_letter_file`, the default) or a Kafka topic
(`dead_letter_kafka`).
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol

import msgspec

from ingestor.bounds import cut
from ingestor.commit import Ticket, settle
from ingestor.metrics import Metrics
from ingestor.models import Rejected

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


class DeadLetterStore(Protocol):
    """Where dead-letter entries (JSON lines, newline included) become durable; `write` raises when they did not."""

    async def write(self, lines: list[bytes]) -> None: ...

    async def close(self) -> None: ...


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
