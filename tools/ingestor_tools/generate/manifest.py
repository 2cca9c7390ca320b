"""What a traffic generator emitted (the `Manifest`), and the vocabulary it is counted in.

Tests and demos compare what a pipeline delivered, dead-lettered and skipped against these counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import msgspec

InvalidKind = Literal[
    "malformed_json", "missing_required", "wrong_type", "bad_datetime", "unknown_category", "not_an_object"
]
INVALID_KINDS: tuple[InvalidKind, ...] = get_args(InvalidKind)
Envelope = Literal["records", "lines"]
ENVELOPES: tuple[Envelope, ...] = get_args(Envelope)

MAX_MESSAGE_BYTES = 1_000_000  # Event Hubs' message size limit; every body stays under it


@dataclass(slots=True)
class Manifest:
    """What a generator emitted: the ground truth to compare a pipeline's output against.

    `invalid` counts every invalid record by kind; of those, `skipped` (unknown category) are records the
    ingestor skips, and the rest (`dead_letter_records`) are records it must dead-letter. `drifted` counts, per
    table, the valid records that carry one value in another of Defender's spellings (`drift_rate`): valid,
    they land once the decoder converts it.
    """

    seed: int
    start_time: str
    devices: int
    invalid_rate: float
    envelope: str = "records"
    drift_rate: float = 0.0
    messages: int = 0
    records: int = 0
    raw_bytes: int = 0
    valid: dict[str, int] = field(default_factory=dict)
    valid_bytes: dict[str, int] = field(default_factory=dict)
    invalid: dict[str, int] = field(default_factory=lambda: dict.fromkeys(INVALID_KINDS, 0))
    skipped: int = 0
    drifted: dict[str, int] = field(default_factory=dict)

    @property
    def valid_records(self) -> int:
        return sum(self.valid.values())

    @property
    def invalid_records(self) -> int:
        return sum(self.invalid.values())

    @property
    def drifted_records(self) -> int:
        return sum(self.drifted.values())

    @property
    def dead_letter_records(self) -> int:
        return self.invalid_records - self.skipped

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "start_time": self.start_time,
            "devices": self.devices,
            "invalid_rate": self.invalid_rate,
            "envelope": self.envelope,
            "drift_rate": self.drift_rate,
            "messages": self.messages,
            "records": self.records,
            "raw_bytes": self.raw_bytes,
            "valid_records": self.valid_records,
            "valid": dict(self.valid),
            "valid_bytes": dict(self.valid_bytes),
            "invalid_records": self.invalid_records,
            "invalid": dict(self.invalid),
            "skipped": self.skipped,
            "dead_letter_records": self.dead_letter_records,
            "drifted_records": self.drifted_records,
            "drifted": dict(self.drifted),
        }

    def to_json(self) -> str:
        return msgspec.json.format(msgspec.json.encode(self.to_dict()).decode(), indent=2)
