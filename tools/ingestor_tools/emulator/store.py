"""SQLite record of what the emulator received: accepted rows as compact JSON in `rows` (store mode; count mode
keeps none), every POST in `requests`, one transaction per request, in WAL mode so others can read the file while
it is written.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rows (
    id INTEGER PRIMARY KEY, rule_id TEXT, stream TEXT, table_name TEXT,
    request_id TEXT, received_at TEXT, row TEXT
);
CREATE INDEX IF NOT EXISTS rows_table_name ON rows (table_name);
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY, received_at TEXT, rule_id TEXT, stream TEXT, request_id TEXT,
    status INTEGER, body_bytes INTEGER, rows INTEGER, error_code TEXT
);
"""


@dataclass(frozen=True, slots=True)
class RequestRecord:
    # field order is the `requests` column order
    received_at: str
    rule_id: str
    stream: str
    request_id: str | None
    status: int | None  # None: the connection was dropped without an answer
    body_bytes: int
    rows: int
    error_code: str | None


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def record(self, request: RequestRecord, table_name: str | None = None, rows: Sequence[str] = ()) -> None:
        """Log one POST and, if it was accepted, its rows (already encoded as JSON text), atomically."""
        db = self._db
        db.execute("BEGIN")
        try:
            db.execute(
                "INSERT INTO requests (received_at, rule_id, stream, request_id, status, body_bytes, rows,"
                " error_code) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                astuple(request),
            )
            db.executemany(
                "INSERT INTO rows (rule_id, stream, table_name, request_id, received_at, row)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    (request.rule_id, request.stream, table_name, request.request_id, request.received_at, r)
                    for r in rows
                ),
            )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def rows(self, table_name: str) -> list[dict[str, Any]]:
        """Stored rows of one output table, in arrival order (`json` keeps 64-bit integers exact)."""
        cursor = self._db.execute("SELECT row FROM rows WHERE table_name = ? ORDER BY id", (table_name,))
        return [json.loads(text) for (text,) in cursor]

    def clear(self) -> None:
        self._db.executescript("BEGIN; DELETE FROM rows; DELETE FROM requests; COMMIT;")

    def close(self) -> None:
        self._db.close()
