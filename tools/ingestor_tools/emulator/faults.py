"""Fault injection knobs (throttling, 5xx, latency, dropped connections) and the seeded dice that apply them.

`fail_next` answers the next requests with the listed statuses, in order, before any random fault is drawn;
`fail_always` then answers every request with its status until it is set back to None (a sink that never recovers).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Literal

import msgspec

Rate = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
ErrorStatus = Annotated[int, msgspec.Meta(ge=400, le=599)]
DROP: Literal["drop"] = "drop"
Fault = int | Literal["drop"] | None


@dataclass(slots=True)
class Faults:
    fail_429_rate: Rate = 0.0
    retry_after_secs: Annotated[int, msgspec.Meta(ge=0)] = 1
    fail_5xx_rate: Rate = 0.0
    fail_5xx_status: Annotated[int, msgspec.Meta(ge=500, le=599)] = 503
    latency_ms: Annotated[float, msgspec.Meta(ge=0.0)] = 0.0
    drop_connection_rate: Rate = 0.0
    fail_next: list[ErrorStatus] = field(default_factory=list)
    fail_always: ErrorStatus | None = None
    seed: int = 0

    def merged(self, changes: Mapping[str, object]) -> Faults:
        """A validated copy with `changes` applied; ValueError names an unknown knob or a bad value."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ValueError(f"unknown fault knobs: {unknown}")
        try:
            return msgspec.convert({**dataclasses.asdict(self), **changes}, Faults)
        except msgspec.ValidationError as exc:
            raise ValueError(str(exc)) from exc

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


class FaultInjector:
    """Decides, per ingestion request, whether to inject a fault; random draws come from a seeded RNG."""

    def __init__(self, faults: Faults) -> None:
        self._faults = faults.merged({})
        self._rng = random.Random(self._faults.seed)

    @property
    def faults(self) -> Faults:
        return self._faults

    def update(self, changes: Mapping[str, object]) -> Faults:
        """Merge `changes` into the knobs; a `seed` among them restarts the random sequence."""
        self._faults = self._faults.merged(changes)
        if "seed" in changes:
            self._rng.seed(self._faults.seed)
        return self._faults

    def next_fault(self) -> Fault:
        """An error status to answer with, DROP to close the connection, or None to process normally."""
        faults = self._faults
        if faults.fail_next:
            return faults.fail_next.pop(0)
        if faults.fail_always is not None:
            return faults.fail_always
        if self._chance(faults.drop_connection_rate):
            return DROP
        if self._chance(faults.fail_429_rate):
            return 429
        if self._chance(faults.fail_5xx_rate):
            return faults.fail_5xx_status
        return None

    def _chance(self, rate: float) -> bool:
        return rate > 0.0 and self._rng.random() < rate
