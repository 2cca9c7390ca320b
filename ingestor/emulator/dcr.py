"""Data collection rules as data: which streams a rule accepts, their columns and output tables.

`default_dcr` declares one `Custom-<T>_CL` stream per schema table, with all its columns, into `<T>_CL`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ingestor.tables import COLUMN_TYPES, default_stream_name, default_table_name, load_schemas

DEFAULT_RULE_ID = "dcr-00000000000000000000000000000000"


@dataclass(frozen=True, slots=True)
class DcrDefinition:
    immutable_id: str
    # stream name -> (column name, column type) pairs, in declaration order
    streams: dict[str, tuple[tuple[str, str], ...]]
    # stream name -> output table name
    output_tables: dict[str, str]

    def __post_init__(self) -> None:
        unrouted = sorted(set(self.streams) - set(self.output_tables))
        if unrouted:
            raise ValueError(f"{self.immutable_id}: streams without an output table: {unrouted}")
        for stream, columns in self.streams.items():
            bad = [name for name, type_ in columns if type_ not in COLUMN_TYPES]
            if bad:
                raise ValueError(f"{self.immutable_id}/{stream}: unknown column types for {bad}")


def default_dcr(immutable_id: str) -> DcrDefinition:
    """One stream per schema table with all its columns, each routed to the table's default custom table."""
    schemas = load_schemas()
    return DcrDefinition(
        immutable_id=immutable_id,
        streams={default_stream_name(t): tuple((c.name, c.type) for c in s.columns) for t, s in schemas.items()},
        output_tables={default_stream_name(t): default_table_name(t) for t in schemas},
    )
