"""Configuration: one YAML file, its keys overridable by `INGESTOR_<SECTION>__<KEY>` environment variables (names
are lowercased: a mapping keyed by table names, and a list, is set as a whole).

`load_config()` validates everything before any client is built and raises ConfigError whose lines name the key,
what it expects and where the value came from (`read_document` records each value's file line or variable).
Secrets are `Secret` (a `SecretStr`) and print masked in `effective()`; `secret_paths()` derives from the models
which keys they are, so their environment values are taken verbatim and `provision` never writes them into a file.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, NamedTuple, Union, get_args, get_origin

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    SecretStr,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import InitErrorDetails, PydanticCustomError

from ingestor.errors import ConfigError
from ingestor.retention import RULE_ID_PATTERN, STREAM_PATTERN, TABLE_NAME, RetentionConfig, TableRoute, build_routes
from ingestor.tables import (
    MAX_COLUMNS_PER_TABLE,
    UNMAPPED_COLUMNS,
    ColumnType,
    TableSchema,
    is_column_name,
    load_schemas,
    with_extra_columns,
)

ENV_PREFIX = "INGESTOR_"
# The Logs Ingestion API rejects bodies over 1,048,576 bytes as sent (after gzip); stay just under it.
REQUEST_LIMIT_BYTES = 1_048_576
DEFAULT_MAX_REQUEST_BYTES = 1_040_000
# What `ingestor provision` writes in place of a secret: `${INGESTOR_...}`, the variable that must carry it.
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.]*)\}")
# The Event Hubs Kafka endpoint's port, added to a namespace host written without one.
EVENT_HUBS_KAFKA_PORT = 9093
EXAMPLE_RULE_ID = "dcr-0123456789abcdef0123456789abcdef"
# Blob container names: 3-63 lowercase letters, digits and single hyphens, starting and ending alphanumeric.
CONTAINER_PATTERN = r"^[a-z0-9]([a-z0-9]|-[a-z0-9])+$"
NAMESPACE_PATTERN = r"^[A-Za-z0-9.-]+$"
# `schemas.tables`: every table with a schema file, or a list of them.
ALL_TABLES: Literal["all"] = "all"
TABLES_EXAMPLE = "[DeviceProcessEvents, EmailEvents]"


def _not_a_placeholder(value: SecretStr) -> SecretStr:
    found = _PLACEHOLDER.fullmatch(value.get_secret_value())
    if found:
        raise ValueError(f"is the placeholder {found.group(0)}: set the environment variable {found.group(1)}")
    return value


# Every secret key is of this type: masked when printed, verbatim from the environment, withheld by provision.
Secret = Annotated[SecretStr, AfterValidator(_not_a_placeholder)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaAuth(Section):
    """How to authenticate to the broker.

    `none`: plaintext or TLS without SASL (local Kafka). `connection_string`: Event Hubs shared access key
    (SASL PLAIN, user `$ConnectionString`). `entra`: Event Hubs with an Entra ID token (OAUTHBEARER) from
    azure-identity's DefaultAzureCredential (workload identity, managed identity, service principal).
    """

    type: Literal["none", "connection_string", "entra"] = "none"
    connection_string: Secret | None = None

    @model_validator(mode="after")
    def _needs_secret(self) -> KafkaAuth:
        if self.type == "connection_string" and not self.connection_string:
            raise ValueError(
                "auth.type connection_string needs auth.connection_string (or INGESTOR_SOURCE__AUTH__CONNECTION_STRING)"
            )
        return self


class KafkaSourceConfig(Section):
    type: Literal["kafka"] = "kafka"
    bootstrap_servers: Annotated[list[str], Field(min_length=1)]
    topics: Annotated[list[str], Field(min_length=1)]
    group_id: Annotated[str, Field(min_length=1, max_length=256)]
    auth: KafkaAuth = KafkaAuth()
    # TLS to the broker; Event Hubs always uses it. `ca_file` adds a CA to trust.
    tls: bool = False
    ca_file: Path | None = None
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    # Event Hubs allows 4 commits per second per partition.
    commit_interval_secs: Annotated[float, Field(ge=0.25, le=60)] = 1.0
    # Bytes one fetch may return over all partitions; part of the fixed memory overhead above the in-flight bound.
    fetch_max_bytes: Annotated[int, Field(ge=1024)] = 16_777_216
    max_partition_fetch_bytes: Annotated[int, Field(ge=1024)] = 4_194_304
    max_poll_records: Annotated[int, Field(ge=1)] = 2_000
    # CRC-32C of every fetched record batch. aiokafka computes it in software (about 2 GB/s): ~8% of the CPU
    # at full speed. Off trusts the broker's storage and the transport (TLS on Event Hubs) instead.
    check_crcs: bool = True
    session_timeout_secs: Annotated[float, Field(ge=6, le=300)] = 30.0
    request_timeout_secs: Annotated[float, Field(gt=20, le=300)] = 60.0

    @field_validator("bootstrap_servers", "topics", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        return comma_list(value)

    @field_validator("bootstrap_servers")
    @classmethod
    def _event_hubs_port(cls, value: list[str]) -> list[str]:
        return [with_kafka_port(server) for server in value]

    @property
    def is_event_hubs(self) -> bool:
        return any(is_event_hubs_host(server) for server in self.bootstrap_servers)

    @property
    def uses_tls(self) -> bool:
        """Whether the connection is TLS: asked for, or forced by Event Hubs or by SASL (always SASL_SSL here)."""
        return self.tls or self.is_event_hubs or self.auth.type != "none"

    @model_validator(mode="after")
    def _event_hubs_needs_tls_and_auth(self) -> KafkaSourceConfig:
        if self.is_event_hubs and self.auth.type == "none":
            raise ValueError(
                "bootstrap_servers points at Event Hubs (*.servicebus.*): set auth.type to connection_string or entra"
            )
        return self


def comma_list(value: Any) -> Any:
    """A list written as `a,b` (handy in an environment variable) as a list; anything else as it is."""
    return [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value


def closest(name: str) -> str:
    """What to write instead of `name`, which is no table with a schema: the nearest table names (difflib), else
    every table name."""
    known = list(load_schemas())
    same = [table for table in known if table.lower() == name.lower()]
    scored = [(difflib.SequenceMatcher(None, name, table).ratio(), table) for table in known]
    best = max(score for score, _ in scored)
    # The nearest names, and those almost as near (at most three); none when even the nearest is far.
    near = same or [t for score, t in sorted(scored, reverse=True) if score >= max(0.6, best - 0.05)][:3]
    if near:
        return f"did you mean {' or '.join(near)}?"
    return f"the tables with a schema are {', '.join(known)}"


def not_ingested(table: str, key: str) -> str:
    """The error for a key that names a table outside `schemas.tables`: it would do nothing, so it is a mistake."""
    return f"{table} is not ingested (not in schemas.tables): add it to schemas.tables or remove {key}"


def key_errors(title: str, found: Sequence[tuple[KeyPath, str]]) -> ValidationError:
    """A ValidationError with one error per (key path, message), located at each key (relative to the model
    raising it), so that every line names its own key and the file line of its value (`describe`)."""
    return ValidationError.from_exception_data(
        title,
        [
            InitErrorDetails(
                type=PydanticCustomError("config_key", "{message}", {"message": message}), loc=path, input=None
            )
            for path, message in found
        ],
    )


def is_event_hubs_host(server: str) -> bool:
    return ".servicebus." in server


def with_kafka_port(server: str) -> str:
    """An Event Hubs namespace host without a port gets the Kafka endpoint's; every other server stays as written."""
    if is_event_hubs_host(server) and not re.search(r":\d+$", server):
        return f"{server}:{EVENT_HUBS_KAFKA_PORT}"
    return server


class CheckpointStoreConfig(Section):
    """Blob container holding the AMQP source's partition ownership and checkpoints: `account_url`
    (https://<account>.blob.core.windows.net, Entra ID) or `connection_string`. One container per consumer group."""

    account_url: str | None = None
    connection_string: Secret | None = None
    container: Annotated[str, Field(pattern=CONTAINER_PATTERN, min_length=3, max_length=63)]

    @model_validator(mode="after")
    def _one_way_in(self) -> CheckpointStoreConfig:
        if (self.account_url is None) == (self.connection_string is None):
            raise ValueError(
                "set checkpoint_store.account_url (Entra ID) or checkpoint_store.connection_string "
                "(or INGESTOR_SOURCE__CHECKPOINT_STORE__CONNECTION_STRING), exactly one"
            )
        return self


class EventHubsSourceConfig(Section):
    """Event Hubs over AMQP (azure-eventhub) with partitions balanced through a blob checkpoint store; for the
    Basic tier, which has no Kafka endpoint, or when Kafka is not wanted. Authenticates with Entra ID
    (`fully_qualified_namespace`, DefaultAzureCredential: workload identity first) or a connection string."""

    type: Literal["eventhubs"]
    fully_qualified_namespace: Annotated[str, Field(pattern=NAMESPACE_PATTERN)] | None = None
    connection_string: Secret | None = None
    eventhub_name: Annotated[str, Field(min_length=1, max_length=256)]
    consumer_group: Annotated[str, Field(min_length=1)] = "$Default"
    checkpoint_store: CheckpointStoreConfig
    # Where a partition without a checkpoint starts: the oldest retained event, new events only, or a time.
    starting_position: Literal["earliest", "latest"] | datetime = "earliest"
    max_batch_size: Annotated[int, Field(ge=1, le=10_000)] = 300
    prefetch: Annotated[int, Field(ge=1, le=50_000)] = 1_000
    max_wait_time_secs: Annotated[float, Field(gt=0, le=60)] = 1.0
    load_balancing_interval_secs: Annotated[float, Field(ge=5, le=600)] = 30.0
    # Ownership not renewed for this long is taken over by another process (SDK default: 6 x the interval).
    ownership_expiration_secs: Annotated[float, Field(ge=10, le=3600)] = 180.0
    # Each checkpoint is one Storage write per partition.
    commit_interval_secs: Annotated[float, Field(ge=0.25, le=60)] = 1.0

    @model_validator(mode="after")
    def _one_way_in(self) -> EventHubsSourceConfig:
        if (self.fully_qualified_namespace is None) == (self.connection_string is None):
            raise ValueError(
                "set fully_qualified_namespace (<namespace>.servicebus.windows.net, Entra ID) or connection_string "
                "(or INGESTOR_SOURCE__CONNECTION_STRING), exactly one"
            )
        if self.ownership_expiration_secs <= self.load_balancing_interval_secs:
            raise ValueError("ownership_expiration_secs must exceed load_balancing_interval_secs")
        return self

    @property
    def topics(self) -> list[str]:
        """The event hub, named as the Kafka source names its topics (positions and metrics use it)."""
        return [self.eventhub_name]


def _source_type(value: Any) -> str:
    return str(value.get("type", "kafka") if isinstance(value, dict) else getattr(value, "type", "kafka"))


SourceConfig = Annotated[
    Annotated[KafkaSourceConfig, Tag("kafka")] | Annotated[EventHubsSourceConfig, Tag("eventhubs")],
    Discriminator(_source_type),
]


class Credential(Section):
    """`default`: azure-identity DefaultAzureCredential. `static_token`: a fixed bearer token (emulator only)."""

    type: Literal["default", "static_token"] = "default"
    token: Secret | None = None

    @model_validator(mode="after")
    def _token_present(self) -> Credential:
        if self.type == "static_token" and not self.token:
            raise ValueError(
                "credential.type static_token needs credential.token (or INGESTOR_SINK__CREDENTIAL__TOKEN)"
            )
        return self


class DestinationOverride(Section):
    """Per-table destination of the default class; unset fields take the defaults (sink.rule_id, `Custom-<T>_CL`,
    `<T>_CL`). Destinations of other classes: `retention.destinations`."""

    rule_id: str | None = None
    stream: str | None = None
    table_name: str | None = None


class LogsIngestionSinkConfig(Section):
    type: Literal["logs_ingestion"] = "logs_ingestion"
    # The DCR's logs ingestion endpoint or a data collection endpoint (DCE) URL.
    endpoint: str
    # Immutable id of the default DCR, `dcr-` and 32 hex digits (Azure portal: DCR > JSON view > immutableId).
    rule_id: str
    credential: Credential = Credential()
    ca_file: Path | None = None
    # Turning TLS verification off is for debugging only; the ingestor logs a warning at every start.
    insecure_skip_tls_verify: bool = False
    max_request_bytes: Annotated[int, Field(ge=16_384, le=REQUEST_LIMIT_BYTES)] = DEFAULT_MAX_REQUEST_BYTES
    linger_secs: Annotated[float, Field(gt=0, le=300)] = 2.0
    upload_concurrency: Annotated[int, Field(ge=1, le=64)] = 4
    request_timeout_secs: Annotated[float, Field(gt=0, le=600)] = 60.0
    # Bytes of rows held in open batches, queued and in flight; above it the source pauses.
    max_inflight_bytes: Annotated[int, Field(ge=1_048_576)] = 64 * 1_048_576
    compression_level: Annotated[int, Field(ge=0, le=3)] = 1
    max_backoff_secs: Annotated[float, Field(gt=0, le=3600)] = 60.0
    # A `Retry-After` (429, 503) is honoured up to this; the service's answer, not our backoff, decides the wait.
    max_retry_after_secs: Annotated[float, Field(gt=0, le=3600)] = 900.0
    # How often to retry after 401/403/404 (misconfiguration) before resuming by itself.
    auth_retry_secs: Annotated[float, Field(gt=0, le=3600)] = 30.0
    tables: dict[str, DestinationOverride] = {}

    @field_validator("endpoint")
    @classmethod
    def _https(cls, value: str) -> str:
        if not re.fullmatch(r"https://[^\s/]+(/\S*)?", value):
            raise ValueError(
                f"must be an https:// URL such as https://<dce>.<region>.ingest.monitor.azure.com, got {value!r}"
            )
        return value.rstrip("/")

    @field_validator("rule_id")
    @classmethod
    def _immutable_id(cls, value: str) -> str:
        if not re.fullmatch(RULE_ID_PATTERN, value):
            raise ValueError(
                f"must be a DCR immutable id, 'dcr-' and 32 hex digits, got {value!r}; e.g. {EXAMPLE_RULE_ID} "
                "(Azure portal: the DCR's JSON view, immutableId)"
            )
        return value

    @field_validator("tables")
    @classmethod
    def _known_tables(cls, value: dict[str, DestinationOverride]) -> dict[str, DestinationOverride]:
        known = load_schemas()
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise ValueError(f"unknown tables {unknown}; known tables are {sorted(known)}")
        return value

    @model_validator(mode="after")
    def _tls_file(self) -> LogsIngestionSinkConfig:
        if self.ca_file is not None and not self.ca_file.is_file():
            raise ValueError(f"ca_file {self.ca_file} does not exist or is not a file")
        return self


class DeadLetterConfig(Section):
    """`file`: rotated gzip JSON-lines files under `path`. `kafka`: a topic on the source's brokers (same auth)."""

    type: Literal["file", "kafka"] = "file"
    path: Path | None = None
    max_file_bytes: Annotated[int, Field(ge=65_536)] = 64 * 1_048_576
    # Bytes of `dead-letter-*` files the directory may hold; a write that would pass it is refused (the source
    # pauses, /readyz says the dead letter is full) until files are moved away. Nothing is ever deleted.
    max_total_bytes: Annotated[int, Field(ge=1_048_576)] = 1_073_741_824
    topic: str | None = None
    # A write that fails is retried at this interval while the source stays paused; nothing is dropped.
    retry_secs: Annotated[float, Field(gt=0, le=600)] = 5.0

    @model_validator(mode="after")
    def _target(self) -> DeadLetterConfig:
        if self.type == "file" and self.path is None:
            raise ValueError("dead_letter.path is required for type file (or INGESTOR_DEAD_LETTER__PATH)")
        if self.type == "kafka" and not self.topic:
            raise ValueError("dead_letter.topic is required for type kafka (or INGESTOR_DEAD_LETTER__TOPIC)")
        return self


class MetricsConfig(Section):
    host: str = "0.0.0.0"  # noqa: S104 - scraped from outside the pod
    port: Annotated[int, Field(ge=0, le=65_535)] = 9464


class ValidationConfig(Section):
    # Columns Defender added after our schemas (and not in schemas.extra_columns): the DCR would drop them
    # silently, so we count them and keep their values in the row's UnmappedColumns (default; `ingestor
    # provision` declares that dynamic column), drop them, or dead-letter the record.
    unknown_columns: Literal["keep", "drop", "reject"] = "keep"
    max_record_bytes: Annotated[int, Field(ge=1024, le=REQUEST_LIMIT_BYTES)] = 1_000_000
    # A message (or record) over its limit is dead-lettered without being parsed: decoding costs about 15 times
    # its size in memory. Event Hubs caps a message at 1 MB; plain Kafka brokers may let bigger ones through.
    max_message_bytes: Annotated[int, Field(ge=1024)] = 4_194_304

    @model_validator(mode="after")
    def _message_fits_a_record(self) -> ValidationConfig:
        if self.max_message_bytes < self.max_record_bytes:
            raise ValueError(
                f"validation.max_message_bytes ({self.max_message_bytes}) is smaller than validation.max_record_bytes "
                f"({self.max_record_bytes}); raise the first or lower the second"
            )
        return self

    # The service truncates longer field values; we truncate first and count it.
    max_field_bytes: Annotated[int, Field(ge=1024)] = 65_536


class SchemasConfig(Section):
    """Which tables are ingested and what columns they have beyond the schema files.

    `tables`: `all` (every table with a schema file) or a list of table names; a record of any other table is
    skipped and counted, as a category of no table is, and `ingestor provision` deploys nothing for it.
    `extra_columns: {<Table>: {<Column>: <type>}}`: columns Defender added after the schema files, promoted to real
    columns without a release. Decoding validates them with their type, and `ingestor provision` adds them to the
    tables, the DCR streams and the workspace functions (deploy the new template before running with them, or the
    service drops what the DCR does not declare)."""

    tables: Literal["all"] | list[str] = ALL_TABLES
    extra_columns: dict[str, dict[str, ColumnType]] = {}

    @field_validator("tables", mode="before")
    @classmethod
    def _all_or_names(cls, value: Any) -> Any:
        if isinstance(value, str):
            return ALL_TABLES if value.strip().lower() == ALL_TABLES else comma_list(value)
        if isinstance(value, list) and all(isinstance(name, str) for name in value):
            return value
        raise ValueError(f"expected {ALL_TABLES} or a list of table names, e.g. {TABLES_EXAMPLE}; got {_shown(value)}")

    @model_validator(mode="after")
    def _selection(self) -> SchemasConfig:
        """Each listed table known and listed once, the list not empty (keys naming a table not listed: Config)."""
        known = load_schemas()
        found: list[tuple[KeyPath, str]] = []
        if isinstance(self.tables, list):
            if not self.tables:
                found.append(
                    (
                        ("tables",),
                        f"an empty list ingests no table (every record would be skipped); list the tables to ingest, "
                        f"e.g. {TABLES_EXAMPLE}, or write {ALL_TABLES} for every table with a schema",
                    )
                )
            first: dict[str, int] = {}
            for index, name in enumerate(self.tables):
                if name not in known:
                    found.append((("tables", str(index)), f"{name!r} is no table with a schema; {closest(name)}"))
                elif name in first:
                    found.append(
                        (
                            ("tables", str(index)),
                            f"{name} is listed twice (also schemas.tables.{first[name]}); list each table once",
                        )
                    )
                first.setdefault(name, index)
        if found:
            raise key_errors(self.__class__.__name__, found)
        return self

    @property
    def selected(self) -> tuple[str, ...]:
        """The tables ingested, in schema-file order (all of them for `all`)."""
        known = load_schemas()
        if self.tables == ALL_TABLES:
            return tuple(known)
        listed = set(self.tables)
        return tuple(table for table in known if table in listed)

    @field_validator("extra_columns")
    @classmethod
    def _promotable(cls, value: dict[str, dict[str, ColumnType]]) -> dict[str, dict[str, ColumnType]]:
        schemas = load_schemas()
        problems = []
        unknown = sorted(set(value) - set(schemas))
        if unknown:
            problems.append(f"unknown tables {unknown}; known tables are {sorted(schemas)}")
        for table, columns in value.items():
            if table not in schemas:
                continue
            native = {c.name.lower(): c.name for c in schemas[table].columns}
            seen: dict[str, str] = {}
            for name in columns:
                where = f"{table}.{name}"
                if not is_column_name(name):
                    problems.append(
                        f"{where}: Log Analytics takes no such column name (a letter, then letters, digits and _, at "
                        "most 45 characters, not reserved); it cannot be promoted, its values stay in UnmappedColumns"
                    )
                elif name.lower() == UNMAPPED_COLUMNS.lower():
                    problems.append(f"{where}: {UNMAPPED_COLUMNS} is the ingestor's column for unknown columns")
                elif name.lower() in native:
                    problems.append(
                        f"{where}: {table} already has the column {native[name.lower()]} (names are case-insensitive); "
                        "remove it from schemas.extra_columns"
                    )
                elif name.lower() in seen:
                    problems.append(f"{where}: also listed as {seen[name.lower()]} (names are case-insensitive)")
                seen.setdefault(name.lower(), name)
            total = len(native) + len(columns) + 1  # + UnmappedColumns
            if total > MAX_COLUMNS_PER_TABLE:
                problems.append(
                    f"{table}: {len(native)} columns, {len(columns)} promoted and {UNMAPPED_COLUMNS} make {total}; "
                    f"a table may have {MAX_COLUMNS_PER_TABLE}"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return value


class Config(Section):
    source: SourceConfig
    sink: LogsIngestionSinkConfig
    dead_letter: DeadLetterConfig
    metrics: MetricsConfig = MetricsConfig()
    validation: ValidationConfig = ValidationConfig()
    schemas: SchemasConfig = SchemasConfig()
    retention: RetentionConfig = RetentionConfig()
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # SIGTERM: stop fetching, flush, wait for uploads and commit within this bound.
    shutdown_grace_secs: Annotated[float, Field(gt=0, le=3600)] = 30.0

    @model_validator(mode="after")
    def _kafka_dead_letter_needs_kafka(self) -> Config:
        if self.dead_letter.type == "kafka" and not isinstance(self.source, KafkaSourceConfig):
            raise ValueError(
                "dead_letter.type kafka writes to the Kafka source's brokers; with source.type eventhubs use "
                "dead_letter.type file"
            )
        return self

    @model_validator(mode="after")
    def _names_ingested_tables(self) -> Config:
        """Keys naming a table outside `schemas.tables` would do nothing: each is an error naming its key. A rule
        naming no table tests its `when` column in every ingested table, so each must have it."""
        found = list(_outside_selection(self))
        if found:
            raise key_errors(self.__class__.__name__, found)
        return self

    @property
    def tables(self) -> tuple[str, ...]:
        """The tables ingested (`schemas.tables`), in schema-file order."""
        return self.schemas.selected

    def routes(self) -> dict[str, TableRoute]:
        """The route of every ingested table; other tables have none (their records are skipped)."""
        return build_routes(self.sink, self.retention, self.tables)

    def table_schemas(self) -> dict[str, TableSchema]:
        """The columns of every destination table, per ingested Defender table: the schema file's (in its order),
        then `schemas.extra_columns` (origin "promoted"), then UnmappedColumns when `validation.unknown_columns` is
        keep. New objects each call; `load_schemas()` stays as the files say. A decoder given these knows only the
        ingested tables, so it skips and counts the records of every other one."""
        keep = self.validation.unknown_columns == "keep"
        selected = set(self.tables)
        ingested = {table: schema for table, schema in load_schemas().items() if table in selected}
        return with_extra_columns(ingested, self.schemas.extra_columns, unmapped=keep)

    def effective(self) -> dict[str, Any]:
        """The configuration as it will run, as plain data: keys named as users write them (`in`, `class`), values
        as used (the Kafka source's `tls` true when Event Hubs or SASL forces it), every secret as asterisks."""
        effective: dict[str, Any] = _mask(self.model_dump(mode="python", by_alias=True))
        if isinstance(self.source, KafkaSourceConfig):
            effective["source"]["tls"] = self.source.uses_tls
        return effective


def _outside_selection(config: Config) -> Iterator[tuple[KeyPath, str]]:
    """(key path, error) of each key that names a table not ingested, and of each rule without tables whose `when`
    column some ingested table lacks."""
    selected = set(config.tables)
    named: list[tuple[KeyPath, str, str]] = [
        *((("sink", "tables", t), t, f"sink.tables.{t}") for t in config.sink.tables),
        *((("schemas", "extra_columns", t), t, f"schemas.extra_columns.{t}") for t in config.schemas.extra_columns),
        *(
            (("retention", "rules", str(index), "tables", str(position)), t, "it from the rule's tables")
            for index, rule in enumerate(config.retention.rules)
            for position, t in enumerate(rule.tables)
        ),
        *((("retention", "destinations", t), t, f"retention.destinations.{t}") for t in config.retention.destinations),
    ]
    yield from ((path, not_ingested(table, key)) for path, table, key in named if table not in selected)
    schemas = load_schemas()
    for index, rule in enumerate(config.retention.rules):
        if rule.when is None or rule.tables:
            continue
        lacking = [t for t in config.tables if rule.when.column not in schemas[t].column_names]
        if lacking:
            yield (
                ("retention", "rules", str(index), "when", "column"),
                f"{', '.join(lacking)} {'has' if len(lacking) == 1 else 'have'} no column {rule.when.column!r}; a "
                f"rule without tables applies to every ingested table: name the tables it is for in "
                f"retention.rules.{index}.tables",
            )


def _mask(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return "**********"
    if isinstance(value, dict):
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def secret_paths(model: type[BaseModel] = Config) -> frozenset[tuple[str, ...]]:
    """Key paths (as in the file) of every `SecretStr` field under `model`, every variant of a union included;
    `*` stands for any key of a mapping or any item of a list."""
    fields = model.model_fields.items()
    return frozenset((field.alias or name, *rest) for name, field in fields for rest in _secrets_in(field.annotation))


def _secrets_in(annotation: Any) -> Iterator[tuple[str, ...]]:
    if annotation is SecretStr:
        yield ()
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield from secret_paths(annotation)
    elif get_origin(annotation) is Annotated:
        yield from _secrets_in(get_args(annotation)[0])
    elif get_origin(annotation) in (dict, list, tuple, set, frozenset):
        for inner in get_args(annotation)[-1:]:
            yield from (("*", *rest) for rest in _secrets_in(inner))
    else:  # unions and Optional; a Literal's arguments are values and yield nothing
        for inner in get_args(annotation):
            yield from _secrets_in(inner)


SECRET_PATHS = secret_paths()


def is_secret(path: tuple[str, ...] | list[str]) -> bool:
    """Whether the key at `path` (lowercase, as in the file) holds a secret."""
    return any(
        len(secret) == len(path) and all(s in ("*", p) for s, p in zip(secret, path, strict=True))
        for secret in SECRET_PATHS
    )


def env_name(path: tuple[str, ...] | list[str]) -> str:
    """The environment variable that sets the key at `path`."""
    return ENV_PREFIX + "__".join(p.upper() for p in path)


KeyPath = tuple[str, ...]


class Origin(NamedTuple):
    """Where a value came from: an `INGESTOR_...` variable, or a line of the file."""

    variable: str | None = None
    line: int | None = None


@dataclass
class Document:
    """The configuration as read, before validation: the file's mapping with the environment laid over it, and
    where each value came from (`origins`, by key path as in the file; list items by index)."""

    doc: dict[str, Any]
    origins: dict[KeyPath, Origin] = field(default_factory=dict)
    file: Path | None = None

    def origin(self, path: Sequence[str]) -> Origin | None:
        """The origin of the value at `path`: its own, or that of the nearest enclosing value that has one."""
        for end in range(len(path), 0, -1):
            found = self.origins.get(tuple(path[:end]))
            if found is not None:
                return found
        return None

    def where(self, path: Sequence[str]) -> str:
        """` (from FILE line N)` or ` (from INGESTOR_X)` for the value at `path`; empty when it has no origin."""
        origin = self.origin(path)
        if origin is None:
            return ""
        return f" (from {origin.variable})" if origin.variable else f" (from {self.file} line {origin.line})"


def apply_env(
    doc: dict[str, Any], environ: dict[str, str], origins: dict[KeyPath, Origin] | None = None
) -> dict[str, Any]:
    """Overlay `INGESTOR_A__B=value` onto doc["a"]["b"]; values are parsed as YAML scalars or lists, except the
    values of secret keys, taken verbatim (a YAML parse would cut a secret at ` #` or turn `yes` into true).
    Each variable applied is recorded in `origins`, replacing the origins of what it replaced."""
    for name, text in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        if not all(path) or path[0] not in Config.model_fields:
            continue
        node = doc
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        if origins is not None:
            for key in [k for k in origins if k[: len(path)] == tuple(path)]:
                del origins[key]
            origins[tuple(path)] = Origin(variable=name)
        if is_secret(path) or not text:
            node[path[-1]] = text
            continue
        try:
            node[path[-1]] = yaml.safe_load(text)
        except yaml.YAMLError:
            node[path[-1]] = text
    return doc


def node_entries(node: yaml.Node | None, at: KeyPath = ()) -> Iterator[tuple[KeyPath, yaml.Node, yaml.Node]]:
    """(key path, node the entry starts at (its key, or the list item), value node) of every entry under a composed
    YAML node, depth first; list items are keyed by their index."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            path = (*at, str(key.value))
            yield path, key, value
            yield from node_entries(value, path)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            path = (*at, str(index))
            yield path, item, item
            yield from node_entries(item, path)


def user_path(loc: Sequence[int | str]) -> KeyPath:
    """A pydantic error location as the key path a user writes (without validator steps and the source's tag)."""
    parts = [str(p) for p in loc if not str(p).startswith("function")]
    # Locations inside `source` carry the union tag (`source.kafka.topics`): users write `source.topics`.
    if parts[:1] == ["source"] and parts[1:2] in (["kafka"], ["eventhubs"]):
        del parts[1]
    return tuple(parts)


# What a value must look like, by pydantic error type: (phrase, example when the field has no default).
_EXPECTED = {
    **dict.fromkeys(("int_parsing", "int_type", "int_from_float"), ("a whole number", "4")),
    **dict.fromkeys(("float_parsing", "float_type"), ("a number", "1.5")),
    **dict.fromkeys(("bool_parsing", "bool_type"), ("true or false", "true")),
    "string_type": ("text", "defender"),
    "list_type": ("a list", "[a, b]"),
    **dict.fromkeys(("dict_type", "model_type", "model_attributes_type"), ("a mapping", "{key: value}")),
    **dict.fromkeys(
        ("datetime_parsing", "datetime_type", "datetime_from_date_parsing"),
        ("an ISO 8601 time", "2024-05-01T00:00:00Z"),
    ),
    "path_type": ("a file path", "/etc/ingestor/ca.pem"),
}
_BOUNDS = ("greater_than", "greater_than_equal", "less_than", "less_than_equal")
# What each pattern of the models means, with an example (tests/test_config_check.py checks that none is missing).
PATTERN_MEANINGS = {
    RULE_ID_PATTERN: ("a DCR immutable id, 'dcr-' and 32 hex digits", EXAMPLE_RULE_ID),
    STREAM_PATTERN: ("a DCR stream name, 'Custom-' and letters, digits or _", "Custom-DeviceInfo_CL"),
    f"^{TABLE_NAME}$": (
        "a custom table name: a letter, then letters, digits or _, ending in _CL, at most 63 characters",
        "DeviceInfo_Archive_CL",
    ),
    CONTAINER_PATTERN: (
        "a blob container name: 3-63 lowercase letters, digits and single hyphens, starting and ending alphanumeric",
        "defender-ingestor",
    ),
    NAMESPACE_PATTERN: ("a host name: letters, digits, dots and hyphens", "my-namespace.servicebus.windows.net"),
}


def describe(error: Any, document: Document | None = None) -> str:
    """One line for a pydantic error: the key, what is wrong, what it expects with an example, where it came from.
    A secret's value is never shown."""
    path = user_path(error["loc"])
    loc = ".".join(path) or "(top level)"
    where = document.where(path) if document is not None else ""
    if error["type"] == "missing":
        return f"{loc}: required; set it in the config file or with {env_name(path)}"
    if error["type"] == "extra_forbidden":
        return f"{loc}: unknown key; remove it or check its spelling (see docs/configuration.md, Every key){where}"
    expected = _expected(error, path)
    if expected is None:
        return f"{loc}: {error['msg'].removeprefix('Value error, ')}{where}"
    got = "the value is not valid" if is_secret(path) else f"got {_shown(error['input'])}"
    return f"{loc}: {got}; expected {expected}{where}"


def _expected(error: Any, path: KeyPath) -> str | None:
    kind, context = error["type"], error.get("ctx", {})
    example: Any = None
    if kind in _EXPECTED:
        phrase, example = _EXPECTED[kind]
    elif kind in ("literal_error", "union_tag_invalid"):
        options = re.findall(r"'([^']*)'", str(context.get("expected") or context.get("expected_tags")))
        phrase, example = "one of " + " | ".join(options), options[0] if options else None
    elif kind == "string_pattern_mismatch":
        phrase, example = PATTERN_MEANINGS.get(context["pattern"], (f"text matching {context['pattern']}", None))
    elif kind in _BOUNDS:
        phrase = "a value " + str(error["msg"]).removeprefix("Input should be ")
    else:
        return None
    found = _field_at(path)
    default = None if found is None else found.get_default()
    if isinstance(default, str | int | float) and kind != "string_pattern_mismatch":
        example = str(default).lower() if isinstance(default, bool) else default
    return phrase if example is None else f"{phrase}, e.g. {example}"


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return str(value).lower()
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _field_at(path: Sequence[str], annotation: Any = Config) -> FieldInfo | None:
    """The model field that holds the key at `path` (mapping keys and list indices stepped over), if any."""
    if not path:
        return None
    for option in _alternatives(annotation):
        if isinstance(option, type) and issubclass(option, BaseModel):
            found = next((f for name, f in option.model_fields.items() if path[0] in (name, f.alias)), None)
            if found is not None:
                return found if len(path) == 1 else _field_at(path[1:], found.annotation)
        elif get_origin(option) in (dict, list):
            return _field_at(path[1:], get_args(option)[-1])
    return None


def _alternatives(annotation: Any) -> list[Any]:
    """The types an annotation allows, Annotated and unions unwrapped."""
    if get_origin(annotation) is Annotated:
        return _alternatives(get_args(annotation)[0])
    if get_origin(annotation) in (Union, UnionType):
        return [option for arg in get_args(annotation) for option in _alternatives(arg)]
    return [annotation]


def validate(document: Document) -> Config:
    """The configuration of `document`, or ConfigError with one line per problem (`describe`)."""
    try:
        return Config.model_validate(document.doc)
    except ValidationError as exc:
        raise ConfigError([describe(e, document) for e in exc.errors()]) from None


def parse_config(doc: dict[str, Any]) -> Config:
    return validate(Document(doc))


def yaml_problem(exc: yaml.YAMLError) -> str:
    """What PyYAML found wrong and where (line, column), without the snippet of the line it quotes."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"{exc.problem} at line {mark.line + 1}, column {mark.column + 1}"
    return exc.__class__.__name__


def read_document(path: Path | None, environ: dict[str, str] | None = None) -> Document:
    """The YAML file (optional when everything comes from the environment) with the environment laid over it, and
    the origin of every value; not validated."""
    doc: Any = {}
    node: yaml.Node | None = None
    if path is not None:
        try:
            loader = yaml.SafeLoader(path.read_text(encoding="utf-8"))
            try:
                node = loader.get_single_node()
                doc = {} if node is None else loader.construct_document(node)
            finally:
                loader.dispose()
        except OSError as exc:
            raise ConfigError([f"--config {path}: cannot read ({exc.strerror})"]) from exc
        except yaml.YAMLError as exc:
            # Not `from exc`, and not str(exc): PyYAML's text quotes the offending line, which may hold a secret.
            raise ConfigError([f"--config {path}: not valid YAML ({yaml_problem(exc)})"]) from None
        if not isinstance(doc, dict):
            raise ConfigError([f"--config {path}: top level must be a mapping of sections"])
    origins = {entry: Origin(line=start.start_mark.line + 1) for entry, start, _ in node_entries(node)}
    doc = apply_env(doc, dict(os.environ if environ is None else environ), origins)
    return Document(doc, origins, path)


def load_config(path: Path | None, environ: dict[str, str] | None = None) -> Config:
    """Read YAML (optional when everything comes from the environment), overlay env, validate."""
    return validate(read_document(path, environ))
