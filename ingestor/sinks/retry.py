"""Retry policy of the delivery loop: `RetryPolicy.decide(error, attempt, rows)` turns a failed upload into a Decision.

Retry after a wait, split, bisect or dead-letter; pure and synchronous (no I/O, metrics or logging), its only
randomness (the backoff's jitter) injected. `Delivery._send` carries the decision out.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from ingestor.config import LogsIngestionSinkConfig
from ingestor.connect.reachability import backoff_secs
from ingestor.errors import UploadError

BACKOFF_BASE_SECS = 0.5

Action = Literal["retry", "split", "bisect", "dead_letter"]


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with a batch whose upload failed.

    - `retry`: send it again after `wait_secs`; `reason` is the UploadError's kind: throttled, transient or
      unauthorized (the sink is refused: Delivery marks it not ready).
    - `split` (413, `reason` too_large) and `bisect` (400, `reason` bad_request): send its two halves.
    - `dead_letter`: a single row the service will never take; `reason` is the dead-letter reason code,
      oversized_row (413) or rejected_by_service (400).
    """

    action: Action
    reason: str
    wait_secs: float = 0.0

    @property
    def unauthorized(self) -> bool:
        return self.action == "retry" and self.reason == "unauthorized"

    @property
    def throttled(self) -> bool:
        return self.action == "retry" and self.reason == "throttled"


class RetryPolicy:
    """Waits: the service's Retry-After (capped), else capped exponential backoff with jitter; auth: a fixed pace.

    The backoff ceiling of attempt n (0-based) is min(max_backoff_secs, 0.5 * 2**n); the wait is uniform in
    [ceiling / 2, ceiling) (float rounding of the very largest draws may give the ceiling itself, never more).
    `random` returns a float in [0, 1) (`random.Random(seed).random` in tests).
    """

    def __init__(
        self,
        *,
        max_backoff_secs: float,
        max_retry_after_secs: float,
        auth_retry_secs: float,
        base_secs: float = BACKOFF_BASE_SECS,
        random: Callable[[], float] | None = None,
    ) -> None:
        self.max_backoff_secs = max_backoff_secs
        self.max_retry_after_secs = max_retry_after_secs
        self.auth_retry_secs = auth_retry_secs
        self.base_secs = base_secs
        self._random = random if random is not None else _new_random()

    @classmethod
    def from_config(cls, config: LogsIngestionSinkConfig, *, random: Callable[[], float] | None = None) -> RetryPolicy:
        return cls(
            max_backoff_secs=config.max_backoff_secs,
            max_retry_after_secs=config.max_retry_after_secs,
            auth_retry_secs=config.auth_retry_secs,
            random=random,
        )

    def decide(self, error: UploadError, attempt: int, rows: int) -> Decision:
        """`attempt`: retries of this batch so far (0 for the first failure); `rows`: rows in the failed request."""
        if error.kind == "too_large":
            return Decision("dead_letter", "oversized_row") if rows == 1 else Decision("split", "too_large")
        if error.kind == "bad_request":
            return Decision("dead_letter", "rejected_by_service") if rows == 1 else Decision("bisect", "bad_request")
        return Decision("retry", error.kind, self.wait(error, attempt))

    def wait(self, error: UploadError, attempt: int) -> float:
        """Seconds to wait before retrying after `error` (throttled, transient or unauthorized)."""
        if error.kind == "unauthorized":
            return float(self.auth_retry_secs)
        if error.retry_after is not None:  # the service's word, up to a ceiling far above the backoff cap
            return float(min(error.retry_after, self.max_retry_after_secs))
        return self.backoff(attempt)

    def backoff(self, attempt: int) -> float:
        return backoff_secs(attempt, base_secs=self.base_secs, cap_secs=self.max_backoff_secs, draw=self._random)


def _new_random() -> Callable[[], float]:
    return random.Random().random
