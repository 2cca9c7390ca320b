"""The dead letter's default store: entries appended to rotated gzip JSON-lines files, each append fsynced before
it counts as durable, within a cap on the directory; and the readers `ingestor replay` and the tests use.
"""

from __future__ import annotations

import asyncio
import gzip
import os
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import msgspec

from ingestor.errors import IngestorError
from ingestor.sinks.compress import BACKEND
from ingestor.sinks.dead_letter import DeadLetterEntry

if BACKEND == "isal":
    from isal import isal_zlib as _zlib
else:  # pragma: no cover
    import zlib as _zlib  # type: ignore[no-redef]


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
