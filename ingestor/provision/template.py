"""The configuration's destinations -> the ARM template deploying them: `plan_rules` groups the (table, class)
destinations into data collection rules within Azure's limits (`explain_rules` says how, in words),
`table_columns`/`sent_columns`/`stored_names_of` give their columns and the names tables store them under, and
`build_template` declares the tables, the endpoint, the rules, their role assignments and the workspace functions.
Pure.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ingestor.config import Config
from ingestor.models import Destination
from ingestor.provision.arm import (
    DCE_TYPE,
    DCR_KEY_TAG,
    DCR_TYPE,
    ENDPOINT_OUTPUT,
    FUNCTION_TYPE,
    MONITORING_METRICS_PUBLISHER,
    ROLE_ASSIGNMENT_TYPE,
    RULE_IDS_OUTPUT,
    STREAM_COLUMN_TYPES,
    TABLE_COLUMN_TYPES,
    TABLE_TYPE,
    rename_transform,
)
from ingestor.provision.azure_rules import MAX_FLOWS_PER_DCR, MAX_PREFIX_CHARS, MAX_STREAMS_PER_DCR, stored_names
from ingestor.provision.workspace_functions import function_query
from ingestor.tables import Column

SCHEMA = "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#"
TABLES_API = "2025-07-01"
DCR_API = "2023-03-11"
ROLE_API = "2022-04-01"
FUNCTIONS_API = "2020-08-01"
WORKSPACE_ALIAS = "workspace"
FUNCTION_CATEGORY = "Defender ingestor"
DEFAULT_FUNCTION_NAME = "{table}"


@dataclass(frozen=True, slots=True)
class Rule:
    """One data collection rule of the deployment: its output key, name suffix and destinations."""

    key: str
    destinations: tuple[Destination, ...]

    @property
    def name_suffix(self) -> str:
        return self.key.lower().replace("_", "-")


def destinations(config: Config) -> list[Destination]:
    """Every destination the rules can reach, by class in configuration order, then by table."""
    found = {d for route in config.routes().values() for d in route.destinations}
    order = list(config.retention.classes)
    return sorted(found, key=lambda d: (order.index(d.retention_tag), d.table))


def plan_rules(config: Config) -> list[Rule]:
    """Group destinations into DCRs, class by class (a rule feeds the tables of one class). Each destination takes
    a stream and a data flow of its rule, so a rule holds at most MAX_FLOWS_PER_DCR (and MAX_STREAMS_PER_DCR)
    destinations. An Auxiliary class gives each destination a rule of its own, `<class>_<Table>` (older
    documentation allows an Auxiliary table only a rule of its own); any other class takes as few rules as the
    limits allow: `<class>` when one holds them all, else `<class>_1`, `<class>_2`, ..., each a run of the class's
    tables in name order, as even as can be (22 tables: 8, 7 and 7), so every rule keeps room under the limits and
    under the per-DCR rate limits, and a class's DCRs and names depend on its tables alone."""
    by_class: dict[str, list[Destination]] = {}
    for destination in destinations(config):
        by_class.setdefault(destination.retention_tag, []).append(destination)
    limit = min(MAX_FLOWS_PER_DCR, MAX_STREAMS_PER_DCR)
    rules: list[Rule] = []
    for name, members in by_class.items():
        if config.retention.classes[name].plan == "Auxiliary":
            rules.extend(Rule(f"{name}_{d.table}", (d,)) for d in members)
            continue
        count = -(-len(members) // limit)
        size, longer = divmod(len(members), count)
        start = 0
        for index in range(count):
            end = start + size + (index < longer)
            rules.append(Rule(name if count == 1 else f"{name}_{index + 1}", tuple(members[start:end])))
            start = end
    return rules


def explain_rules(config: Config, rules: list[Rule] | None = None) -> list[str]:
    """In words, for each class that takes more than one DCR, which tables each of its DCRs holds and why: a line
    per class, then an indented line per DCR (`<key>: <tables>`). Empty when every class fits one DCR."""
    rules = plan_rules(config) if rules is None else rules
    by_class: dict[str, list[Rule]] = {}
    for rule in rules:
        by_class.setdefault(rule.destinations[0].retention_tag, []).append(rule)
    lines = []
    for name, members in by_class.items():
        if len(members) == 1:
            continue
        tables = sum(len(rule.destinations) for rule in members)
        if config.retention.classes[name].plan == "Auxiliary":
            why = "older documentation allows a DCR that feeds an Auxiliary table no other table"
            lines.append(f"class {name} (plan Auxiliary): {tables} tables, a DCR each: {why}")
        else:
            why = (
                f"a DCR holds at most {MAX_FLOWS_PER_DCR} data flows and {MAX_STREAMS_PER_DCR} streams, one of each "
                "per table"
            )
            lines.append(f"class {name}: {tables} tables in {len(members)} DCRs: {why}")
        lines.extend(f"  {rule.key}: {', '.join(d.table for d in rule.destinations)}" for rule in members)
    return lines


def table_columns(config: Config, table: str) -> tuple[Column, ...]:
    """Every column a destination table of the Defender table `table` can hold, with its native type: the schema
    file's columns in file order (TimeGenerated, SourceTenantId and RetentionTag last), then the columns
    `schemas.extra_columns.<table>` promotes, in configuration order (origin "promoted"), then UnmappedColumns
    (dynamic, origin "added") when `validation.unknown_columns` is keep. The one list behind the tables, the DCR
    streams (`sent_columns`, a destination's view of it) and the workspace functions."""
    return config.table_schemas()[table].columns


def stored_names_of(config: Config, table: str) -> dict[str, str]:
    """The columns of the Defender table `table` that its destination tables store under another name, with that
    name (`azure_rules.stored_names`: `Title` -> `Title_`): the same for every class and projection of the table."""
    return stored_names([c.name for c in table_columns(config, table)])


def sent_columns(config: Config, destination: Destination) -> tuple[Column, ...]:
    """The columns the ingestor may send to a destination: `table_columns`, minus the dropped ones. Auxiliary
    tables take no dynamic columns, so there they are strings (the ingestor sends the JSON text)."""
    dropped = set(destination.dropped_columns)
    columns = [c for c in table_columns(config, destination.table) if c.name not in dropped]
    if destination.plan == "Auxiliary":
        columns = [replace(c, type="string") if c.type == "dynamic" else c for c in columns]
    return tuple(columns)


def build_template(config: Config, *, function_name: str = DEFAULT_FUNCTION_NAME) -> dict[str, Any]:
    """The ARM template (a plain JSON document) deploying every destination of `config`."""
    rules = plan_rules(config)
    all_destinations = [d for rule in rules for d in rule.destinations]
    variables: dict[str, Any] = {
        "workspaceId": "[resourceId('Microsoft.OperationalInsights/workspaces', parameters('workspaceName'))]",
        "dceName": "[format('{0}-dce', parameters('namePrefix'))]",
        "publisherRole": (
            f"[subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '{MONITORING_METRICS_PUBLISHER}')]"
        ),
    }
    resources: list[dict[str, Any]] = [_table(d, config) for d in all_destinations]
    resources.append(
        {
            "type": DCE_TYPE,
            "apiVersion": DCR_API,
            "name": "[variables('dceName')]",
            "location": "[parameters('location')]",
            "properties": {"networkAcls": {"publicNetworkAccess": "Enabled"}},
        }
    )
    for rule in rules:
        variables[f"dcr_{rule.key}"] = f"[format('{{0}}-{rule.name_suffix}', parameters('namePrefix'))]"
        resources.append(_rule(rule, config))
        resources.append(_role_assignment(rule))
    by_table: dict[str, list[Destination]] = {}
    for destination in all_destinations:
        by_table.setdefault(destination.table, []).append(destination)
    resources.extend(_function(table, members, function_name, config) for table, members in sorted(by_table.items()))
    rule_ids = {
        rule.key: f"[reference(resourceId('Microsoft.Insights/dataCollectionRules', variables('dcr_{rule.key}')), "
        f"'{DCR_API}').immutableId]"
        for rule in rules
    }
    return {
        "$schema": SCHEMA,
        "contentVersion": "1.0.0.0",
        "metadata": {"description": "Defender ingestor destinations, generated by `ingestor provision`"},
        "parameters": _parameters(),
        "variables": variables,
        "resources": resources,
        "outputs": {
            ENDPOINT_OUTPUT: {
                "type": "string",
                "value": (
                    "[reference(resourceId('Microsoft.Insights/dataCollectionEndpoints', variables('dceName')), "
                    f"'{DCR_API}').logsIngestion.endpoint]"
                ),
            },
            RULE_IDS_OUTPUT: {"type": "object", "value": rule_ids},
        },
    }


def _parameters() -> dict[str, Any]:
    return {
        "workspaceName": {
            "type": "string",
            "metadata": {"description": "Existing Log Analytics workspace in this resource group"},
        },
        "principalId": {
            "type": "string",
            "metadata": {"description": "Object id of the ingestor's identity (e.g. its workload identity)"},
        },
        "principalType": {
            "type": "string",
            "defaultValue": "ServicePrincipal",
            "allowedValues": ["ServicePrincipal", "User", "Group"],
        },
        "location": {"type": "string", "defaultValue": "[resourceGroup().location]"},
        "namePrefix": {
            "type": "string",
            "defaultValue": "defender-ingestor",
            "maxLength": MAX_PREFIX_CHARS,
            "metadata": {"description": "Prefix of the data collection endpoint and rule names"},
        },
    }


def _table(destination: Destination, config: Config) -> dict[str, Any]:
    cls = config.retention.classes[destination.retention_tag]
    stored = stored_names_of(config, destination.table)
    properties: dict[str, Any] = {
        "plan": cls.plan,
        "schema": {
            "name": destination.table_name,
            "description": f"Defender {destination.table}, retention class {destination.retention_tag}",
            "columns": [
                {"name": stored.get(c.name, c.name), "type": TABLE_COLUMN_TYPES[c.type]}
                for c in sent_columns(config, destination)
            ],
        },
    }
    if cls.plan == "Analytics" and cls.retention_days is not None:
        properties["retentionInDays"] = cls.retention_days  # read-only on Basic and Auxiliary (fixed 30)
    if cls.total_retention_days is not None:
        properties["totalRetentionInDays"] = cls.total_retention_days
    return {
        "type": TABLE_TYPE,
        "apiVersion": TABLES_API,
        "name": f"[format('{{0}}/{destination.table_name}', parameters('workspaceName'))]",
        "properties": properties,
    }


def _rule(rule: Rule, config: Config) -> dict[str, Any]:
    name = f"variables('dcr_{rule.key}')"
    return {
        "type": DCR_TYPE,
        "apiVersion": DCR_API,
        "name": f"[{name}]",
        "location": "[parameters('location')]",
        "tags": {DCR_KEY_TAG: rule.key},
        "dependsOn": [
            "[resourceId('Microsoft.Insights/dataCollectionEndpoints', variables('dceName'))]",
            *(
                f"[resourceId('Microsoft.OperationalInsights/workspaces/tables', parameters('workspaceName'), "
                f"'{d.table_name}')]"
                for d in rule.destinations
            ),
        ],
        "properties": {
            "description": f"Defender ingestor: {', '.join(d.table_name for d in rule.destinations)}",
            "dataCollectionEndpointId": (
                "[resourceId('Microsoft.Insights/dataCollectionEndpoints', variables('dceName'))]"
            ),
            "streamDeclarations": {
                d.stream: {
                    "columns": [{"name": c.name, "type": STREAM_COLUMN_TYPES[c.type]} for c in sent_columns(config, d)]
                }
                for d in rule.destinations
            },
            "destinations": {
                "logAnalytics": [{"workspaceResourceId": "[variables('workspaceId')]", "name": WORKSPACE_ALIAS}]
            },
            "dataFlows": [
                {
                    "streams": [d.stream],
                    "destinations": [WORKSPACE_ALIAS],
                    "transformKql": _transform(config, d),
                    "outputStream": f"Custom-{d.table_name}",
                }
                for d in rule.destinations
            ],
        },
    }


def _transform(config: Config, destination: Destination) -> str:
    """`source`, or `source` with the columns the table stores under another name renamed (`stored_names_of`)."""
    stored = stored_names_of(config, destination.table)
    sent = sent_columns(config, destination)
    return rename_transform({c.name: stored[c.name] for c in sent if c.name in stored})


def _role_assignment(rule: Rule) -> dict[str, Any]:
    rule_id = f"resourceId('Microsoft.Insights/dataCollectionRules', variables('dcr_{rule.key}'))"
    return {
        "type": ROLE_ASSIGNMENT_TYPE,
        "apiVersion": ROLE_API,
        "scope": f"[format('Microsoft.Insights/dataCollectionRules/{{0}}', variables('dcr_{rule.key}'))]",
        "name": f"[guid({rule_id}, parameters('principalId'), variables('publisherRole'))]",
        "dependsOn": [f"[{rule_id}]"],
        "properties": {
            "roleDefinitionId": "[variables('publisherRole')]",
            "principalId": "[parameters('principalId')]",
            "principalType": "[parameters('principalType')]",
            "description": "Lets the Defender ingestor send rows to this data collection rule",
        },
    }


def _function(table: str, members: list[Destination], function_name: str, config: Config) -> dict[str, Any]:
    """The function named after `table`: the native table exactly (`workspace_functions.function_query`)."""
    alias = function_name.format(table=table)
    tables = [d.table_name for d in members]
    query = function_query(
        table_columns(config, table),
        [(d.table_name, sent_columns(config, d)) for d in members],
        stored_names_of(config, table),
    )
    return {
        "type": FUNCTION_TYPE,
        "apiVersion": FUNCTIONS_API,
        "name": f"[format('{{0}}/defender-ingestor-{alias}', parameters('workspaceName'))]",
        "dependsOn": [
            f"[resourceId('Microsoft.OperationalInsights/workspaces/tables', parameters('workspaceName'), '{t}')]"
            for t in tables
        ],
        "properties": {
            "category": FUNCTION_CATEGORY,
            "displayName": f"{table} over every retention class",
            "functionAlias": alias,
            "query": query,
            "version": 2,
        },
    }
