"""Exception tree of the ingestor: IngestorError is the root of the errors it raises about its configuration, its
schemas, the services it talks to and its own tasks.

IngestorError
+-- ConfigError          configuration cannot be used; message names the key and the fix
+-- UploadError          a Logs Ingestion request failed; `kind` tells the delivery loop what to do; the library's
|                        exception, when one was caught, is its `__cause__`
+-- TaskDied             an internal task of `ingestor run` ended before shutdown; the process exits 3
+-- tables.SchemaError   a schema file is missing, unreadable or malformed, or a promoted column cannot be one
+-- kql.AnalyzerError    the KQL analyzer of `provision --check-queries` failed
|   +-- kql.AnalyzerUnavailable   Node.js or its npm package is missing; the message says how to get it
+-- sinks.dead_letter_file.DeadLetterFull   the file dead letter holds max_total_bytes; also an OSError, so that it is
                         handled as any failed write

Outside the tree: ValueError for an argument no caller may pass, and RuntimeError from `sources.eventhubs` when the
SDK's receive loop ends without an error (the source task dies of it: TaskDied). The tools package's errors stay
outside too (the emulator's ApiError, and its and the generator's RuntimeError and ValueError). Bad input raises
nothing: it becomes dead-letter entries (ingestor.pipeline.decode). This module imports nothing of the project, so
that every module may import it.
"""

from __future__ import annotations

from typing import Literal

UploadFailure = Literal["throttled", "transient", "too_large", "bad_request", "unauthorized"]


class IngestorError(Exception):
    """Root of the ingestor's own errors; the module's docstring says which stay outside."""


class ConfigError(IngestorError):
    """Configuration problems, one line per problem, each naming the key; a single problem is the message's one
    line."""

    def __init__(self, problems: list[str]) -> None:
        listed = f" {problems[0]}" if len(problems) == 1 else "".join(f"\n  - {p}" for p in problems)
        super().__init__(f"invalid configuration:{listed}")
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
    def no_answer(self) -> bool:
        """The request got no HTTP answer: DNS, connection, TLS or timeout (the network, not the service)."""
        return self.kind == "transient" and self.status is None

    @property
    def status_class(self) -> str:
        return f"{self.status // 100}xx" if self.status else "error"


MAX_DEATH_CHARS = 300  # of the error in a TaskDied message (/healthz body, log line)


class TaskDied(IngestorError):
    """An internal task of `ingestor run` that must run until shutdown ended: raised or returned.

    The message, `task <name> died: <ExceptionType>: <message>`, is one line of bounded length.
    """

    def __init__(self, task: str, error: BaseException | None) -> None:
        self.task = task
        self.error = error
        super().__init__(f"task {task} died: {describe(error)}")


def describe(error: BaseException | None) -> str:
    """`Type: message` of an error on one line, at most MAX_DEATH_CHARS; a group with one error is that error."""
    if error is None:
        return "it returned, but it must run until shutdown"
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    name, text = type(error).__name__, " ".join(str(error).split())
    # Some libraries (aiokafka) already start their message with the type's name.
    text = text if text.startswith(name) else f"{name}: {text}" if text else name
    return text if len(text) <= MAX_DEATH_CHARS else text[: MAX_DEATH_CHARS - 3] + "..."
