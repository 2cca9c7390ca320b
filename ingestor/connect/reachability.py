"""The start of `ingestor run` waits for the parts the source needs (the Kafka brokers, the Event Hubs namespace, the
checkpoint store) instead of failing: each step that contacts one retries its transient failures with capped,
jittered back-off until it works or the start is cancelled (stop()), reporting through `Unreachable`.

Transient, waited for: whatever the network or the service answers, because on a first deployment the private
endpoint, its DNS record or a firewall rule often comes minutes after the pods: connection refused or reset, DNS
failure, timeout, a TLS handshake that fails (a certificate the trust store does not accept included: a missing
private endpoint or an intercepting proxy looks the same), a refusal by the service (Kafka SASL, a Storage
firewall's 403, 5xx). Configuration, `ConfigError` (exit 2): what the configuration itself shows before any
contact (a `ca_file` holding no certificate), and a checkpoint container the service says does not exist. Anything
else is a bug of ours or a library's and propagates (exit 1).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import TypeVar

from ingestor.connect.identity import Refusals
from ingestor.errors import describe
from ingestor.metrics import Metrics

log = logging.getLogger(__name__)
T = TypeVar("T")

# The wait before attempt n+1 is uniform in [c/2, c) with c = min(MAX_DELAY_SECS, FIRST_DELAY_SECS * 2**n): 1 s,
# 2 s, 4 s, 8 s, then 10 s at most, so that the source starts within 10 s of its part becoming reachable, while a
# fleet of pods waiting for the same namespace does not retry in step. An attempt costs a DNS lookup and a connect.
FIRST_DELAY_SECS = 1.0
MAX_DELAY_SECS = 10.0


@dataclass(frozen=True)
class Backoff:
    """Capped exponential back-off with jitter (`backoff_secs`); `draw` in [0, 1) is injectable."""

    first_secs: float = FIRST_DELAY_SECS
    cap_secs: float = MAX_DELAY_SECS
    draw: Callable[[], float] = field(default_factory=lambda: random.Random().random)

    def delay(self, failures: int) -> float:
        """Seconds to wait after the `failures`-th failure in a row (1 for the first)."""
        return backoff_secs(max(0, failures - 1), base_secs=self.first_secs, cap_secs=self.cap_secs, draw=self.draw)


@dataclass(frozen=True)
class Part:
    """A part the start contacts: `label` for metrics, `name` with its address for `/readyz` and logs, and what to
    check while it cannot be reached."""

    label: str
    name: str
    checks: str


class Unreachable:
    """The parts the start waits for now, each with its last error: `waiting` and `problem` for `/readyz`,
    `ingestor_source_reachable` at 0 while any is, failed attempts counted by part. One WARNING line when a part's
    wait begins and one INFO line when it ends, never one per attempt."""

    def __init__(self, metrics: Metrics | None = None, *, backoff: Backoff | None = None) -> None:
        self._parts = Refusals(metrics.source_reachable if metrics is not None else None)
        self._failures = metrics.source_connect_failures if metrics is not None else None
        self.backoff = backoff or Backoff()

    @property
    def waiting(self) -> bool:
        return not self._parts.authorized

    @property
    def problem(self) -> str:
        """`<part> (<address>): <Type>: <error>` for each part waited for, `; `-separated."""
        return self._parts.problem

    def failed(self, part: Part, error: str, *, since: float) -> None:
        if self._failures is not None:
            self._failures.labels(part.label).inc()
        if self._parts.refuse(part.name, error):
            log.warning(
                f"{part.name} cannot be reached yet; the start waits and retries with back-off (at most "
                f"{self.backoff.cap_secs:g} s apart), /readyz says why. Check {part.checks}",
                extra={"part": part.label, "error": error, "waited_secs": round(time.monotonic() - since, 1)},
            )

    def reached(self, part: Part, *, failures: int, since: float) -> None:
        if self._parts.accept(part.name):
            log.info(
                f"{part.name} reached; the start goes on",
                extra={
                    "part": part.label,
                    "failed_attempts": failures,
                    "waited_secs": round(time.monotonic() - since, 1),
                },
            )

    async def until_reached(
        self,
        part: Part,
        attempt: Callable[[], Awaitable[T]],
        *,
        transient: Callable[[BaseException], bool],
        paced_elsewhere: Callable[[BaseException], bool] = lambda _error: False,
    ) -> T:
        """`attempt()`'s result, retrying while it raises what `transient` accepts (after a back-off) or what
        `paced_elsewhere` accepts (at once: a watched credential that gives no token reports and paces itself).
        Anything else propagates; so does cancellation, at once."""
        since, failures = time.monotonic(), 0
        while True:
            try:
                result = await attempt()
            except Exception as exc:
                if paced_elsewhere(exc):
                    continue
                if not transient(exc):
                    raise
                failures += 1
                self.failed(part, describe(exc), since=since)
                await asyncio.sleep(self.backoff.delay(failures))
                continue
            self.reached(part, failures=failures, since=since)
            return result


class HeldBack(logging.Filter):
    """While entered, holds back the records of `logger` whose format string starts with one of `formats` and keeps
    them: a library's line per failed attempt, which the wait replaces with one line per change, and whose error
    text some libraries (aiokafka's bootstrap) only log."""

    def __init__(self, logger: str, *formats: str) -> None:
        super().__init__()
        self._logger = logging.getLogger(logger)
        self._formats = formats
        self.records: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.startswith(self._formats):
            self.records.append(record)
            return False
        return True

    def __enter__(self) -> HeldBack:
        self._logger.addFilter(self)
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._logger.removeFilter(self)


# 0.5 * 2**64 s is far above any cap (at most 3600 s); beyond it 2**attempt would only overflow a float.
MAX_DOUBLINGS = 64


def backoff_secs(attempt: int, *, base_secs: float, cap_secs: float, draw: Callable[[], float]) -> float:
    """Capped exponential backoff with jitter: the ceiling of attempt n (0-based) is min(cap_secs, base_secs * 2**n),
    the wait uniform in [ceiling / 2, ceiling); `draw` returns a float in [0, 1). The start-up's back-off and the
    sink's (`sinks.retry`)."""
    ceiling = min(cap_secs, base_secs * 2 ** min(attempt, MAX_DOUBLINGS))
    return float(ceiling * (0.5 + 0.5 * draw()))
