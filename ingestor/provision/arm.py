"""The vocabulary of the ARM template `ingestor provision` writes, shared by whoever builds, checks or reads one:
resource types, the publisher role, the DCR key tag and output names, column types, the data flows' transforms
(`rename_transform` writes one, `transform_renames` reads it back); `resources_of` and `template_tables` read a
template. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# ARM resource types the template holds.
TABLE_TYPE = "Microsoft.OperationalInsights/workspaces/tables"
DCE_TYPE = "Microsoft.Insights/dataCollectionEndpoints"
DCR_TYPE = "Microsoft.Insights/dataCollectionRules"
ROLE_ASSIGNMENT_TYPE = "Microsoft.Authorization/roleAssignments"
FUNCTION_TYPE = "Microsoft.OperationalInsights/workspaces/savedSearches"
# Built-in role that may send data to a DCR.
MONITORING_METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"
# Tag on each DCR resource naming its key in the `dataCollectionRuleIds` output (the emulator reads it too).
DCR_KEY_TAG = "defenderIngestorRule"
ENDPOINT_OUTPUT = "logsIngestionEndpoint"
RULE_IDS_OUTPUT = "dataCollectionRuleIds"
TABLE_COLUMN_TYPES = {
    "string": "string",
    "int": "int",
    "long": "long",
    "real": "real",
    "boolean": "boolean",
    "datetime": "dateTime",
    "dynamic": "dynamic",
    "guid": "guid",
}
# A stream declaration has no guid type: the table stores guids as strings anyway.
STREAM_COLUMN_TYPES = {**{k: k for k in TABLE_COLUMN_TYPES}, "guid": "string"}
# A data flow's transformKql: the rows as sent, or those rows with some columns renamed to the names their table
# stores them under (`project-rename` is a supported transformation operator: MicrosoftDocs/azure-monitor-docs
# articles/azure-monitor/data-collection/data-collection-transformations-kql.md
# @0f49c9dc2f76982bd609c30fe968191bcc3d9b03).
SOURCE_TRANSFORM = "source"
_NAME = r"[A-Za-z][A-Za-z0-9_]*"
_RENAMES = re.compile(rf"source \| project-rename ({_NAME} = {_NAME}(?:, {_NAME} = {_NAME})*)")


def resources_of(template: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """The template's resources of one ARM type."""
    return [r for r in template.get("resources", []) if r["type"] == kind]


def template_tables(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The template's custom tables: name -> table properties (plan, retention, schema)."""
    return {r["properties"]["schema"]["name"]: r["properties"] for r in resources_of(template, TABLE_TYPE)}


def rename_transform(renames: Mapping[str, str]) -> str:
    """The transformKql of a data flow whose stream sends some columns under other names than its table stores
    them: `source | project-rename <stored> = <sent>, ...` (`renames`: sent -> stored); `source` when none."""
    if not renames:
        return SOURCE_TRANSFORM
    return "source | project-rename " + ", ".join(f"{stored} = {sent}" for sent, stored in renames.items())


def transform_renames(transform: str | None) -> dict[str, str]:
    """sent -> stored column names of a transform `rename_transform` writes (empty for `source` or none);
    ValueError for any other transform."""
    if transform is None or transform == SOURCE_TRANSFORM:
        return {}
    match = _RENAMES.fullmatch(transform)
    if match is None:
        raise ValueError(f"not a transform ingestor provision writes: {transform[:80]!r}")
    pairs = [pair.split(" = ") for pair in match.group(1).split(", ")]
    return {sent: stored for stored, sent in pairs}
