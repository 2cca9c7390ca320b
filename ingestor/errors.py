"""Exception tree of the ingestor.

IngestorError
+-- ConfigError          configuration cannot be used; message names the key and the fix
+-- UploadError          a Logs Ingestion request failed; `kind` tells the delivery loop what to do
"""

from __future__ import annotations

from typing import Literal

UploadFailure = Literal["throttled", "transient", "too_large", "bad_request", "unauthorized"]


class IngestorError(Exception):
    """Root of every error the ingestor raises on purpose."""


class ConfigError(IngestorError):
    """Configuration problems, one line per problem, each naming the key."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))
        self.problems = problems


class UploadError(IngestorError):
    """A request to the Logs Ingestion API did not land.

    `kind` is what the delivery loop acts on; `status` is the HTTP status (None when no response came);
    `retry_after` is the service's `Retry-After` in seconds when it sent one.
    """

    def __init__(
        self,
        kind: UploadFailure,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        error_code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.kind: UploadFailure = kind
        self.status = status
        self.retry_after = retry_after
        self.error_code = error_code

    @property
    def status_class(self) -> str:
        return f"{self.status // 100}xx" if self.status else "error"
