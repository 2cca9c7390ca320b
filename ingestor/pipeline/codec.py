"""Typed row codecs compiled from the table schemas, and compiled again for each column learned at run time.

Each table gets a msgspec Struct with one field per column, typed so that decoding checks types, required columns
and value formats in one pass; a tagged union over the tables' record types routes by `category` in the same pass.
The columns are the TableSchema's (the schema files' columns, the ones the configuration promotes, and
`UnmappedColumns` when unknown columns are kept: a plain `Any` field, set by the decoder, not parsed as a dynamic
column) plus the columns learned by `TableCodec.learning` (untyped fields the decoder empties). The fast variant
leaves datetime formats to `is_datetime` (a constrained msgspec string calls the regex at three times the cost of
calling it directly) and refuses strings that may need truncating. The tolerant variant is the fast one whose typed
columns also take the JSON classes of Defender's spellings of their type's values (`spellings`), for a message the
fast one refuses: the decoder then converts those spellings in one pass over `drift_groups`. `respell` converts them
in a record's properties for the per-record path.

A record the typed decode refuses is explained by `TableCodec.problem` from types, not from msgspec's messages
(whose wording is no interface): it checks the record's values against their columns' JSON types, then ranges and
formats, and returns the dead-letter reason and a detail naming the column.
"""

from __future__ import annotations

import dataclasses
import operator
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Annotated, Any

import msgspec

from ingestor.bounds import MAX_LABEL_CHARS
from ingestor.pipeline.spellings import INT_RANGE, LONG_RANGE, SPELLINGS, STRING_OF_DYNAMIC, Spelling, spelling_type
from ingestor.tables import UNMAPPED_COLUMNS, TableSchema, is_column_name

# \A and \Z, not ^ and $ (`$` also matches before a trailing newline); [0-9], not \d (any Unicode digit).
DATETIME_PATTERN = (
    r"\A[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(?:\.[0-9]{1,7})?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])\Z"
)
GUID_PATTERN = r"\A[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z"
is_datetime = re.compile(DATETIME_PATTERN).match

is_guid = re.compile(GUID_PATTERN).match

COLUMN_TYPES: dict[str, Any] = {
    "string": str,
    "int": Annotated[int, msgspec.Meta(ge=INT_RANGE[0], le=INT_RANGE[1])],
    "long": Annotated[int, msgspec.Meta(ge=LONG_RANGE[0], le=LONG_RANGE[1])],
    "real": float,
    "boolean": bool,
    "datetime": Annotated[str, msgspec.Meta(pattern=DATETIME_PATTERN)],
    "guid": Annotated[str, msgspec.Meta(pattern=GUID_PATTERN)],
    "dynamic": Any,
}
# The JSON values each column type takes before its range or format is checked: a value of another class has the
# wrong type (`invalid_type`); one of these classes that COLUMN_TYPES refuses has the wrong value (`invalid_value`).
# Exact classes, as an untyped decode makes them (a bool is no int here). None: any value (dynamic).
JSON_CLASSES: dict[str, tuple[type, ...] | None] = {
    "string": (str,),
    "int": (int,),
    "long": (int,),
    "real": (int, float),
    "boolean": (bool,),
    "datetime": (str,),
    "guid": (str,),
    "dynamic": None,
}
# What a value of each column type with a range or format must be, for a dead-letter detail.
VALUE_RULES = {
    "int": "an integer from -2^31 to 2^31-1",
    "long": "an integer from -2^63 to 2^63-1",
    "real": "a number within the range of a double",
    "datetime": "ISO 8601 text: YYYY-MM-DDTHH:MM:SS, 0-7 fractional digits, then Z or an offset +HH:MM",
    "guid": "GUID text: 8-4-4-4-12 hexadecimal digits",
}
# What a value is, in JSON's words, by the class an untyped decode gives it.
_JSON_KINDS = {
    type(None): "null",
    bool: "a boolean",
    int: "an integer",
    float: "a number with a fraction or an exponent",
    str: "a string",
    list: "an array",
    dict: "an object",
    msgspec.Raw: "a number beyond the range of a double",  # see `decode_members`
}
MAX_LEARNED_COLUMNS = 64
# A dead-letter reason and its detail.
Problem = tuple[str, str]


# The columns of one type a tolerantly decoded row may hold spellings in, for the decoder's pass: a function giving
# their values (in one call), the classes a value needs no conversion in (its type's, and None), a check of its
# format (datetime, guid) or None, the columns' names, the type's class, and its spellings.
DriftGroup = tuple[
    Callable[[Any], tuple[Any, ...]], frozenset[type], Callable[[Any], Any] | None, tuple[str, ...], type, Spelling
]
_CLEAN: dict[str, tuple[type, Callable[[Any], Any] | None]] = {
    "string": (str, None),
    STRING_OF_DYNAMIC: (str, None),
    "int": (int, None),  # the range is the tolerant type's
    "long": (int, None),
    "real": (float, None),  # msgspec makes a float of an integer for a float type
    "boolean": (bool, None),
    "datetime": (str, is_datetime),
    "guid": (str, is_guid),
}


def drift_groups_of(schema: TableSchema) -> tuple[DriftGroup, ...]:
    """Per column type, the columns a tolerantly decoded row may hold a spelling in: every typed column but the
    dynamic ones (their one spelling, `""`, is taken while shaping, on every path)."""
    groups = []
    for column_type, (clean, check) in _CLEAN.items():
        names = tuple(c.name for c in schema.columns if spelling_type(c) == column_type)
        if names:
            get = operator.attrgetter(*names)
            values = get if len(names) > 1 else _one(get)
            groups.append((values, frozenset({clean, type(None)}), check, names, clean, SPELLINGS[column_type]))
    return tuple(groups)


def _one(get: Callable[[Any], Any]) -> Callable[[Any], tuple[Any, ...]]:
    return lambda row: (get(row),)


@dataclass(slots=True)
class TableCodec:
    """Row struct and decoders for one table; learns columns Defender added after our schema."""

    schema: TableSchema
    dynamic_columns: tuple[str, ...]
    string_columns: tuple[str, ...]
    # Checked with `is_datetime` after a fast decode, which takes them as plain strings.
    datetime_columns: tuple[str, ...]
    # Strings longer than this many characters may exceed the field limit in bytes; `fast_record_type`
    # refuses them so that a message holding one takes the per-record path, which truncates.
    max_string_chars: int
    # Whether the schema has the UnmappedColumns column (unknown columns are kept).
    unmapped: bool = False
    # Column -> its type's spellings (`spellings.SPELLINGS`), for every typed column but UnmappedColumns.
    spellings: dict[str, Spelling] = field(default_factory=dict)
    # What the tolerant pass checks after `tolerant_record_type` decoded a message (see `drift_groups_of`).
    drift_groups: tuple[DriftGroup, ...] = ()
    # Field name in the struct -> column name in the record, for columns not in the schema.
    learned: dict[str, str] = field(default_factory=dict)
    row_type: type[msgspec.Struct] = msgspec.Struct
    record_type: type[msgspec.Struct] = msgspec.Struct
    fast_record_type: type[msgspec.Struct] = msgspec.Struct
    # The fast variant with each typed column also taking the JSON classes of its type's spellings.
    tolerant_record_type: type[msgspec.Struct] = msgspec.Struct

    @classmethod
    def build(cls, schema: TableSchema, *, max_field_bytes: int = 65_536) -> TableCodec:
        codec = cls(
            schema=schema,
            dynamic_columns=tuple(c.name for c in schema.columns if c.type == "dynamic" and c.name != UNMAPPED_COLUMNS),
            string_columns=tuple(c.name for c in schema.columns if c.type == "string"),
            datetime_columns=tuple(c.name for c in schema.columns if c.type == "datetime"),
            max_string_chars=max_field_bytes // 4,  # UTF-8 needs at most 4 bytes per character
            unmapped=UNMAPPED_COLUMNS in schema.column_names,
            spellings={c.name: SPELLINGS[spelling_type(c)] for c in schema.columns if c.name != UNMAPPED_COLUMNS},
            drift_groups=drift_groups_of(schema),
        )
        codec._compile()
        return codec

    @property
    def table(self) -> str:
        return self.schema.table

    def respell(self, properties: dict[str, Any]) -> list[tuple[str, str]]:
        """Convert in place each value of a typed column of `properties` that is one of Defender's spellings of a
        value of its type (`spellings.SPELLINGS`); the (column, rule) of each conversion, in the record's order.
        Columns in no schema and learned columns are left as they are; so is a value that is no spelling.
        """
        done = []
        spellings = self.spellings
        for name, value in properties.items():
            spelling = spellings.get(name)
            if spelling is not None and value is not None and (conversion := spelling(value)) is not None:
                properties[name] = conversion[0]
                done.append((name, conversion[1]))
        return done

    def problem(self, properties: dict[str, Any], emptied: Collection[str] = ()) -> Problem | None:
        """Why `properties` (a record's, its unknown columns taken out, respelled) fails `row_type`: a dead-letter
        reason and a detail naming the column; None when no column explains it.

        The way msgspec.convert reports: the first failing value in the record's order, then a missing required
        column. A value of a class its column's type never takes is `invalid_type`; one of the right class out of
        range or format (COLUMN_TYPES refuses it) is `invalid_value`; a required column null or absent is
        `missing_required_column` (`emptied`: columns `respell` made null from `""`, which the detail says). For
        records that failed only: it converts value by value.
        """
        columns = {c.name: c for c in self.schema.columns}
        required = self.schema.required
        for name, value in properties.items():
            column = columns.get(name)
            if column is None:
                if name in self.learned.values():
                    continue
                return "unknown_column", f"unknown column {repr(name[:MAX_LABEL_CHARS])[1:-1]}"
            if value is None:
                if name in required:
                    how = '"" (empty, so null)' if name in emptied else "null"
                    return "missing_required_column", f"required column {name} is {how}"
                continue
            classes = JSON_CLASSES[column.type]
            if classes is None:
                continue
            if value.__class__ not in classes:
                if value.__class__ is msgspec.Raw:  # a number no double holds: a value out of range
                    return "invalid_value", f"column {name} ({column.type}) holds {_JSON_KINDS[msgspec.Raw]}"
                kind = _JSON_KINDS.get(value.__class__, value.__class__.__name__)
                return "invalid_type", f"column {name} is {column.type} but holds {kind}"
            try:
                msgspec.convert(value, COLUMN_TYPES[column.type])
            except msgspec.ValidationError:
                rule = VALUE_RULES[column.type]
                return "invalid_value", f"column {name} ({column.type}) must be {rule}, not {_shown(value)}"
        for name in required:
            if name not in properties:
                return "missing_required_column", f"required column {name} is missing"
        return None

    def learning(self, column: str) -> TableCodec | None:
        """A new codec that also takes `column` as a known-unknown, so the fast path keeps working.

        None when `column` is known, not a valid Log Analytics column name, or the table is at
        MAX_LEARNED_COLUMNS: such records keep taking the per-record path. This codec is left as it was.
        """
        if column in self.learned.values() or len(self.learned) >= MAX_LEARNED_COLUMNS or not is_column_name(column):
            return None
        codec = dataclasses.replace(self, learned={**self.learned, f"x_learned_{len(self.learned)}": column})
        codec._compile()
        return codec

    def _compile(self) -> None:
        self.row_type, self.record_type = self._types("", COLUMN_TYPES)
        short_string = Annotated[str, msgspec.Meta(max_length=self.max_string_chars)]
        fast_types = {**COLUMN_TYPES, "string": short_string, "datetime": str}
        _, self.fast_record_type = self._types("Fast", fast_types)
        # msgspec's unions take one type per JSON kind: str, int, float, bool, null (and Any alone).
        tolerant_types = {
            **fast_types,
            "string": short_string | int | float | bool,
            STRING_OF_DYNAMIC: Any,
            "int": COLUMN_TYPES["int"] | str,
            "long": COLUMN_TYPES["long"] | str,
            "real": float | str,
            "boolean": bool | int | str,
            "guid": str,
        }
        _, self.tolerant_record_type = self._types("Tolerant", tolerant_types)

    def _types(self, variant: str, column_types: dict[str, Any]) -> tuple[type[msgspec.Struct], type[msgspec.Struct]]:
        required = set(self.schema.required)
        fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
        for column in self.schema.columns:
            kind = column_types.get(spelling_type(column), column_types[column.type])
            if column.name in required:
                fields.append((column.name, kind))
            else:
                fields.append((column.name, Any if kind is Any else kind | None, None))
        fields.sort(key=lambda f: len(f) == 3)  # msgspec: required fields first
        fields.extend((name, Any, None) for name in self.learned)
        row_type = msgspec.defstruct(
            f"{self.table}{variant}Row",
            fields,
            rename=dict(self.learned) or None,
            forbid_unknown_fields=True,
            omit_defaults=True,
        )
        record_type = msgspec.defstruct(
            f"{self.table}{variant}Record",
            [("properties", row_type), ("tenantId", str | None, None)],
            tag_field="category",
            tag=self.schema.category,
        )
        return row_type, record_type


class GenericRecord(msgspec.Struct):
    """Any record, loosely typed: used only to explain why a record failed the typed decode."""

    category: Any = None
    tenantId: Any = None
    properties: Any = None


class RecordMembers(msgspec.Struct):
    """Any JSON object, the members a record uses left unparsed: see `decode_members`."""

    category: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    tenantId: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    properties: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


_decode_members = msgspec.json.Decoder(RecordMembers).decode
_decode_columns = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode


def decode_members(raw: bytes) -> GenericRecord:
    """`raw` as a GenericRecord for a record the GenericRecord decoder refused with a ValidationError.

    An untyped decode refuses two things: a document that is no object (this raises msgspec.ValidationError too),
    and a number beyond the range of a double (`1e400`), which no Python number holds. Each member and column
    holding such a number is kept as written, a msgspec.Raw, which msgspec encodes unchanged and no typed column
    takes (`TableCodec.problem` calls it out of range).
    """
    members = _decode_members(raw)
    properties: Any = None
    if members.properties is not msgspec.UNSET:
        try:
            columns = _decode_columns(members.properties)
        except msgspec.ValidationError:  # no object
            properties = _value(members.properties)
        else:
            properties = {name: _value(value) for name, value in columns.items()}
    return GenericRecord(
        category=None if members.category is msgspec.UNSET else _value(members.category),
        tenantId=None if members.tenantId is msgspec.UNSET else _value(members.tenantId),
        properties=properties,
    )


def _value(raw: msgspec.Raw) -> Any:
    """A JSON value decoded; itself when it holds a number no double holds."""
    try:
        return msgspec.json.decode(raw)
    except msgspec.ValidationError:
        return raw


def _shown(value: Any) -> str:
    """A value for a dead-letter detail: its JSON text, at most 64 characters of it."""
    text = msgspec.json.encode(value).decode()
    return text if len(text) <= MAX_LABEL_CHARS else text[: MAX_LABEL_CHARS - 3] + "..."


class Envelope(msgspec.Struct):
    """An Event Hubs message body: `{"records": [...]}`; other top-level keys are ignored."""

    records: list[msgspec.Raw]


class EnvelopeMembers(msgspec.Struct):
    """Any JSON object, its `records` left unparsed: tells why a message is no Envelope."""

    records: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


# What a JSON text is, by its first character.
_KIND_BY_FIRST = {
    b"{": "an object",
    b"[": "an array",
    b'"': "a string",
    b"t": "a boolean",
    b"f": "a boolean",
    b"n": "null",
}


def json_kind(text: msgspec.Raw) -> str:
    """What the (valid) JSON text `text` is, in JSON's words: "an object", "an array", "a number" and so on."""
    return _KIND_BY_FIRST.get(bytes(memoryview(text)[:1]), "a number")


def record_union(types: list[type[msgspec.Struct]]) -> Any:
    """Union of record structs, discriminated by `category`."""
    union: Any = types[0]
    for t in types[1:]:
        union = union | t
    return union
