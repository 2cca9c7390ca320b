"""Caps on everything whose size or count input decides: metric label values, first-sighting sets, texts.

Whatever a record carries (column names, categories, exception messages), what the process keeps of it is
bounded here: at most `cap` distinct label values per set (the rest count as `other`), each at most
MAX_LABEL_CHARS characters, and texts cut to a fixed length before they reach a log line or a dead-letter detail.
"""

from __future__ import annotations

import hashlib

OTHER = "other"
MAX_LABEL_CHARS = 64
MAX_DETAIL_CHARS = 1_000
# What the dead letter keeps of a message or record too big to decode: its first bytes, its length and hash.
RAW_COPY_BYTES = 65_536


class BoundedLabels:
    """Label values taken from input: the first `cap` distinct ones are kept, later ones become `other`."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._kept: set[str] = set()
        self._overflowed = False

    def __len__(self) -> int:
        return len(self._kept)

    def get(self, value: str) -> str:
        """The label for `value`, admitting it if there is room."""
        return self.admit(value)[0]

    def admit(self, value: str) -> tuple[str, bool]:
        """The label for `value` and whether it is new: a first sighting, or the first value to overflow."""
        value = value[:MAX_LABEL_CHARS]
        if value in self._kept:
            return value, False
        if len(self._kept) < self.cap:
            self._kept.add(value)
            return value, True
        first = not self._overflowed
        self._overflowed = True
        return OTHER, first


def cut(text: str, limit: int = MAX_DETAIL_CHARS) -> str:
    """`text` at most `limit` characters long, saying how much was cut."""
    if len(text) <= limit:
        return text
    note = f"... ({len(text):,} characters in all)"
    return text[: max(limit - len(note), 0)] + note


def fingerprint(raw: bytes) -> str:
    """What identifies bytes the dead letter keeps only part of: their length and SHA-256."""
    return f"original {len(raw):,} bytes, sha256 {hashlib.sha256(raw).hexdigest()}"


def bounded_copy(raw: bytes, limit: int = RAW_COPY_BYTES) -> tuple[bytes, str]:
    """The first `limit` bytes of `raw` (not ending inside a UTF-8 character) and a note of its length and hash."""
    note = fingerprint(raw)
    if len(raw) <= limit:
        return raw, note
    head = raw[:limit]
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start >= limit - 3 and exc.reason == "unexpected end of data":
            head = head[: exc.start]
    return head, f"{note}; the dead letter keeps the first {len(head):,} bytes"
