"""Configuration: one YAML file, its keys overridable by `INGESTOR_<SECTION>__<KEY>` environment variables (names
are lowercased: a mapping keyed by table names, and a list, is set as a whole).

`load_config()` validates everything before any client is built and raises ConfigError whose lines name the
key and the fix. Secrets are `Secret` (a `SecretStr`) and print masked in `masked()`; `secret_paths()` derives
from the models which keys they are, so their environment values are taken verbatim and `provision` never
writes them into a file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

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

from ingestor.errors import ConfigError
from ingestor.retention import RetentionConfig, TableRoute, build_routes
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
        return [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value

    @property
    def is_event_hubs(self) -> bool:
        return any(".servicebus." in server for server in self.bootstrap_servers)

    @model_validator(mode="after")
    def _event_hubs_needs_tls_and_auth(self) -> KafkaSourceConfig:
        if self.is_event_hubs and self.auth.type == "none":
            raise ValueError(
                "bootstrap_servers points at Event Hubs (*.servicebus.*): set auth.type to connection_string or entra"
            )
        return self


class CheckpointStoreConfig(Section):
    """Blob container holding the AMQP source's partition ownership and checkpoints: `account_url`
    (https://<account>.blob.core.windows.net, Entra ID) or `connection_string`. One container per consumer group."""

    account_url: str | None = None
    connection_string: Secret | None = None
    # Blob container names: 3-63 lowercase letters, digits and single hyphens, starting and ending alphanumeric.
    container: Annotated[str, Field(pattern=r"^[a-z0-9]([a-z0-9]|-[a-z0-9])+$", min_length=3, max_length=63)]

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
    fully_qualified_namespace: Annotated[str, Field(pattern=r"^[A-Za-z0-9.-]+$")] | None = None
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
        if not re.fullmatch(r"dcr-[0-9a-fA-F]{32}", value):
            raise ValueError(f"must be a DCR immutable id, 'dcr-' and 32 hex digits, got {value!r}")
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
    """Columns Defender added after the schema files, promoted to real columns without a release:
    `extra_columns: {<Table>: {<Column>: <type>}}`. Decoding validates them with their type, and `ingestor
    provision` adds them to the tables, the DCR streams and the workspace functions (deploy the new template
    before running with them, or the service drops what the DCR does not declare)."""

    extra_columns: dict[str, dict[str, ColumnType]] = {}

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

    def routes(self) -> dict[str, TableRoute]:
        return build_routes(self.sink, self.retention)

    def table_schemas(self) -> dict[str, TableSchema]:
        """The columns of every destination table, per Defender table: the schema file's (in its order), then
        `schemas.extra_columns` (origin "promoted"), then UnmappedColumns when `validation.unknown_columns` is
        keep. New objects each call; `load_schemas()` stays as the files say."""
        keep = self.validation.unknown_columns == "keep"
        return with_extra_columns(load_schemas(), self.schemas.extra_columns, unmapped=keep)

    def masked(self) -> dict[str, Any]:
        """The configuration as plain data with every secret replaced by asterisks."""
        masked: dict[str, Any] = _mask(self.model_dump(mode="python"))
        return masked


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


def apply_env(doc: dict[str, Any], environ: dict[str, str]) -> dict[str, Any]:
    """Overlay `INGESTOR_A__B=value` onto doc["a"]["b"]; values are parsed as YAML scalars or lists, except the
    values of secret keys, taken verbatim (a YAML parse would cut a secret at ` #` or turn `yes` into true)."""
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
        if is_secret(path) or not text:
            node[path[-1]] = text
            continue
        try:
            node[path[-1]] = yaml.safe_load(text)
        except yaml.YAMLError:
            node[path[-1]] = text
    return doc


def _describe(error: Any) -> str:
    # Locations inside `source` carry the union tag (`source.kafka.topics`): users write `source.topics`.
    parts = [str(p) for p in error["loc"] if not str(p).startswith("function")]
    if parts[:1] == ["source"] and parts[1:2] in (["kafka"], ["eventhubs"]):
        del parts[1]
    loc = ".".join(parts)
    env = ENV_PREFIX + "__".join(p.upper() for p in parts)
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "missing":
        return f"{loc}: required; set it in the config file or with {env}"
    if error["type"] == "extra_forbidden":
        return f"{loc}: unknown key; remove it or check its spelling (see README, Configuration)"
    return f"{loc or '(top level)'}: {message}"


def parse_config(doc: dict[str, Any]) -> Config:
    try:
        return Config.model_validate(doc)
    except ValidationError as exc:
        raise ConfigError([_describe(e) for e in exc.errors()]) from None


def yaml_problem(exc: yaml.YAMLError) -> str:
    """What PyYAML found wrong and where (line, column), without the snippet of the line it quotes."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"{exc.problem} at line {mark.line + 1}, column {mark.column + 1}"
    return exc.__class__.__name__


def load_config(path: Path | None, environ: dict[str, str] | None = None) -> Config:
    """Read YAML (optional when everything comes from the environment), overlay env, validate."""
    doc: Any = {}
    if path is not None:
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except OSError as exc:
            raise ConfigError([f"--config {path}: cannot read ({exc.strerror})"]) from exc
        except yaml.YAMLError as exc:
            # Not `from exc`, and not str(exc): PyYAML's text quotes the offending line, which may hold a secret.
            raise ConfigError([f"--config {path}: not valid YAML ({yaml_problem(exc)})"]) from None
        if not isinstance(doc, dict):
            raise ConfigError([f"--config {path}: top level must be a mapping of sections"])
    return parse_config(apply_env(doc, dict(os.environ if environ is None else environ)))
