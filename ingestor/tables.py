"""Table schemas as data: loads `schemas/<Table>.json` into typed objects.

The schema files are the single source of the native column names, types and required columns. They ship inside
the package (`ingestor/schemas/` in a wheel) and are read from the repository's `schemas/` in a source checkout.
`load_schemas()` is cached and never changed; `with_extra_columns` derives new schema objects from it that also
hold the columns the configuration promotes (`schemas.extra_columns`) and the `UnmappedColumns` column that keeps
the values of columns in no schema (`validation.unknown_columns: keep`). A schema file that is missing, unreadable
or malformed, and a promoted column that cannot be one, raise SchemaError (an IngestorError).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal

from ingestor.errors import IngestorError

ColumnType = Literal["string", "int", "long", "real", "boolean", "datetime", "dynamic", "guid"]
COLUMN_TYPES: frozenset[str] = frozenset(ColumnType.__args__)  # type: ignore[attr-defined]
CATEGORY_PREFIX = "AdvancedHunting-"
# Azure's rule for a custom column: a letter, then letters, digits and `_`, at most 45 characters, not reserved.
MAX_COLUMN_NAME_CHARS = 45
COLUMN_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
RESERVED_COLUMNS = frozenset({"_resourceid", "id", "_subscriptionid", "tenantid", "type", "uniqueid", "title"})
# Log Analytics: at most 500 columns per table.
MAX_COLUMNS_PER_TABLE = 500
# The dynamic column that keeps, per row, the columns the record carried that are neither in the schema nor
# promoted: an object of original column name -> original JSON value (absent when there are none).
UNMAPPED_COLUMNS = "UnmappedColumns"


def is_column_name(name: str) -> bool:
    """Whether Log Analytics takes `name` as a custom column name."""
    return (
        len(name) <= MAX_COLUMN_NAME_CHARS
        and COLUMN_NAME.fullmatch(name) is not None
        and name.lower() not in RESERVED_COLUMNS
    )


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: ColumnType
    # "stream": carried in the Streaming API's properties; "table": a Sentinel column the stream never
    # carries; "added": set by the ingestor (TimeGenerated, SourceTenantId, RetentionTag, UnmappedColumns);
    # "promoted": a column Defender added after our schema files, declared by `schemas.extra_columns`.
    origin: Literal["stream", "table", "added", "promoted"]
    description: str
    # "dynamic" where Microsoft's table reference documents the column as dynamic but Log Analytics stores another
    # type (IdentityInfo.Tags): the stream sends arrays or objects there, which the column keeps as JSON text.
    stream_type: Literal["dynamic"] | None = None


@dataclass(frozen=True, slots=True)
class TableSchema:
    table: str
    category: str
    required: tuple[str, ...]
    columns: tuple[Column, ...]

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def input_columns(self) -> tuple[Column, ...]:
        """Columns a Streaming API record may carry in `properties`."""
        return tuple(c for c in self.columns if c.origin != "added")


class SchemaError(IngestorError):
    """A schema file is missing, unreadable or malformed, or a promoted column cannot be one."""


def schema_dir() -> Path:
    """Where the schema files are: inside the installed package, else the source checkout's `schemas/`."""
    packaged = Path(str(resources.files("ingestor"))) / "schemas"
    if packaged.is_dir():
        return packaged
    checkout = Path(__file__).resolve().parent.parent / "schemas"
    if checkout.is_dir():
        return checkout
    raise SchemaError(f"no schema directory at {packaged} or {checkout}; reinstall the package")


def parse_schema(doc: dict[str, object], origin: str) -> TableSchema:
    try:
        columns = tuple(
            Column(
                name=c["name"],
                type=c["type"],
                origin=c["origin"],
                description=c.get("description", ""),
                stream_type=c.get("stream_type"),
            )
            for c in doc["columns"]  # type: ignore[attr-defined]
        )
        schema = TableSchema(
            table=str(doc["table"]),
            category=str(doc["category"]),
            required=tuple(str(r) for r in doc["required"]),  # type: ignore[attr-defined]
            columns=columns,
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise SchemaError(f"{origin}: malformed schema ({exc!r})") from exc
    bad = [c.name for c in columns if c.type not in COLUMN_TYPES or c.stream_type not in (None, "dynamic")]
    if bad:
        raise SchemaError(f"{origin}: unknown column types for {bad}")
    missing = set(schema.required) - set(schema.column_names)
    if missing:
        raise SchemaError(f"{origin}: required columns {sorted(missing)} are not columns")
    return schema


@cache
def load_schemas(directory: Path | None = None) -> dict[str, TableSchema]:
    """All table schemas by table name, in file-name order."""
    root = directory or schema_dir()
    schemas = {}
    for path in sorted(root.glob("*.json")):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:  # ValueError: not UTF-8, or not JSON
            raise SchemaError(f"{path}: cannot read it as JSON ({exc})") from exc
        schema = parse_schema(doc, str(path))
        schemas[schema.table] = schema
    if not schemas:
        raise SchemaError(f"no schema files in {root}")
    return schemas


UNMAPPED_COLUMN = Column(
    UNMAPPED_COLUMNS,
    "dynamic",
    "added",
    "Columns the record carried that are in no schema (validation.unknown_columns keep): name -> original value",
)


def with_extra_columns(
    schemas: Mapping[str, TableSchema], extra: Mapping[str, Mapping[str, str]], *, unmapped: bool = False
) -> dict[str, TableSchema]:
    """`schemas` with, per table, its promoted columns appended in `extra`'s order (origin "promoted", never
    required), then `UnmappedColumns` when `unmapped` (and without it otherwise). New objects: the schemas given,
    such as `load_schemas()`'s cached ones, stay as they were. The configuration validates `extra`
    (`config.SchemasConfig`); here a table, name or type it would refuse raises SchemaError.
    """
    unknown = sorted(set(extra) - set(schemas))
    if unknown:
        raise SchemaError(f"extra columns for unknown tables {unknown}")
    out = {}
    for table, schema in schemas.items():
        columns = [c for c in schema.columns if c.name != UNMAPPED_COLUMNS]
        taken = {c.name.lower() for c in columns} | {UNMAPPED_COLUMNS.lower()}
        for name, kind in extra.get(table, {}).items():
            if not is_column_name(name) or name.lower() in taken or kind not in COLUMN_TYPES:
                raise SchemaError(f"{table}: cannot promote column {name!r} of type {kind!r}")
            taken.add(name.lower())
            columns.append(Column(name, kind, "promoted", "promoted by schemas.extra_columns"))  # type: ignore[arg-type]
        if unmapped:
            columns.append(UNMAPPED_COLUMN)
        out[table] = replace(schema, columns=tuple(columns)) if tuple(columns) != schema.columns else schema
    return out


def default_table_name(table: str) -> str:
    """Custom table a Defender table lands in by default (the Logs Ingestion API cannot write `Device*`)."""
    return f"{table}_CL"


def default_stream_name(table: str) -> str:
    """DCR stream declaration that feeds the default table."""
    return f"Custom-{table}_CL"
