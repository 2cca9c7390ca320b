"""Data collection rules as data: which streams a rule accepts, their columns, output tables and table plans.

`default_dcr` declares one `Custom-<T>_CL` stream per schema table into `<T>_CL`, with the columns of the
default configuration's tables: all the schema's and UnmappedColumns (unknown columns are kept by default), or
those of the schemas given (for instance `Config.table_schemas()`, with promoted columns), each stored under the
name provision gives it (`Title` as `Title_`, `ingestor.provision.azure_rules.stored_names`). `template_dcrs` reads
the rules an `ingestor provision` ARM template declares, as a deployment would create them (promoted columns,
UnmappedColumns and the data flows' renames as the template declares them), and `deployment_outputs` gives the
outputs such a deployment reports (`az ... --query properties.outputs`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ingestor.provision.arm import (
    DCR_KEY_TAG,
    DCR_TYPE,
    ENDPOINT_OUTPUT,
    RULE_IDS_OUTPUT,
    resources_of,
    template_tables,
    transform_renames,
)
from ingestor.provision.azure_rules import stored_names
from ingestor.tables import (
    COLUMN_TYPES,
    TableSchema,
    default_stream_name,
    default_table_name,
    load_schemas,
    with_extra_columns,
)

DEFAULT_RULE_ID = "dcr-00000000000000000000000000000000"


@dataclass(frozen=True, slots=True)
class DcrDefinition:
    immutable_id: str
    # stream name -> (column name, column type) pairs, in declaration order
    streams: dict[str, tuple[tuple[str, str], ...]]
    # stream name -> output table name
    output_tables: dict[str, str]
    # output table name -> table plan (Analytics when absent)
    table_plans: dict[str, str] = field(default_factory=dict)
    # the rule's key in a provisioned deployment's outputs
    key: str = ""
    # stream name -> (column sent -> column its table stores it as), for the columns the data flow renames
    renames: dict[str, dict[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unrouted = sorted(set(self.streams) - set(self.output_tables))
        if unrouted:
            raise ValueError(f"{self.immutable_id}: streams without an output table: {unrouted}")
        for stream, columns in self.streams.items():
            bad = [name for name, type_ in columns if type_ not in COLUMN_TYPES]
            if bad:
                raise ValueError(f"{self.immutable_id}/{stream}: unknown column types for {bad}")


def default_dcr(immutable_id: str, schemas: Mapping[str, TableSchema] | None = None) -> DcrDefinition:
    """One stream per table of `schemas` with all its columns, each routed to the table's default custom table;
    by default the schema files' tables with UnmappedColumns, as the default configuration sends them."""
    if schemas is None:
        schemas = with_extra_columns(load_schemas(), {}, unmapped=True)
    return DcrDefinition(
        immutable_id=immutable_id,
        streams={default_stream_name(t): tuple((c.name, c.type) for c in s.columns) for t, s in schemas.items()},
        output_tables={default_stream_name(t): default_table_name(t) for t in schemas},
        renames={default_stream_name(t): names for t, s in schemas.items() if (names := stored_names(s.column_names))},
    )


def immutable_id(key: str) -> str:
    """The immutable id the emulator gives a provisioned rule: stable for its key."""
    return "dcr-" + hashlib.sha256(key.encode()).hexdigest()[:32]


def template_dcrs(template: dict[str, Any]) -> list[DcrDefinition]:
    """The data collection rules of a provisioned template, with the plans of the tables they write."""
    plans = {name: properties.get("plan", "Analytics") for name, properties in template_tables(template).items()}
    dcrs = []
    for resource in resources_of(template, DCR_TYPE):
        key = resource.get("tags", {}).get(DCR_KEY_TAG)
        if not key:
            raise ValueError(f"DCR {resource['name']} has no {DCR_KEY_TAG} tag; was the template written by provision?")
        properties = resource["properties"]
        outputs, renames = {}, {}
        for flow in properties["dataFlows"]:
            try:
                renamed = transform_renames(flow.get("transformKql"))
            except ValueError:
                renamed = None
            if renamed is None or len(flow["streams"]) != 1:
                raise ValueError(
                    f"DCR {key}: the emulator runs only data flows of one stream that land it as it is or renaming "
                    "columns (`source | project-rename ...`)"
                )
            outputs[flow["streams"][0]] = flow["outputStream"].removeprefix("Custom-")
            renames[flow["streams"][0]] = renamed
        dcrs.append(
            DcrDefinition(
                immutable_id=immutable_id(key),
                streams={
                    name: tuple((c["name"], c["type"]) for c in declaration["columns"])
                    for name, declaration in properties["streamDeclarations"].items()
                },
                output_tables=outputs,
                table_plans={table: plans.get(table, "Analytics") for table in outputs.values()},
                key=key,
                renames={stream: names for stream, names in renames.items() if names},
            )
        )
    if not dcrs:
        raise ValueError("the template declares no data collection rules")
    return dcrs


def deployment_outputs(endpoint: str, dcrs: list[DcrDefinition]) -> dict[str, Any]:
    """What `az deployment group create ... --query properties.outputs` reports for a provisioned template."""
    return {
        ENDPOINT_OUTPUT: {"type": "String", "value": endpoint},
        RULE_IDS_OUTPUT: {"type": "Object", "value": {d.key: d.immutable_id for d in dcrs if d.key}},
    }
