"""Decode, route, validate and shape: raw message bytes -> destination rows, rejects and skips.

Input is the Event Hubs envelope `{"records": [...]}` or one record per line (Storage export). Every record read
ends in exactly one of: a shaped row (serialized once, ready to batch), a Rejected (for the dead letter), or a
skip (unknown category). Hot path: the whole message is decoded typed (route + validate) in one msgspec pass; if
anything in it fails, it is split into raw records and each is decoded alone, and a record that fails is decoded
again to explain why.

A row bound for an Auxiliary table gets TimeGenerated in the form that plan demands (UTC, exactly six fractional
digits) and the half-hour window of that time, which its batcher keeps each batch within; its dynamic columns
go as JSON text, since Auxiliary tables have no dynamic type (`ingestor provision` declares them string).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec

from ingestor.models import AUXILIARY_WINDOW_SECS, Destination, Rejected, SourceRef
from ingestor.pipeline.codec import Envelope, GenericRecord, TableCodec, is_datetime, record_union
from ingestor.retention import TableRoute
from ingestor.tables import CATEGORY_PREFIX, TableSchema, default_stream_name, default_table_name

log = logging.getLogger(__name__)

_MISSING_FIELD = re.compile(r"missing required field `([^`]+)`")
_UNKNOWN_FIELD = re.compile(r"unknown field `([^`]+)`")
_AT_PATH = re.compile(r"at `\$\.?(?:properties\.)?([^`\[]*)")
MAX_SKIP_LABELS = 32
# The window of an Auxiliary row whose Timestamp has the format but is no time (February 30th, year 0).
UNKNOWN_WINDOW = -1


@dataclass(slots=True)
class DecodedRow:
    destination: Destination
    body: bytes
    # Half-hour window of TimeGenerated for an Auxiliary destination (see `auxiliary_time`), else 0.
    window: int = 0

    @property
    def table(self) -> str:
        return self.destination.table


@dataclass(slots=True)
class DecodeResult:
    """What one message turned into; `read` counts records (a message that is not JSON at all counts 1)."""

    rows: list[DecodedRow] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    unknown_columns: Counter[tuple[str, str]] = field(default_factory=Counter)
    truncated_fields: Counter[str] = field(default_factory=Counter)
    read: int = 0


class MessageDecoder:
    """Turns message bytes into shaped rows; one instance per process, built from the schemas."""

    def __init__(
        self,
        schemas: dict[str, TableSchema],
        *,
        routes: dict[str, TableRoute] | None = None,
        unknown_columns: str = "drop",
        max_record_bytes: int = 1_000_000,
        max_field_bytes: int = 65_536,
    ) -> None:
        self._codecs = {s.category: TableCodec.build(s, max_field_bytes=max_field_bytes) for s in schemas.values()}
        # Default: every table to its `<T>_CL` destination of the default class (tests, tools without a config).
        self._routes = routes or {t: TableRoute([], _default_destination(t)) for t in schemas}
        self._reject_unknown = unknown_columns == "reject"
        self._max_record_bytes = max_record_bytes
        self._max_field_bytes = max_field_bytes
        self._encode = msgspec.json.Encoder().encode
        self._decode_generic = msgspec.json.Decoder(GenericRecord).decode
        self._decode_envelope = msgspec.json.Decoder(Envelope).decode
        self._seen_unknown: set[tuple[str, str]] = set()
        self._seen_skipped: set[str] = set()
        self._compile()

    def _compile(self) -> None:
        codecs = list(self._codecs.values())
        self._by_type = {c.record_type: c for c in codecs} | {c.fast_record_type: c for c in codecs}
        self._decode_record = msgspec.json.Decoder(record_union([c.record_type for c in codecs])).decode
        fast = record_union([c.fast_record_type for c in codecs])
        envelope = msgspec.defstruct("TypedEnvelope", [("records", list[fast])])  # type: ignore[valid-type]
        self._decode_message = msgspec.json.Decoder(envelope).decode

    # -- public -------------------------------------------------------------------------------------------

    def decode(self, value: bytes, source: SourceRef | None = None) -> DecodeResult:
        """Hot path: one call per message. `source` locates the message; records get their index.

        Fast path: the whole envelope in one typed decode (no record can be oversized in a message that is not,
        and no string can need truncating). Any failure, or a message that does not fit, goes record by record.
        """
        result = DecodeResult()
        if len(value) <= self._max_record_bytes:
            try:
                records = self._decode_message(value).records  # type: ignore[attr-defined]
            except (msgspec.DecodeError, UnicodeDecodeError):
                pass
            else:
                if self._datetimes_valid(records):
                    result.read = len(records)
                    by_type, shape, append = self._by_type, self._shape, result.rows.append
                    for record in records:
                        append(shape(by_type[record.__class__], record, result))
                    return result
        raws = _split_message(value, self._decode_envelope)
        if isinstance(raws, Rejected):
            result.read = 1
            result.rejected.append(_with_source(raws, source, 0))
            return result
        result.read = len(raws)
        decode_one = self._decode_one
        for index, raw in enumerate(raws):
            decode_one(raw, source, index, result)
        return result

    def _datetimes_valid(self, records: list[Any]) -> bool:
        """Whether every datetime in fast-decoded records has the format the strict types demand."""
        by_type = self._by_type
        for record in records:
            row = record.properties
            for name in by_type[record.__class__].datetime_columns:
                value = getattr(row, name)
                if value is not None and not is_datetime(value):
                    return False
        return True

    def _decode_one(self, raw: bytes, source: SourceRef | None, index: int, result: DecodeResult) -> None:
        if len(raw) > self._max_record_bytes:
            table = self._peek_table(raw)
            detail = f"record is {len(raw)} bytes; validation.max_record_bytes is {self._max_record_bytes}"
            result.rejected.append(Rejected(raw, table, "oversized_record", detail, _ref(source, index)))
            return
        try:
            record = self._decode_record(raw)
        except msgspec.ValidationError:  # a subclass of DecodeError: test it first
            self._explain(raw, source, index, result)
            return
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            result.rejected.append(Rejected(raw, None, "malformed_json", str(exc), _ref(source, index)))
            return
        codec = self._by_type[record.__class__]
        if len(raw) > self._max_field_bytes:
            self._truncate(codec, record.properties, result)
        result.rows.append(self._shape(codec, record, result))

    def _shape(self, codec: TableCodec, record: Any, result: DecodeResult) -> DecodedRow:
        row = record.properties
        route = self._routes[codec.table]
        destination = route.fixed or route(row)
        auxiliary = destination.auxiliary
        window = 0
        if auxiliary:
            row.TimeGenerated, window = auxiliary_time(row.Timestamp)
        else:
            row.TimeGenerated = row.Timestamp
        row.SourceTenantId = record.tenantId
        row.RetentionTag = destination.retention_tag
        for name in destination.dropped_columns:
            setattr(row, name, None)
        for name in codec.dynamic_columns:
            value = getattr(row, name)
            if value.__class__ is str:
                if len(value) > codec.max_string_chars:
                    value = self._truncated(value, codec.table, result)
                setattr(row, name, value if auxiliary else _parse_dynamic(value))
            elif auxiliary and value is not None:
                setattr(row, name, self._encode(value).decode())
        if codec.learned:
            for name, column in codec.learned.items():
                if getattr(row, name) is not None:
                    result.unknown_columns[(codec.table, column)] += 1
                    setattr(row, name, None)
        return DecodedRow(destination, self._encode(row), window)

    # -- records that failed the typed decode: explain each failure ---------------------------------------

    def _explain(self, raw: bytes, source: SourceRef | None, index: int, result: DecodeResult) -> None:
        """Classify a record that failed the typed decode, or learn a new column and retry it."""
        ref = _ref(source, index)
        try:
            generic = self._decode_generic(raw)
        except msgspec.ValidationError:
            result.rejected.append(Rejected(raw, None, "not_an_object", "record is not a JSON object", ref))
            return
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            # The typed decode can stop at a schema error before it sees that the JSON itself is broken
            # (e.g. trailing characters), and msgspec checks UTF-8 lazily, per decoder.
            result.rejected.append(Rejected(raw, None, "malformed_json", str(exc), ref))
            return
        category = generic.category
        if not isinstance(category, str):
            detail = "record has no string `category`"
            result.rejected.append(Rejected(raw, None, "invalid_envelope", detail, ref))
            return
        codec = self._codecs.get(category)
        if codec is None:
            self._skip(category, result)
            return
        if not isinstance(generic.properties, dict):
            detail = "record has no `properties` object"
            result.rejected.append(Rejected(raw, codec.table, "invalid_envelope", detail, ref))
            return
        unknown = [k for k in generic.properties if k not in codec.schema.column_names]
        if unknown:
            # With `drop`, learn the columns so later records take the fast path (which counts and drops
            # them); with `reject`, keep them unknown so each such record comes here with its raw bytes.
            if not self._reject_unknown and all(self._learn(codec, column) for column in unknown):
                self._decode_one(raw, source, index, result)  # learned columns now decode; counted there
                return
            for column in unknown:
                self._note_unknown(codec.table, column, result)
            if self._reject_unknown:
                detail = f"unknown columns {sorted(unknown)}"
                result.rejected.append(Rejected(raw, codec.table, "unknown_column", detail, ref))
                return
            for column in unknown:
                del generic.properties[column]
        try:
            row = msgspec.convert(generic.properties, codec.row_type)
        except msgspec.ValidationError as exc:
            reason, detail = _classify(str(exc), codec.schema)
            result.rejected.append(Rejected(raw, codec.table, reason, detail, ref))
            return
        tenant = generic.tenantId if isinstance(generic.tenantId, str) else None
        record = codec.record_type(properties=row, tenantId=tenant)
        if len(raw) > self._max_field_bytes:
            self._truncate(codec, row, result)
        result.rows.append(self._shape(codec, record, result))

    def _learn(self, codec: TableCodec, column: str) -> bool:
        if not codec.learn(column):
            return False
        log.warning("new column seen; dropping it from rows", extra={"table": codec.table, "column": column})
        self._seen_unknown.add((codec.table, column))
        self._compile()
        return True

    def _note_unknown(self, table: str, column: str, result: DecodeResult) -> None:
        result.unknown_columns[(table, column)] += 1
        if (table, column) not in self._seen_unknown:
            self._seen_unknown.add((table, column))
            log.warning("new column seen", extra={"table": table, "column": column})

    def _skip(self, category: str, result: DecodeResult) -> None:
        label = category.removeprefix(CATEGORY_PREFIX)
        if label not in self._seen_skipped:
            if len(self._seen_skipped) >= MAX_SKIP_LABELS:
                label = "other"
            else:
                self._seen_skipped.add(label)
                log.info("skipping category we do not ingest", extra={"category": category})
        result.skipped[label] += 1

    def _truncated(self, value: str, table: str, result: DecodeResult) -> str:
        encoded = value.encode()
        if len(encoded) <= self._max_field_bytes:
            return value
        result.truncated_fields[table] += 1
        return encoded[: self._max_field_bytes].decode(errors="ignore")

    def _truncate(self, codec: TableCodec, row: Any, result: DecodeResult) -> None:
        for name in codec.string_columns:  # dynamic columns are truncated while shaping
            value = getattr(row, name)
            if value.__class__ is str and len(value) > codec.max_string_chars:
                setattr(row, name, self._truncated(value, codec.table, result))

    def _peek_table(self, raw: bytes) -> str | None:
        try:
            category = self._decode_generic(raw).category
        except (msgspec.DecodeError, UnicodeDecodeError):
            return None
        codec = self._codecs.get(category) if isinstance(category, str) else None
        return codec.table if codec else None


def auxiliary_time(timestamp: str) -> tuple[str, int]:
    """TimeGenerated as Auxiliary tables take it (UTC `YYYY-MM-DDTHH:MM:SS.ffffffZ`) and its half-hour window.

    `timestamp` has the datetime format (0-7 fractional digits; a seventh is cut). One that is no time stays as
    it is, in UNKNOWN_WINDOW, for the service to judge.
    """
    try:
        moment = datetime.fromisoformat(timestamp).astimezone(UTC)
    except (ValueError, OverflowError):
        return timestamp, UNKNOWN_WINDOW
    text = moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
    return text, int(moment.timestamp() // AUXILIARY_WINDOW_SECS)


def _split_message(value: bytes, decode_envelope: Callable[[bytes], Envelope]) -> list[bytes] | Rejected:
    """Records of a message: the envelope's array elements, or its non-empty lines."""
    try:
        return [bytes(r) for r in decode_envelope(value).records]
    except msgspec.ValidationError as exc:
        if "$.records" in str(exc):
            return Rejected(value, None, "invalid_envelope", f"`records` is not a list of records: {exc}", None)
    except (msgspec.DecodeError, UnicodeDecodeError):
        pass
    return [line for line in (raw.strip() for raw in value.split(b"\n")) if line]


def _default_destination(table: str) -> Destination:
    return Destination(table, "", default_stream_name(table), default_table_name(table))


def _ref(source: SourceRef | None, index: int) -> SourceRef | None:
    return SourceRef(source.position, index) if source is not None else None


def _with_source(rejected: Rejected, source: SourceRef | None, index: int) -> Rejected:
    if source is None:
        return rejected
    ref = SourceRef(source.position, index)
    return Rejected(rejected.raw, rejected.table, rejected.reason, rejected.detail, ref)


def _parse_dynamic(text: str) -> Any:
    """JSON text becomes its value so KQL can index it; other text stays a string."""
    if not text or text[0] not in "[{":
        return text
    try:
        return msgspec.Raw(msgspec.json.decode(text.encode(), type=msgspec.Raw))
    except msgspec.DecodeError:
        return text


def _classify(message: str, schema: TableSchema) -> tuple[str, str]:
    """Map a msgspec validation message to a dead-letter reason code."""
    if m := _MISSING_FIELD.search(message):
        return "missing_required_column", f"required column {m.group(1)} is missing"
    if m := _UNKNOWN_FIELD.search(message):
        return "unknown_column", f"unknown column {m.group(1)}"
    column = m.group(1) if (m := _AT_PATH.search(message)) else ""
    if column in schema.required and "got `null`" in message:
        return "missing_required_column", f"required column {column} is null"
    if "Expected `" in message and "got `" in message:
        return "invalid_type", message
    return "invalid_value", message


__all__ = ["UNKNOWN_WINDOW", "DecodeResult", "DecodedRow", "MessageDecoder", "auxiliary_time"]
