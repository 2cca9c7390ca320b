"""Data that crosses stage boundaries: raw messages, rejected records, destinations and batches (where a message
came from and its delivery ticket are `commit`'s).

Plain slotted classes, no behaviour beyond bookkeeping; the stages share them from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ingestor.commit import Position, Ticket

# Auxiliary tables refuse a request whose rows span more than 30 minutes of TimeGenerated: their rows are batched
# by half-hour window (`epoch seconds // AUXILIARY_WINDOW_SECS`), so that every batch spans less.
AUXILIARY_WINDOW_SECS = 1800
# A batch is closed, and a request trimmed, to this share of `sink.max_request_bytes` once compressed.
FILL_TARGET = 0.96


@dataclass(frozen=True, slots=True)
class Message:
    """One message as a source delivers it: raw bytes and their position."""

    value: bytes
    position: Position
    timestamp_ms: int | None = None


@dataclass(frozen=True, slots=True)
class SourceRef:
    """A record's place: its message's position and its index within the message (None for a shaped row)."""

    position: Position
    index: int | None


# Every reason a dead-letter entry gives (docs/operations.md, "Faults and bad input"): the decoder's, then the sink's.
DEAD_LETTER_REASONS = frozenset(
    {
        "malformed_json",
        "not_an_object",
        "invalid_envelope",
        "empty_message",
        "missing_required_column",
        "unknown_column",
        "invalid_type",
        "invalid_value",
        "too_deeply_nested",
        "oversized_record",
        "oversized_message",
        "internal_error",
        "rejected_by_service",
        "oversized_row",
    }
)


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record that cannot be delivered, on its way to the dead letter."""

    raw: bytes
    table: str | None
    reason: str
    detail: str
    source: SourceRef | None
    # Set when `raw` is only a bounded copy: the length of the bytes it was cut from (they cannot be replayed).
    original_bytes: int | None = None


@dataclass(eq=False, slots=True)
class Destination:
    """Where rows of one table and retention class go: a DCR stream and the table behind it.

    Built once from the configuration; compared and hashed by identity (batchers are keyed by it).
    """

    table: str
    rule_id: str
    stream: str
    table_name: str
    retention_tag: str = "default"
    plan: str = "Analytics"
    # Columns this destination does not send (set to null before encoding, so they are omitted).
    dropped_columns: tuple[str, ...] = ()
    # `plan == "Auxiliary"`, kept as a field: the decoder tests it for every row.
    auxiliary: bool = field(init=False)

    def __post_init__(self) -> None:
        self.auxiliary = self.plan == "Auxiliary"

    @property
    def label(self) -> str:
        """Bounded metric label for this destination."""
        return self.table_name


@dataclass(slots=True)
class Batch:
    """Serialized rows bound for one destination, each with the ticket of the message it came from.

    Rows of an Auxiliary destination also share one time window (`AUXILIARY_WINDOW_SECS`); other batches have
    window 0.

    The rows live in one growing `body`, each preceded by a comma (`,row1,row2`), so that the request body is
    `[` + body[1:] + `]` and is never assembled by copying the rows again; `ends[i]` is where row i ends.
    """

    destination: Destination
    body: bytearray = field(default_factory=bytearray)
    ends: list[int] = field(default_factory=list)
    tickets: list[Ticket] = field(default_factory=list)
    opened_at: float = 0.0
    window: int = 0

    @classmethod
    def of(
        cls, destination: Destination, rows: list[bytes], tickets: list[Ticket], opened_at: float = 0.0, window: int = 0
    ) -> Batch:
        batch = cls(destination, tickets=tickets, opened_at=opened_at, window=window)
        for row in rows:
            batch.body += b","
            batch.body += row
            batch.ends.append(len(batch.body))
        return batch

    def __len__(self) -> int:
        return len(self.ends)

    @property
    def raw_bytes(self) -> int:
        """Uncompressed size: the rows and one separator each."""
        return len(self.body)

    @property
    def rows(self) -> list[bytes]:
        """The rows as separate values (for the dead letter; the hot path never needs them)."""
        starts = [0, *self.ends[:-1]]
        return [bytes(self.body[start + 1 : end]) for start, end in zip(starts, self.ends, strict=True)]

    def split(self, at: int) -> tuple[Batch, Batch]:
        """Two batches: rows before `at` and rows from `at` on."""
        cut = self.ends[at - 1]
        head = Batch(self.destination, self.body[:cut], self.ends[:at], self.tickets[:at], self.opened_at, self.window)
        tail_ends = [end - cut for end in self.ends[at:]]
        tail = Batch(self.destination, self.body[cut:], tail_ends, self.tickets[at:], self.opened_at, self.window)
        return head, tail

    def prepend(self, other: Batch) -> None:
        """Put `other`'s rows before this batch's own."""
        shift = len(other.body)
        self.body[:0] = other.body
        self.ends = [*other.ends, *(end + shift for end in self.ends)]
        self.tickets[:0] = other.tickets
        self.opened_at = min(self.opened_at, other.opened_at)
