"""Typed row codecs compiled once from the table schemas.

Each table gets a msgspec Struct with one field per schema column, typed so that decoding checks types,
required columns and value formats in one pass; a tagged union over the ten record types routes by
`category` in the same pass. Column lists come only from the TableSchema given: the schema files' columns, the
ones the configuration promotes, and `UnmappedColumns` when unknown columns are kept (a plain `Any` field, set
by the decoder, not parsed as a dynamic column). The fast variant leaves datetime formats to `is_datetime` (a
constrained msgspec string calls the regex at three times the cost of calling it directly).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Annotated, Any

import msgspec

from ingestor.tables import UNMAPPED_COLUMNS, TableSchema, is_column_name

# \A and \Z, not ^ and $ (`$` also matches before a trailing newline); [0-9], not \d (any Unicode digit).
DATETIME_PATTERN = (
    r"\A[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(?:\.[0-9]{1,7})?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])\Z"
)
GUID_PATTERN = r"\A[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z"
is_datetime = re.compile(DATETIME_PATTERN).match

COLUMN_TYPES: dict[str, Any] = {
    "string": str,
    "int": Annotated[int, msgspec.Meta(ge=-(2**31), le=2**31 - 1)],
    "long": Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)],
    "real": float,
    "boolean": bool,
    "datetime": Annotated[str, msgspec.Meta(pattern=DATETIME_PATTERN)],
    "guid": Annotated[str, msgspec.Meta(pattern=GUID_PATTERN)],
    "dynamic": Any,
}
MAX_LEARNED_COLUMNS = 64


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
    # Field name in the struct -> column name in the record, for columns not in the schema.
    learned: dict[str, str] = field(default_factory=dict)
    row_type: type[msgspec.Struct] = msgspec.Struct
    record_type: type[msgspec.Struct] = msgspec.Struct
    fast_record_type: type[msgspec.Struct] = msgspec.Struct

    @classmethod
    def build(cls, schema: TableSchema, *, max_field_bytes: int = 65_536) -> TableCodec:
        codec = cls(
            schema=schema,
            dynamic_columns=tuple(c.name for c in schema.columns if c.type == "dynamic" and c.name != UNMAPPED_COLUMNS),
            string_columns=tuple(c.name for c in schema.columns if c.type == "string"),
            datetime_columns=tuple(c.name for c in schema.columns if c.type == "datetime"),
            max_string_chars=max_field_bytes // 4,  # UTF-8 needs at most 4 bytes per character
            unmapped=UNMAPPED_COLUMNS in schema.column_names,
        )
        codec._compile()
        return codec

    @property
    def table(self) -> str:
        return self.schema.table

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

    def _types(self, variant: str, column_types: dict[str, Any]) -> tuple[type[msgspec.Struct], type[msgspec.Struct]]:
        required = set(self.schema.required)
        fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
        for column in self.schema.columns:
            kind = column_types[column.type]
            if column.name in required:
                fields.append((column.name, kind))
            else:
                fields.append((column.name, kind | None if column.type != "dynamic" else Any, None))
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


class Envelope(msgspec.Struct):
    """An Event Hubs message body: `{"records": [...]}`; other top-level keys are ignored."""

    records: list[msgspec.Raw]


def record_union(types: list[type[msgspec.Struct]]) -> Any:
    """Union of record structs, discriminated by `category`."""
    union: Any = types[0]
    for t in types[1:]:
        union = union | t
    return union
