"""The vocabulary of the ARM template `ingestor provision` writes, shared by whoever builds, checks or reads one:
resource types, the publisher role, the DCR key tag and output names, column types; `resources_of` and
`template_tables` read a template. Data only, pure.
"""

from __future__ import annotations

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


def resources_of(template: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """The template's resources of one ARM type."""
    return [r for r in template.get("resources", []) if r["type"] == kind]


def template_tables(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The template's custom tables: name -> table properties (plan, retention, schema)."""
    return {r["properties"]["schema"]["name"]: r["properties"] for r in resources_of(template, TABLE_TYPE)}
