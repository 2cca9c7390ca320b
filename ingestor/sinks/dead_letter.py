"""Dead letter: rotated gzip JSON-lines files of records that cannot be delivered, with the reason.

Each entry holds the raw record, table, reason code, detail, source position and time; nothing else, so no
secret can reach it. `sync()` makes everything written so far durable (a complete gzip member, fsynced); the
committer calls it before committing offsets, so a committed record is either landed or on disk here.
"""

from __future__ import annotations

import base64
import gzip
import os
import time
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import msgspec

from ingestor.models import Rejected
from ingestor.pipeline.compress import BACKEND

if BACKEND == "isal":
    from isal import isal_zlib as _zlib
else:  # pragma: no cover
    import zlib as _zlib  # type: ignore[no-redef]


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


def entry_for(rejected: Rejected) -> DeadLetterEntry:
    try:
        raw, raw_b64 = rejected.raw.decode("utf-8"), None
    except UnicodeDecodeError:
        raw, raw_b64 = None, base64.b64encode(rejected.raw).decode()
    ref = rejected.source
    return DeadLetterEntry(
        time=datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
        reason=rejected.reason,
        detail=rejected.detail,
        table=rejected.table,
        topic=ref.position.topic if ref else None,
        partition=ref.position.partition if ref else None,
        offset=ref.position.offset if ref else None,
        index=ref.index if ref else None,
        raw=raw,
        raw_base64=raw_b64,
    )


class DeadLetterWriter:
    """Appends entries to `<dir>/dead-letter-<time>-<pid>-<n>.jsonl.gz`, rotating at `max_file_bytes`."""

    def __init__(self, directory: Path, *, max_file_bytes: int = 64 * 1_048_576) -> None:
        self.directory = directory
        self.max_file_bytes = max_file_bytes
        self._encode = msgspec.json.Encoder().encode
        self._file: BinaryIO | None = None
        self._compressor: Any = None
        self._member_dirty = False
        self._sequence = 0
        self.written = 0
        directory.mkdir(parents=True, exist_ok=True)

    def write(self, rejected: list[Rejected]) -> None:
        if not rejected:
            return
        if self._file is None or self._file.tell() >= self.max_file_bytes:
            self._rotate()
        assert self._file is not None
        if self._compressor is None:
            self._compressor = _zlib.compressobj(1, _zlib.DEFLATED, 31)
        lines = b"".join(self._encode(entry_for(r)) + b"\n" for r in rejected)
        self._file.write(self._compressor.compress(lines))
        self._member_dirty = True
        self.written += len(rejected)

    def sync(self) -> None:
        """Close the current gzip member and fsync, so all entries so far survive a crash."""
        if self._file is None or not self._member_dirty:
            return
        self._file.write(self._compressor.flush())
        self._compressor = None
        self._member_dirty = False
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self.sync()
        if self._file is not None:
            self._file.close()
            self._file = None

    def _rotate(self) -> None:
        self.close()
        self._sequence += 1
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        path = self.directory / f"dead-letter-{stamp}-{os.getpid()}-{self._sequence}.jsonl.gz"
        self._file = path.open("ab")


def read_dead_letters(directory: Path) -> Iterator[DeadLetterEntry]:
    """Every complete entry in a dead-letter directory, oldest file first (a torn last member is skipped)."""
    decoder = msgspec.json.Decoder(DeadLetterEntry)
    for path in sorted(directory.glob("dead-letter-*.jsonl.gz"), key=lambda p: p.stat().st_mtime_ns):
        data = _complete_members(path.read_bytes())
        for line in data.splitlines():
            if line:
                yield decoder.decode(line)


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
