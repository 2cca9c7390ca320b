"""Every Prometheus metric the ingestor exports, on an injectable registry.

Labels are bounded: table, destination (table name), retention tag, reason, status class, outcome, topic and
partition come from the configuration and the code; the two taken from input, `category` and `column`, are capped
where they are made (`ingestor.bounds`, `pipeline.decode`); the `column` of converted values is a schema's
column. The hot path (decoding, delivery) updates metrics once per batch, never per event.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

disable_created_metrics()  # type: ignore[no-untyped-call]  # `_created` series double every counter's size and nobody graphs them

LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
ACK_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 7.5, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.messages_read = Counter("ingestor_read_messages", "Messages read from the source", ["topic"], registry=r)
        self.events_read = Counter(
            "ingestor_read_events",
            "Records read, by table ('unknown' when the record names none)",
            ["table"],
            registry=r,
        )
        self.events_accepted = Counter(
            "ingestor_accepted_events",
            "Rows the Logs Ingestion API accepted (204)",
            ["table", "retention_tag", "destination"],
            registry=r,
        )
        self.events_dead_lettered = Counter(
            "ingestor_dead_lettered_events",
            "Records written to the dead letter",
            ["table", "reason"],
            registry=r,
        )
        self.events_skipped = Counter(
            "ingestor_skipped_events",
            "Records of categories the ingestor does not ingest",
            ["category"],
            registry=r,
        )
        self.unknown_columns = Counter(
            "ingestor_unknown_columns",
            "Values in columns not in the table schema",
            ["table", "column"],
            registry=r,
        )
        self.truncated_fields = Counter(
            "ingestor_truncated_fields",
            "Field values cut to validation.max_field_bytes",
            ["table"],
            registry=r,
        )
        self.values_converted = Counter(
            "ingestor_values_converted",
            "Values of rows made that were one of Defender's own spellings of a value of their column's type, "
            "converted (rule: empty_as_null, text_as_integer, text_as_real, text_as_boolean, integer_as_boolean, "
            "number_as_text, boolean_as_text)",
            ["table", "column", "rule"],
            registry=r,
        )
        self.unmapped_column_bytes = Counter(
            "ingestor_unmapped_column_bytes",
            "Bytes of the UnmappedColumns values (JSON text) of rows made: what kept unknown columns add",
            ["table"],
            registry=r,
        )
        self.raw_bytes = Counter(
            "ingestor_raw_bytes",
            "Uncompressed JSON bytes of rows accepted (what Log Analytics bills, roughly)",
            ["table", "retention_tag", "destination"],
            registry=r,
        )
        self.compressed_bytes = Counter(
            "ingestor_compressed_bytes",
            "Request body bytes sent and accepted (gzip)",
            ["destination"],
            registry=r,
        )
        self.requests = Counter(
            "ingestor_requests",
            "Logs Ingestion requests by status class",
            ["destination", "status_class"],
            registry=r,
        )
        self.upload_duration = Histogram(
            "ingestor_upload_duration_seconds",
            "Duration of one Logs Ingestion request",
            ["destination"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ack_latency = Histogram(
            "ingestor_ack_latency_seconds",
            "From a message's Kafka timestamp or Event Hubs enqueued time (or its reading) to its last row landing "
            "or being dead-lettered",
            ["destination"],
            buckets=ACK_BUCKETS,
            registry=r,
        )
        self.retries = Counter("ingestor_retries", "Requests retried, by reason", ["destination", "reason"], registry=r)
        self.retry_wait = Counter(
            "ingestor_retry_wait_seconds",
            "Seconds spent waiting before retries",
            ["destination", "reason"],
            registry=r,
        )
        self.retry_waiting = Gauge(
            "ingestor_retry_waiting_seconds",
            "Seconds the current wait before a retry lasts (a Retry-After, a backoff); 0 while not waiting",
            ["destination"],
            registry=r,
        )
        self.batch_splits = Counter(
            "ingestor_batch_splits",
            "Batches split after 413 or bisected after 400",
            ["destination", "reason"],
            registry=r,
        )
        self.dead_letter_written = Counter(
            "ingestor_dead_letter_written_entries", "Entries made durable in the dead letter", registry=r
        )
        self.dead_letter_truncated = Counter(
            "ingestor_dead_letter_truncated_entries",
            "Dead-letter entries whose raw record was cut to fit the Kafka topic's message limit",
            registry=r,
        )
        self.dead_letter_write_errors = Counter(
            "ingestor_dead_letter_write_errors", "Failed dead-letter writes (retried, never dropped)", registry=r
        )
        self.inflight_bytes = Gauge(
            "ingestor_inflight_bytes", "Row bytes in open batches, queued and in flight", registry=r
        )
        self.committed_offset = Gauge(
            "ingestor_committed_offset", "Last committed offset", ["topic", "partition"], registry=r
        )
        self.consumer_lag = Gauge(
            "ingestor_consumer_lag_messages",
            "High watermark minus committed offset",
            ["topic", "partition"],
            registry=r,
        )
        self.partition_paused = Gauge(
            "ingestor_partition_paused",
            "1 while the partition is paused for backpressure",
            ["topic", "partition"],
            registry=r,
        )
        self.commits = Counter("ingestor_commits", "Offset commits, by outcome", ["outcome"], registry=r)
        self.sink_authorized = Gauge(
            "ingestor_sink_authorized", "0 while the Logs Ingestion API refuses us (401/403/404)", registry=r
        )
        self.sink_reachable = Gauge(
            "ingestor_sink_reachable",
            "0 while requests to the Logs Ingestion API get no answer (DNS failure, connection refused or reset, "
            "TLS handshake failure, timeout); they are retried until they do",
            registry=r,
        )
        self.source_authorized = Gauge(
            "ingestor_source_authorized",
            "0 while an Entra ID credential of the source (Event Hubs, checkpoint store) gives no token",
            registry=r,
        )
        self.source_reachable = Gauge(
            "ingestor_source_reachable",
            "0 while the start waits for a part the source needs that cannot be reached yet (the Kafka brokers, the "
            "Event Hubs namespace, the checkpoint store)",
            registry=r,
        )
        self.source_connect_failures = Counter(
            "ingestor_source_connect_failures",
            "Failed attempts of the start to reach a part of the source, by part (kafka, eventhubs, checkpoint_store)",
            ["part"],
            registry=r,
        )
        self.ready = Gauge("ingestor_ready", "1 when /readyz answers 200 (otherwise it says why)", registry=r)
        self.sink_authorized.set(1)
        self.sink_reachable.set(1)
        self.source_authorized.set(1)
        self.source_reachable.set(1)

    def total(self, sample_name: str) -> float:
        """Sum of every sample named `sample_name` (all label values)."""
        return sum(s.value for metric in self.registry.collect() for s in metric.samples if s.name == sample_name)
