"""The delivery loop's retry policy as a table: what the service answers -> what the ingestor does.

Each row starts from the service's answer (an HTTP status and headers, classified by `logs_ingestion.classify_response`,
or a failure with no response, built as `LogsIngestionSink.send` builds it) and ends in a Decision. The jitter is
fixed through the injected random source. docs/operations.md, "Faults and bad input", rows on the Logs Ingestion API.
"""

from __future__ import annotations

import json
import math
import random
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.core.utils import CaseInsensitiveDict

from ingestor.config import LogsIngestionSinkConfig
from ingestor.errors import UploadError
from ingestor.sinks.logs_ingestion import classify_response
from ingestor.sinks.retry import Decision, RetryPolicy

MAX_BACKOFF = 60.0
MAX_RETRY_AFTER = 900.0
AUTH_RETRY = 30.0
BELOW_ONE = math.nextafter(1.0, 0.0)  # the largest float random() can return
NEAR_ONE = 1 - 1e-9


def policy(draw: float = 0.0, **settings: float) -> RetryPolicy:
    """A policy whose random source always returns `draw`."""
    values = {"max_backoff_secs": MAX_BACKOFF, "max_retry_after_secs": MAX_RETRY_AFTER, "auth_retry_secs": AUTH_RETRY}
    values.update(settings)
    return RetryPolicy(**values, random=lambda: draw)


class ServiceResponse:
    """What azure-core's HttpResponseError reads of a response: status, reason, headers (case-insensitive), body."""

    def __init__(self, status: int, headers: dict[str, str], code: str | None) -> None:
        self.status_code = status
        self.reason = f"status {status}"
        self.headers = CaseInsensitiveDict(headers)
        self._body = json.dumps({"error": {"code": code, "message": "the service says no"}}) if code else ""

    def text(self, encoding: str | None = None) -> str:
        return self._body


def answer(status: int, headers: dict[str, str] | None = None, code: str | None = None) -> UploadError:
    """The UploadError the sink raises when the service answers `status` with `headers`."""
    response: Any = ServiceResponse(status, headers or {}, code)
    return classify_response(HttpResponseError(response=response))


# The same UploadErrors LogsIngestionSink.send raises when no response came.
TIMEOUT = UploadError("transient", "no response within 30s (sink.request_timeout_secs)")
RESET = UploadError("transient", "connection failed: ServerDisconnectedError: Server disconnected")
REFUSED = UploadError("transient", "connection failed: ClientConnectorError: Connection refused")
NO_TOKEN = UploadError("unauthorized", "no token: CredentialUnavailableError: WorkloadIdentityCredential unavailable")

# attempt 0 with random() = 0: the backoff's floor, half of its 0.5 s ceiling
FIRST_BACKOFF = 0.25

FAULTS: list[Any] = [
    # (error, rows, expected decision)
    pytest.param(answer(429, {"Retry-After": "7"}), 10, Decision("retry", "throttled", 7.0), id="429-retry-after"),
    pytest.param(
        answer(429, {"retry-after-ms": "1500"}), 10, Decision("retry", "throttled", 1.5), id="429-retry-after-ms"
    ),
    pytest.param(
        answer(429, {"Retry-After": "2", "retry-after-ms": "9000"}),
        10,
        Decision("retry", "throttled", 2.0),
        id="429-both-headers-seconds-win",
    ),
    pytest.param(
        answer(429, {"Retry-After": "3600"}),
        10,
        Decision("retry", "throttled", MAX_RETRY_AFTER),
        id="429-retry-after-over-the-ceiling",
    ),
    pytest.param(
        answer(429, {"Retry-After": "120"}),
        10,
        Decision("retry", "throttled", 120.0),
        id="429-retry-after-over-the-backoff-cap",
    ),
    pytest.param(answer(429), 10, Decision("retry", "throttled", FIRST_BACKOFF), id="429-no-retry-after-backoff"),
    pytest.param(
        answer(429, {"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"}),
        10,
        Decision("retry", "throttled", FIRST_BACKOFF),
        id="429-http-date-is-backoff",
    ),
    pytest.param(answer(500), 10, Decision("retry", "transient", FIRST_BACKOFF), id="500"),
    pytest.param(answer(502), 10, Decision("retry", "transient", FIRST_BACKOFF), id="502"),
    pytest.param(answer(503), 10, Decision("retry", "transient", FIRST_BACKOFF), id="503"),
    pytest.param(answer(503, {"Retry-After": "4"}), 10, Decision("retry", "transient", 4.0), id="503-retry-after"),
    pytest.param(TIMEOUT, 10, Decision("retry", "transient", FIRST_BACKOFF), id="timeout"),
    pytest.param(RESET, 10, Decision("retry", "transient", FIRST_BACKOFF), id="connection-reset"),
    pytest.param(REFUSED, 10, Decision("retry", "transient", FIRST_BACKOFF), id="connection-refused"),
    pytest.param(answer(413, code="ContentLengthLimitExceeded"), 64, Decision("split", "too_large"), id="413-rows"),
    pytest.param(answer(413), 2, Decision("split", "too_large"), id="413-two-rows"),
    pytest.param(
        answer(413, code="ContentLengthLimitExceeded"), 1, Decision("dead_letter", "oversized_row"), id="413-one-row"
    ),
    pytest.param(answer(400, code="InvalidStream"), 200, Decision("bisect", "bad_request"), id="400-rows"),
    pytest.param(
        answer(400, code="InvalidContent"), 1, Decision("dead_letter", "rejected_by_service"), id="400-one-row"
    ),
    pytest.param(answer(401), 10, Decision("retry", "unauthorized", AUTH_RETRY), id="401"),
    pytest.param(answer(403), 10, Decision("retry", "unauthorized", AUTH_RETRY), id="403"),
    pytest.param(answer(404), 10, Decision("retry", "unauthorized", AUTH_RETRY), id="404"),
    pytest.param(answer(403), 1, Decision("retry", "unauthorized", AUTH_RETRY), id="403-one-row-is-not-dead-lettered"),
    pytest.param(NO_TOKEN, 10, Decision("retry", "unauthorized", AUTH_RETRY), id="credential-gives-no-token"),
]


@pytest.mark.parametrize(("error", "rows", "expected"), FAULTS)
def test_each_fault_has_its_decision(error: UploadError, rows: int, expected: Decision) -> None:
    assert policy(draw=0.0).decide(error, 0, rows) == expected


@pytest.mark.parametrize(
    ("error", "kind", "status", "retry_after"),
    [
        pytest.param(answer(429, {"Retry-After": "7"}), "throttled", 429, 7.0, id="429-retry-after"),
        pytest.param(answer(429, {"retry-after-ms": "1500"}), "throttled", 429, 1.5, id="429-retry-after-ms"),
        pytest.param(answer(429), "throttled", 429, None, id="429"),
        pytest.param(answer(503), "transient", 503, None, id="503"),
        pytest.param(answer(413), "too_large", 413, None, id="413"),
        pytest.param(answer(400), "bad_request", 400, None, id="400"),
        pytest.param(answer(404), "unauthorized", 404, None, id="404"),
        pytest.param(NO_TOKEN, "unauthorized", None, None, id="no-token"),
    ],
)
def test_the_table_starts_from_what_the_sink_raises(
    error: UploadError, kind: str, status: int | None, retry_after: float | None
) -> None:
    assert (error.kind, error.status, error.retry_after) == (kind, status, retry_after)


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(answer(401), id="401"),
        pytest.param(NO_TOKEN, id="no-token"),
        pytest.param(answer(429, {"Retry-After": "5"}), id="429-retry-after"),
        pytest.param(answer(429), id="429"),
        pytest.param(answer(500), id="500"),
        pytest.param(answer(413), id="413"),
        pytest.param(answer(400), id="400"),
    ],
)
def test_only_unauthorized_flips_health_and_only_throttled_pauses_the_source(error: UploadError) -> None:
    decision = policy().decide(error, 3, 10)
    assert decision.unauthorized == (error.kind == "unauthorized")
    assert decision.throttled == (error.kind == "throttled")


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        pytest.param(answer(401), AUTH_RETRY, id="unauthorized-keeps-its-pace"),
        pytest.param(NO_TOKEN, AUTH_RETRY, id="no-token-keeps-its-pace"),
        pytest.param(answer(429, {"Retry-After": "7"}), 7.0, id="retry-after-is-not-multiplied"),
    ],
)
def test_fixed_waits_do_not_grow_with_attempts(error: UploadError, expected: float) -> None:
    for attempt in (0, 1, 5, 40, 5000):
        assert policy(draw=0.9).decide(error, attempt, 10).wait_secs == expected


@pytest.mark.parametrize(
    ("attempt", "ceiling"),
    [
        pytest.param(0, 0.5, id="attempt-0"),
        pytest.param(1, 1.0, id="attempt-1"),
        pytest.param(2, 2.0, id="attempt-2"),
        pytest.param(3, 4.0, id="attempt-3"),
        pytest.param(4, 8.0, id="attempt-4"),
        pytest.param(5, 16.0, id="attempt-5"),
        pytest.param(6, 32.0, id="attempt-6"),
        pytest.param(7, MAX_BACKOFF, id="attempt-7-capped"),
        pytest.param(40, MAX_BACKOFF, id="attempt-40-capped"),
        pytest.param(5000, MAX_BACKOFF, id="attempt-5000-no-overflow"),
    ],
)
@pytest.mark.parametrize("error", [pytest.param(answer(503), id="503"), pytest.param(answer(429), id="429")])
def test_backoff_doubles_per_attempt_up_to_the_cap(error: UploadError, attempt: int, ceiling: float) -> None:
    low = policy(draw=0.0).decide(error, attempt, 10).wait_secs
    high = policy(draw=NEAR_ONE).decide(error, attempt, 10).wait_secs
    top = policy(draw=BELOW_ONE).decide(error, attempt, 10).wait_secs
    assert low == ceiling / 2  # random() = 0: exactly half the ceiling
    assert ceiling / 2 < high < ceiling and high == pytest.approx(ceiling)  # random() -> 1: approaches it
    assert top <= ceiling  # the largest draw: float rounding may reach the ceiling, never pass it


@pytest.mark.parametrize(
    ("max_backoff", "attempt", "ceiling"),
    [
        pytest.param(0.5, 0, 0.5, id="cap-at-the-base"),
        pytest.param(0.5, 3, 0.5, id="cap-below-the-doubling"),
        pytest.param(5.0, 3, 4.0, id="below-a-5s-cap"),
        pytest.param(5.0, 4, 5.0, id="at-a-5s-cap"),
        pytest.param(3600.0, 12, 2048.0, id="below-the-largest-cap"),
        pytest.param(3600.0, 13, 3600.0, id="at-the-largest-cap"),
    ],
)
def test_the_cap_is_max_backoff_secs(max_backoff: float, attempt: int, ceiling: float) -> None:
    wait = policy(draw=0.0, max_backoff_secs=max_backoff).decide(answer(500), attempt, 10).wait_secs
    assert wait == ceiling / 2


def test_retry_after_has_its_own_ceiling_not_the_backoff_cap() -> None:
    slow = policy(max_backoff_secs=0.5, max_retry_after_secs=1.0)
    assert slow.decide(answer(429, {"Retry-After": "2"}), 0, 10).wait_secs == 1.0
    assert slow.decide(answer(429, {"Retry-After": "0.75"}), 0, 10).wait_secs == 0.75


@pytest.mark.parametrize("attempt", [0, 2, 6, 40])
def test_jitter_stays_in_its_bounds_over_many_draws(attempt: int) -> None:
    ceiling = min(MAX_BACKOFF, 0.5 * 2**attempt)
    seeded = RetryPolicy(
        max_backoff_secs=MAX_BACKOFF,
        max_retry_after_secs=MAX_RETRY_AFTER,
        auth_retry_secs=AUTH_RETRY,
        random=random.Random(1414).random,
    )
    waits = [seeded.decide(answer(503), attempt, 10).wait_secs for _ in range(5000)]
    assert all(ceiling / 2 <= w < ceiling for w in waits)
    # spread over the whole interval, not stuck at one end
    assert min(waits) < ceiling * 0.51 and max(waits) > ceiling * 0.99
    assert sum(waits) / len(waits) == pytest.approx(ceiling * 0.75, rel=0.02)


def test_the_same_seed_gives_the_same_waits() -> None:
    def waits(seed: int) -> list[float]:
        p = RetryPolicy(
            max_backoff_secs=60, max_retry_after_secs=900, auth_retry_secs=30, random=random.Random(seed).random
        )
        return [p.decide(answer(500), attempt, 10).wait_secs for attempt in range(12)]

    assert waits(7) == waits(7) != waits(8)


def test_from_config_takes_the_sink_settings() -> None:
    config = LogsIngestionSinkConfig.model_validate(
        {
            "endpoint": "https://dce.example.ingest.monitor.azure.com",
            "rule_id": "dcr-00000000000000000000000000000000",
            "max_backoff_secs": 4,
            "max_retry_after_secs": 20,
            "auth_retry_secs": 9,
        }
    )
    p = RetryPolicy.from_config(config, random=lambda: 0.0)
    assert (p.max_backoff_secs, p.max_retry_after_secs, p.auth_retry_secs) == (4, 20, 9)
    assert p.decide(answer(500), 10, 10).wait_secs == 2.0
    assert p.decide(answer(429, {"Retry-After": "60"}), 0, 10).wait_secs == 20.0
    assert p.decide(answer(403), 0, 10).wait_secs == 9.0


def test_a_policy_without_a_random_source_still_jitters_within_bounds() -> None:
    p = RetryPolicy(max_backoff_secs=60, max_retry_after_secs=900, auth_retry_secs=30)
    assert all(1.0 <= p.decide(answer(500), 2, 10).wait_secs < 2.0 for _ in range(200))
