"""The sink's outcome events: for each thing that happens to a request (an answer or none, a retry and its wait, a
split, rows landed or dead-lettered), one function that counts it in the metrics and writes its log line, and the
sink's health (`SinkHealth`: what `/readyz` says of the Logs Ingestion API). Nothing here decides anything.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from ingestor.connect.identity import WORKLOAD_IDENTITY_CHECKS, Refusals
from ingestor.errors import UploadError
from ingestor.metrics import Metrics
from ingestor.models import Batch
from ingestor.sinks.retry import Decision

log = logging.getLogger(__name__)

REFUSED = (
    "Logs Ingestion API refused the request; consumption stops until it succeeds. Check that the identity has the "
    "Monitoring Metrics Publisher role on the DCR (403), that the credential is valid (401), and that "
    "sink.endpoint, sink.rule_id and the stream exist (404)"
)
CREDENTIAL_HELP = (
    "the credential gives no Entra ID token for the Logs Ingestion API; consumption stops until it does. "
    + WORKLOAD_IDENTITY_CHECKS
)


UNREACHABLE = (
    "Logs Ingestion API not reachable; requests are retried with back-off until it answers. Check that sink.endpoint "
    "resolves from here (for a private endpoint, the privatelink.monitor.azure.com zone linked to this network), that "
    "egress allows TCP 443 to it, and sink.ca_file"
)


class SinkHealth(Refusals):
    """Which destinations the Logs Ingestion API currently refuses (401/403/404), and which it does not answer at
    all (`unanswered`: the network); each flip is logged once, not each attempt."""

    def __init__(self, metrics: Metrics) -> None:
        super().__init__(metrics.sink_authorized)
        self.unanswered = Refusals(metrics.sink_reachable)

    def no_answer(self, error: UploadError, destination: str) -> None:
        if self.unanswered.refuse(destination, str(error)):
            log.warning(UNREACHABLE, extra={"destination": destination, "error": str(error)})

    def refused(self, error: UploadError, destination: str) -> None:
        reason = f"{error.status} {error}" if error.status else f"credential: {error}"
        if self.refuse(destination, reason):
            log.error(
                CREDENTIAL_HELP if error.status is None else REFUSED,
                extra={"status": error.status, "destination": destination, "error": str(error)},
            )

    def answered(self, destination: str) -> None:
        """An HTTP answer came, whatever its status."""
        if self.unanswered.accept(destination):
            log.info("Logs Ingestion API reachable again", extra={"destination": destination})

    def accepted(self, destination: str) -> None:
        self.answered(destination)
        if self.accept(destination):
            log.info("Logs Ingestion API accepts requests again", extra={"destination": destination})


class SinkEvents:
    """The outcome events of one Delivery; `health` holds what they imply for readiness."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.health = SinkHealth(metrics)

    def answered(self, batch: Batch, status_class: str, elapsed_secs: float) -> None:
        """A request ended after `elapsed_secs`: with an answer of `status_class` (2xx, 4xx, 5xx) or none (error)."""
        destination = batch.destination.label
        self.metrics.upload_duration.labels(destination).observe(elapsed_secs)
        self.metrics.requests.labels(destination, status_class).inc()

    def landed(self, batch: Batch, payload_bytes: int) -> None:
        """The service accepted the request (204): its rows are in the workspace."""
        destination = batch.destination
        by_class = (destination.table, destination.retention_tag, destination.label)
        self.metrics.compressed_bytes.labels(destination.label).inc(payload_bytes)
        self.metrics.events_accepted.labels(*by_class).inc(len(batch))
        self.metrics.raw_bytes.labels(*by_class).inc(batch.raw_bytes)
        self.health.accepted(destination.label)

    def retrying(self, batch: Batch, error: UploadError, decision: Decision, request_id: str, attempt: int) -> None:
        """The request failed and is sent again after `decision.wait_secs`; a refusal or a silent network is logged
        once per change (`health`), any other failure once per attempt."""
        destination = batch.destination.label
        if error.no_answer:
            self.health.no_answer(error, destination)
        elif error.status is not None:
            self.health.answered(destination)
        if decision.unauthorized:
            self.health.refused(error, destination)
        elif not error.no_answer:
            log.warning(
                "upload failed; retrying",
                extra={
                    "destination": destination,
                    "request_id": request_id,
                    "error": str(error),
                    "attempt": attempt + 1,
                    "wait_secs": round(decision.wait_secs, 3),
                },
            )
        self.metrics.retries.labels(destination, decision.reason).inc()
        self.metrics.retry_wait.labels(destination, decision.reason).inc(decision.wait_secs)

    @contextlib.contextmanager
    def waiting(self, batch: Batch, secs: float) -> Iterator[None]:
        """The wait before a retry is under way (`ingestor_retry_waiting_seconds`)."""
        gauge = self.metrics.retry_waiting.labels(batch.destination.label)
        gauge.set(secs)
        try:
            yield
        finally:
            gauge.set(0)

    def split(self, batch: Batch, reason: str) -> None:
        """The batch goes on as two: `estimate` (trimmed to fit), `too_large` (413) or `bad_request` (400)."""
        self.metrics.batch_splits.labels(batch.destination.label, reason).inc()

    def dead_lettered(self, batch: Batch, reason: str, detail: str) -> None:
        """Rows the service will never take went to the dead letter."""
        table = batch.destination.table
        self.metrics.events_dead_lettered.labels(table, reason).inc(len(batch))
        extra = {"table": table, "reason": reason, "rows": len(batch), "detail": detail}
        log.warning("rows dead-lettered", extra=extra)

    def inflight(self, row_bytes: int) -> None:
        self.metrics.inflight_bytes.set(row_bytes)
