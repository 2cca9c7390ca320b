"""Decode, route, validate and shape: raw message bytes -> destination rows, rejects and skips.

Input is the Event Hubs envelope `{"records": [...]}` or one record per line (Storage export). Every record read ends
in exactly one of: a shaped row (serialized once, ready to batch), a Rejected (for the dead letter), or a skip (a
category not ingested). Hot path: the whole message is decoded typed (route + validate; records of a documented table
that `schemas.tables` leaves out are skipped unread) in one msgspec pass; if a value fails, it is decoded again with
tolerant types and Defender's own spellings of values (`spellings`: `""` for null, `"1"` for true, ...) are converted
in one pass; if anything in it still fails, it is split into raw records and each is decoded alone (its spellings
converted the same way), and a record that fails is decoded again to explain why. Each conversion of a row made is
counted per (table, column, rule) in `DecodeResult.converted`, the first of each logged once; columns in no schema are
never converted. A reject's reason (`models.DEAD_LETTER_REASONS`) comes from the exception's type and, for a record
that is valid JSON but not a valid row, from checking its values against their columns' types (`TableCodec.problem`),
never from the wording of msgspec's messages; its detail names the column when there is one. A number beyond a
double's range (`1e400`), which msgspec reads as no value, is kept as written where any value goes (dynamic and
unknown columns) and is `invalid_value` in a typed column.

The invariant, enforced by `MessageDecoder.decode`: whatever bytes arrive, decoding returns; it never raises. A
message over `max_message_bytes` and a record over `max_record_bytes` are refused before they are parsed (the dead
letter keeps a bounded copy). Anything keyed by input (learned columns, label values, first sightings) is capped
(`ingestor.bounds`; learned columns by `codec.MAX_LEARNED_COLUMNS`).

Columns in no schema (Defender adds columns over time; the schemas given may hold columns the configuration
promoted) are counted per table and column under bounded labels and, by `unknown_columns`:
- `keep` (default): their non-null values go into the row's one `UnmappedColumns` column, an object of original
  column name -> value (any name, even one Log Analytics refuses as a column; counted as `invalid_name`). A row
  without such values has no UnmappedColumns. A record's own `UnmappedColumns` key is one more unknown column
  (kept as the member `UnmappedColumns`). The object's JSON text is bounded like any field value: over
  `max_field_bytes` it is cut to that many bytes and sent as a string, as an over-long dynamic value is (counted
  in `truncated_fields`). Its size per row is summed in `DecodeResult.unmapped_bytes`.
- `drop`: the values are dropped.
- `reject`: the record is dead-lettered as `unknown_column`.

A row bound for an Auxiliary table gets TimeGenerated in the form that plan demands (UTC, exactly six fractional
digits) and the half-hour window of that time, which its batcher keeps each batch within; its dynamic columns,
UnmappedColumns included, go as JSON text, since Auxiliary tables have no dynamic type (`ingestor provision`
declares them string).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec

from ingestor.bounds import MAX_LABEL_CHARS, OTHER, BoundedLabels, bounded_copy, cut
from ingestor.models import AUXILIARY_WINDOW_SECS, Destination, Rejected, SourceRef
from ingestor.pipeline.codec import (
    MAX_LEARNED_COLUMNS,
    Envelope,
    EnvelopeMembers,
    GenericRecord,
    TableCodec,
    decode_members,
    is_datetime,
    json_kind,
    record_union,
)
from ingestor.pipeline.spellings import EMPTY_AS_NULL
from ingestor.retention import TableRoute
from ingestor.tables import (
    CATEGORY_PREFIX,
    UNMAPPED_COLUMNS,
    TableSchema,
    default_stream_name,
    default_table_name,
    is_column_name,
    load_schemas,
    with_extra_columns,
)

log = logging.getLogger(__name__)

# Strings (with their escapes) and the characters that give JSON its structure, for `_scan_records`.
_STRUCTURE = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},]')
_CATEGORY = re.compile(rb'"category"\s*:\s*"([^"\\]{1,128})"')
# Label caps: distinct skipped categories; distinct unknown columns per table (learned ones first); kinds of
# unforeseen exception logged once each.
MAX_SKIP_LABELS = 32
MAX_UNKNOWN_COLUMN_LABELS = MAX_LEARNED_COLUMNS
MAX_ERROR_KINDS = 32
# The `column` label of unknown columns whose name Log Analytics would refuse (never learned, never a label).
INVALID_NAME = "invalid_name"
UNKNOWN_COLUMN_POLICIES = ("keep", "drop", "reject")
# Where a message's size is peeked for a category when it is too big to parse.
_PEEK_BYTES = 4096
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
    """What one message turned into; `read` counts records (a message that is no list of records counts 1).

    `read == len(rows) + len(rejected) + skipped.total()` for every message.
    """

    rows: list[DecodedRow] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    # (table, column label): bounded labels, see MAX_UNKNOWN_COLUMN_LABELS and INVALID_NAME.
    unknown_columns: Counter[tuple[str, str]] = field(default_factory=Counter)
    truncated_fields: Counter[str] = field(default_factory=Counter)
    # table: bytes of the UnmappedColumns values (their JSON text) of the rows made.
    unmapped_bytes: Counter[str] = field(default_factory=Counter)
    # (table, column, rule): values of the rows made that were one of Defender's spellings (`spellings.RULES`),
    # converted; table and column from the schemas, never from input.
    converted: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    read: int = 0

    def reject(self, raw: bytes, table: str | None, reason: str, detail: str, source: SourceRef | None) -> None:
        self.rejected.append(Rejected(raw, table, reason, cut(detail), source))

    def reject_copy(self, raw: bytes, table: str | None, reason: str, detail: str, source: SourceRef | None) -> None:
        """Reject `raw` keeping only a bounded copy of it, with its length and hash in the detail."""
        copy, note = bounded_copy(raw)
        original = len(raw) if len(copy) < len(raw) else None
        self.rejected.append(Rejected(copy, table, reason, cut(f"{detail}; {note}"), source, original))


class MessageDecoder:
    """Turns message bytes into shaped rows; one instance per process, built from the schemas.

    `schemas`: the tables' schemas, promoted columns included (`Config.table_schemas()`); with `keep`, the
    UnmappedColumns column is added to them if they lack it.
    """

    def __init__(
        self,
        schemas: dict[str, TableSchema],
        *,
        routes: dict[str, TableRoute] | None = None,
        unknown_columns: str = "keep",
        max_record_bytes: int = 1_000_000,
        max_field_bytes: int = 65_536,
        max_message_bytes: int = 4_194_304,
    ) -> None:
        if unknown_columns not in UNKNOWN_COLUMN_POLICIES:
            raise ValueError(f"unknown_columns must be one of {UNKNOWN_COLUMN_POLICIES}, not {unknown_columns!r}")
        # Default: every table to its `<T>_CL` destination of the default class (tests, tools without a config).
        self._routes = routes or {t: TableRoute([], _default_destination(t)) for t in schemas}
        self._keep = unknown_columns == "keep"
        self._reject_unknown = unknown_columns == "reject"
        schemas = with_extra_columns(schemas, {}, unmapped=self._keep)
        self._max_record_bytes = max_record_bytes
        self._max_field_bytes = max_field_bytes
        self._max_message_bytes = max(max_message_bytes, max_record_bytes)
        self._encode = msgspec.json.Encoder().encode
        self._decode_generic = msgspec.json.Decoder(GenericRecord).decode
        self._decode_envelope = msgspec.json.Decoder(Envelope).decode
        self._decode_envelope_members = msgspec.json.Decoder(EnvelopeMembers).decode
        self._column_labels = {s.table: BoundedLabels(MAX_UNKNOWN_COLUMN_LABELS) for s in schemas.values()}
        self._invalid_names_seen: set[str] = set()  # tables
        self._skip_labels = BoundedLabels(MAX_SKIP_LABELS)
        self._error_kinds = BoundedLabels(MAX_ERROR_KINDS)
        # (table, column, rule) converted so far: bounded by the schemas' columns and the rules of their types.
        self._conversions_seen: set[tuple[str, str, str]] = set()
        # A record struct per documented table left out of `schemas` (`schemas.tables`), with no field but its
        # category: the typed pass skips such records without looking into them.
        ingested = {s.category for s in schemas.values()}
        self._not_ingested: dict[type[msgspec.Struct], str] = {
            msgspec.defstruct(f"{s.table}NotIngested", [], tag_field="category", tag=s.category): s.category
            for s in load_schemas().values()
            if s.category not in ingested
        }
        self._use({s.category: TableCodec.build(s, max_field_bytes=max_field_bytes) for s in schemas.values()})

    def _use(self, codecs: dict[str, TableCodec]) -> None:
        """Compile the decoders for `codecs` and switch to them; nothing changes if compiling fails."""
        types = list(codecs.values())
        by_type = {c.record_type: c for c in types} | {c.fast_record_type: c for c in types}
        decode_record = msgspec.json.Decoder(record_union([c.record_type for c in types])).decode
        not_ingested = list(self._not_ingested)
        fast = record_union([c.fast_record_type for c in types] + not_ingested)
        envelope = msgspec.defstruct("TypedEnvelope", [("records", list[fast])])  # type: ignore[valid-type]
        decode_message = msgspec.json.Decoder(envelope).decode
        tolerant = record_union([c.tolerant_record_type for c in types] + not_ingested)
        tolerant_envelope = msgspec.defstruct("TolerantEnvelope", [("records", list[tolerant])])  # type: ignore[valid-type]
        decode_tolerant = msgspec.json.Decoder(tolerant_envelope).decode
        by_type |= {c.tolerant_record_type: c for c in types}
        self._codecs, self._by_type = codecs, by_type
        self._decode_record, self._decode_message = decode_record, decode_message
        self._decode_tolerant = decode_tolerant

    # -- public -------------------------------------------------------------------------------------------

    def decode(self, value: bytes, source: SourceRef | None = None) -> DecodeResult:
        """Hot path: one call per message. `source` locates the message; records get their index.

        Total: whatever `value` holds, this returns, and every record read is a row, a Rejected or a skip. A
        failure nobody foresaw dead-letters the record (or, outside any record, the message) as `internal_error`
        and leaves the decoder as it was: codecs change only by `_use`, which swaps in fully compiled ones.
        """
        try:
            result = self._decode(value, source)
            if result.converted:
                self._note_conversions(result.converted)
            return result
        except Exception as exc:  # noqa: BLE001 - the guard of the invariant above
            result = DecodeResult(read=1)
            self._internal_error(value, exc, _ref(source, 0), result)
            return result

    def _decode(self, value: bytes, source: SourceRef | None) -> DecodeResult:
        """Fast path: the whole envelope in one typed decode (no record can be oversized in a message that is not,
        and no string can need truncating); failing that on a value, in one tolerant typed decode whose values of
        the wrong class are all Defender's spellings. Any other failure, or a message that does not fit, goes
        record by record.
        """
        result = DecodeResult()
        size = len(value)
        if size <= self._max_record_bytes:
            try:
                records = self._whole(value, result)
                if records is not None:
                    by_type, shape, append = self._by_type, self._shape, result.rows.append
                    for record in records:
                        append(shape(by_type[record.__class__], record, result))
                    result.read = len(records) + result.skipped.total()
                    return result
            except Exception:  # noqa: BLE001 - any failure: the per-record path below explains it
                result = DecodeResult()
        elif size > self._max_message_bytes:
            result.read = 1
            self._refuse(value, "message", _ref(source, 0), result)
            return result
        raws = self._split(value, source, result)
        result.read = len(raws) or len(result.rejected)
        for index, raw in enumerate(raws):
            try:
                self._decode_one(raw, source, index, result)
            except RecursionError:
                detail = "JSON nested deeper than the decoder allows (about 1,000 levels)"
                result.reject(raw, self._peek_table(raw), "too_deeply_nested", detail, _ref(source, index))
            except Exception as exc:  # noqa: BLE001 - one record's unforeseen failure stays that record's
                self._internal_error(raw, exc, _ref(source, index), result)
        return result

    def _split(self, value: bytes, source: SourceRef | None, result: DecodeResult) -> list[bytes]:
        """Records of a message: the envelope's array elements, or its non-empty lines; [] if it has none (then
        `result` holds why)."""
        ref = _ref(source, 0)
        records: list[bytes] | None = None
        try:
            records = [bytes(r) for r in self._decode_envelope(value).records]
        except msgspec.ValidationError:  # no object, no `records`, or `records` no array: only the last is invalid
            kind = self._records_kind(value)
            if kind is not None:
                result.reject(value, None, "invalid_envelope", f"`records` is {kind}, not a list of records", ref)
                return []
        except RecursionError:  # too deep for the decoder: find its records by their brackets instead
            records = _scan_records(value)
        except (msgspec.DecodeError, UnicodeDecodeError):
            pass
        if records is None:  # not an envelope: its lines are its records
            records = [line for line in (raw.strip() for raw in value.split(b"\n")) if line]
        if not records:
            detail = f"message of {len(value)} bytes holds no record (empty, whitespace or an empty `records`)"
            result.reject(value, None, "empty_message", detail, ref)
        return records

    def _records_kind(self, value: bytes) -> str | None:
        """What a message's `records` member is when it is no array (in JSON's words); None when the message has no
        `records` member, is no JSON object, or is malformed JSON (then it is no envelope: its lines are records)."""
        try:
            records = self._decode_envelope_members(value).records
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):  # ValidationError: no object
            return None
        kind = None if records is msgspec.UNSET else json_kind(records)
        return None if kind in (None, "an array") else kind

    def _whole(self, value: bytes, result: DecodeResult) -> list[Any] | None:
        """The records of the message's ingested tables decoded typed as a whole, their spellings converted and the
        records of documented tables not ingested skipped (both counted in `result`); None when that cannot be done
        or the message holds no record. Raises what msgspec raises for a message no typed decode takes."""
        try:
            records: list[Any] = self._decode_message(value).records  # type: ignore[attr-defined]
            drifted = False
        except msgspec.ValidationError:  # a value of the wrong class, or a category of no table of ours
            records = self._decode_tolerant(value).records  # type: ignore[attr-defined]
            drifted = True
        if not records:
            return None
        skipped: list[str] = []
        if self._not_ingested:
            not_ingested, kept = self._not_ingested, []
            for record in records:
                category = not_ingested.get(record.__class__)
                if category is None:
                    kept.append(record)
                else:
                    skipped.append(category)
            records = kept
        if (drifted or not self._datetimes_valid(records)) and not self._respelled(records, result):
            return None
        for category in skipped:
            self._skip(category, result)
        return records

    def _respelled(self, records: list[Any], result: DecodeResult) -> bool:
        """Convert the spellings in typed-decoded `records` (`TableCodec.drift_groups`) and count them in `result`;
        False, counting nothing, when a value is none (a record's problem for the per-record path to explain), or
        when a required column's is null. A group of columns whose values all have their type's class (and format)
        is passed over in a few calls; only a group holding another class is looked at value by value."""
        by_type = self._by_type
        done: list[tuple[str, str, str]] = []
        for record in records:
            codec = by_type[record.__class__]
            row = record.properties
            for values_of, classes, check, names, clean, spelling in codec.drift_groups:
                values = values_of(row)
                if classes.issuperset(map(type, values)) and (
                    check is None or all(value is None or check(value) for value in values)
                ):
                    continue
                for name, value in zip(names, values, strict=True):
                    if value is None or (value.__class__ is clean and (check is None or check(value))):
                        continue
                    conversion = spelling(value)
                    if conversion is None:
                        return False
                    if conversion[0] is None and name in codec.schema.required:
                        return False
                    setattr(row, name, conversion[0])
                    done.append((codec.table, name, conversion[1]))
        result.converted.update(done)
        return True

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
        ref = _ref(source, index)
        if len(raw) > self._max_record_bytes:
            self._refuse(raw, "record", ref, result)
            return
        try:
            record = self._decode_record(raw)
        except msgspec.ValidationError:  # a subclass of DecodeError: test it first
            self._explain(raw, source, index, result)
            return
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            result.reject(raw, None, "malformed_json", str(exc), ref)
            return
        codec = self._by_type[record.__class__]
        if len(raw) > self._max_field_bytes:
            self._truncate(codec, record.properties, result)
        result.rows.append(self._shape(codec, record, result))

    def _shape(
        self, codec: TableCodec, record: Any, result: DecodeResult, kept: dict[str, Any] | None = None
    ) -> DecodedRow:
        """The row of a decoded record; `kept`: values of unknown columns the per-record path took out of it."""
        row = record.properties
        route = self._routes[codec.table]
        destination = route.fixed
        if destination is None:
            self._empty_dynamic(codec, row, result)  # the rules' predicates see the values the row lands with
            destination = route(row)
        elif destination.dropped_columns:
            self._empty_dynamic(codec, row, result)  # counted where the destination drops the column too
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
                if not value:  # `""`: Defender's spelling of null (`spellings.empty_only`)
                    setattr(row, name, None)
                    result.converted[(codec.table, name, EMPTY_AS_NULL)] += 1
                    continue
                if len(value) > codec.max_string_chars:
                    value = self._truncated(value, codec.table, result)
                setattr(row, name, value if auxiliary else _parse_dynamic(value))
            elif auxiliary and value is not None:
                setattr(row, name, self._encode(value).decode())
        if codec.learned:
            labels = self._column_labels[codec.table]
            keep = self._keep
            for name, column in codec.learned.items():
                value = getattr(row, name)
                if value is not None:
                    result.unknown_columns[(codec.table, labels.get(column))] += 1
                    setattr(row, name, None)
                    if keep:
                        if kept is None:
                            kept = {}
                        kept[column] = value
        if codec.unmapped and (kept or row.UnmappedColumns is not None):
            self._unmapped(codec.table, row, kept, auxiliary, result)
        return DecodedRow(destination, self._encode(row), window)

    @staticmethod
    def _empty_dynamic(codec: TableCodec, row: Any, result: DecodeResult) -> None:
        """Null, and count, the row's dynamic columns that hold `""`, as shaping does."""
        for name in codec.dynamic_columns:
            value = getattr(row, name)
            if value.__class__ is str and not value:
                setattr(row, name, None)
                result.converted[(codec.table, name, EMPTY_AS_NULL)] += 1

    def _unmapped(
        self, table: str, row: Any, kept: dict[str, Any] | None, auxiliary: bool, result: DecodeResult
    ) -> None:
        """Set the row's UnmappedColumns to `kept` (and the record's own `UnmappedColumns`, a member like any other):
        an object, or its JSON text for an Auxiliary table or when it is over `max_field_bytes` (then cut)."""
        members = kept or {}
        if row.UnmappedColumns is not None:
            members = {UNMAPPED_COLUMNS: row.UnmappedColumns, **members}
            self._note_unknown(table, UNMAPPED_COLUMNS, result)
        text = self._encode(members)
        value: Any
        if len(text) > self._max_field_bytes:
            result.truncated_fields[table] += 1
            text = text[: self._max_field_bytes]
            value = text.decode(errors="ignore")
        else:
            value = text.decode() if auxiliary else msgspec.Raw(text)
        row.UnmappedColumns = value
        result.unmapped_bytes[table] += len(text)

    # -- records that failed the typed decode: explain each failure ---------------------------------------

    def _explain(self, raw: bytes, source: SourceRef | None, index: int, result: DecodeResult) -> None:
        """Classify a record that failed the typed decode, or learn a new column and retry it."""
        ref = _ref(source, index)
        try:
            try:
                generic = self._decode_generic(raw)
            except msgspec.ValidationError:  # no object, or a number no double holds (kept as written)
                generic = decode_members(raw)
        except msgspec.ValidationError:  # RecordMembers takes any object
            result.reject(raw, None, "not_an_object", "record is not a JSON object", ref)
            return
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            # The typed decode can stop at a schema error before it sees that the JSON itself is broken
            # (e.g. trailing characters), and msgspec checks UTF-8 lazily, per decoder.
            result.reject(raw, None, "malformed_json", str(exc), ref)
            return
        category = generic.category
        if not isinstance(category, str):
            result.reject(raw, None, "invalid_envelope", "record has no string `category`", ref)
            return
        codec = self._codecs.get(category)
        if codec is None:
            self._skip(category, result)
            return
        if not isinstance(generic.properties, dict):
            result.reject(raw, codec.table, "invalid_envelope", "record has no `properties` object", ref)
            return
        unknown = [k for k in generic.properties if k not in codec.schema.column_names]
        kept = None
        if unknown:
            # With `keep` and `drop`, learn the columns so later records take the fast path (which counts and
            # keeps or drops them); with `reject`, keep them unknown so each such record comes here with its raw
            # bytes. Names that cannot be learned (invalid, or over the cap) come here every time.
            if not self._reject_unknown and self._learn(codec, unknown):
                self._decode_one(raw, source, index, result)  # learned columns now decode; counted there
                return
            for column in unknown:
                self._note_unknown(codec.table, column, result)
            if self._reject_unknown:
                names = [_printable(c) for c in sorted(unknown)[:10]]
                result.reject(raw, codec.table, "unknown_column", f"unknown columns {names}", ref)
                return
            if self._keep:
                kept = {c: v for c in unknown if (v := generic.properties[c]) is not None}
            for column in unknown:
                del generic.properties[column]
        conversions = codec.respell(generic.properties)
        try:
            row = msgspec.convert(generic.properties, codec.row_type)
        except msgspec.ValidationError as exc:
            emptied = [name for name, rule in conversions if rule == EMPTY_AS_NULL]
            problem = codec.problem(generic.properties, emptied)
            if problem is None:  # msgspec refuses what no check of ours explains: a bug, not the record's fault
                self._internal_error(raw, exc, ref, result)
            else:
                result.reject(raw, codec.table, *problem, ref)
            return
        result.converted.update((codec.table, name, rule) for name, rule in conversions)
        tenant = generic.tenantId if isinstance(generic.tenantId, str) else None
        record = codec.record_type(properties=row, tenantId=tenant)
        if len(raw) > self._max_field_bytes:
            self._truncate(codec, row, result)
        result.rows.append(self._shape(codec, record, result, kept))

    def _learn(self, codec: TableCodec, columns: list[str]) -> bool:
        """Learn every one of `columns` into the table's codec, or none of them; whether it did."""
        learned = codec
        for column in columns:
            wider = learned.learning(column)
            if wider is None:
                return False
            learned = wider
        self._use({**self._codecs, codec.schema.category: learned})
        labels = self._column_labels[codec.table]
        message = "new column seen; keeping it in UnmappedColumns" if self._keep else "new column seen; dropping it"
        for column in columns:
            if labels.admit(column)[1]:
                log.warning(message, extra={"table": codec.table, "column": column})
        return True

    def _note_unknown(self, table: str, column: str, result: DecodeResult) -> None:
        if is_column_name(column):
            label, new = self._column_labels[table].admit(column)
            if new and label == OTHER:
                log.warning(f"over {MAX_UNKNOWN_COLUMN_LABELS} new columns; the rest count as column 'other'",
                            extra={"table": table, "column": column})  # fmt: skip
            elif new:
                log.warning("new column seen", extra={"table": table, "column": column})
        else:
            label = INVALID_NAME
            if table not in self._invalid_names_seen:
                self._invalid_names_seen.add(table)
                log.warning(
                    "column name Log Analytics would refuse; such names count as column 'invalid_name'",
                    extra={"table": table, "column": _printable(column)},
                )
        result.unknown_columns[(table, label)] += 1

    def _note_conversions(self, converted: Counter[tuple[str, str, str]]) -> None:
        """Log the first conversion of each (table, column, rule), once."""
        seen = self._conversions_seen
        for key in converted:
            if key not in seen:
                seen.add(key)
                table, column, rule = key
                log.info(
                    "Defender's own spelling of a value converted (counted in ingestor_values_converted_total)",
                    extra={"table": table, "column": column, "rule": rule},
                )

    def _skip(self, category: str, result: DecodeResult) -> None:
        label, new = self._skip_labels.admit(category.removeprefix(CATEGORY_PREFIX))
        if new:
            log.info("skipping category we do not ingest", extra={"category": _printable(category)})
        result.skipped[label] += 1

    def _refuse(self, raw: bytes, what: str, ref: SourceRef | None, result: DecodeResult) -> None:
        """Dead-letter a `what` ("message" or "record") too big to parse, unparsed: a bounded copy, its length and
        hash, as reason `oversized_<what>`."""
        limit = self._max_message_bytes if what == "message" else self._max_record_bytes
        detail = f"{what} is {len(raw):,} bytes; validation.max_{what}_bytes is {limit:,}"
        result.reject_copy(raw, self._peek_table(raw), f"oversized_{what}", detail, ref)

    def _internal_error(self, raw: bytes, exc: Exception, ref: SourceRef | None, result: DecodeResult) -> None:
        kind = exc.__class__.__name__
        detail = f"{kind}: {exc}"
        if self._error_kinds.admit(kind)[1]:
            log.error(
                "unforeseen failure decoding a record; it goes to the dead letter (internal_error)",
                extra={"error": cut(detail, 300)},
            )
        result.reject_copy(raw, self._peek_table(raw), "internal_error", detail, ref)

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
        """The table a record names, read from its first and last bytes without parsing it."""
        for part in (raw[:_PEEK_BYTES], raw[-_PEEK_BYTES:]):
            if match := _CATEGORY.search(part):
                codec = self._codecs.get(match.group(1).decode(errors="replace"))
                return codec.table if codec else None
        return None


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


def _scan_records(value: bytes) -> list[bytes] | None:
    """The elements of an envelope's `records` array, found by counting brackets outside strings rather than by
    parsing (no recursion, so for JSON too deep to decode); None when there is no closed `records` array."""
    depth, start, after_key = 0, -1, False
    records: list[bytes] = []
    for token in _STRUCTURE.finditer(value):
        mark = token.group()
        if mark[0] == 34:  # '"': a whole string; the `records` key of the top-level object opens the array
            after_key = depth == 1 and mark == b'"records"'
            continue
        if mark in b"[{":
            if after_key and mark == b"[":
                start = token.end()
            depth += 1
        elif mark in b"]}":
            depth -= 1
            if depth == 1 and start >= 0:
                last = value[start : token.start()].strip()
                return [*records, last] if last else records
        elif depth == 2 and start >= 0:  # a comma between two records
            records.append(value[start : token.start()].strip())
            start = token.end()
        after_key = False
    return None


def _default_destination(table: str) -> Destination:
    return Destination(table, "", default_stream_name(table), default_table_name(table))


def _ref(source: SourceRef | None, index: int) -> SourceRef | None:
    return SourceRef(source.position, index) if source is not None else None


def _parse_dynamic(text: str) -> Any:
    """JSON text becomes its value so KQL can index it; other text, and JSON too deep to parse, stays a string.

    Only the syntax is checked (a full parse costs a third of the hot path): a number out of range for a double
    (`1e400`) passes as written, for the service to judge; a 400 sends its row to the dead letter.
    """
    if not text or text[0] not in "[{":
        return text
    try:
        return msgspec.json.decode(text.encode(), type=msgspec.Raw)
    except (msgspec.DecodeError, RecursionError):
        return text


def _printable(text: str) -> str:
    """Input text for a log line or a detail: bounded, control characters escaped."""
    return repr(text[:MAX_LABEL_CHARS])[1:-1]


__all__ = ["INVALID_NAME", "UNKNOWN_WINDOW", "DecodeResult", "DecodedRow", "MessageDecoder", "auxiliary_time"]
