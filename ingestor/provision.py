"""`ingestor provision`: the configuration's destinations -> an ARM template and the ingestor config that uses it.

`build_template` declares, for every (table, class) destination the rules can reach, its custom table (columns,
plan, retention; the columns are `table_columns`: the schema file's, the promoted `schemas.extra_columns`, and
UnmappedColumns when unknown columns are kept), one data collection endpoint, data collection rules (a stream
and a `source` data flow per destination, at most 10 per rule; one rule per destination for Auxiliary), the
Monitoring Metrics Publisher role on each rule, and one workspace function per Defender table that unions its
class tables. `check_template` applies Azure's documented rules to a template; `resolve_config` writes the
deployment's outputs into the config, and writes every secret as a `${INGESTOR_...}` placeholder naming the
environment variable that must carry it.
Pure except `main`.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from ingestor.config import SECRET_PATHS, Config, env_name, load_config
from ingestor.errors import ConfigError
from ingestor.models import Destination
from ingestor.retention import FIXED_INTERACTIVE_DAYS, TOTAL_RETENTION_YEARS
from ingestor.tables import COLUMN_NAME, MAX_COLUMN_NAME_CHARS, MAX_COLUMNS_PER_TABLE, RESERVED_COLUMNS, Column
from ingestor.workspace_functions import function_query

TEMPLATE_FILE = "azuredeploy.json"
CONFIG_FILE = "ingestor.yaml"
SCHEMA = "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#"
TABLES_API = "2025-07-01"
DCR_API = "2023-03-11"
ROLE_API = "2022-04-01"
FUNCTIONS_API = "2020-08-01"
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
WORKSPACE_ALIAS = "workspace"
FUNCTION_CATEGORY = "Defender ingestor"
DEFAULT_FUNCTION_NAME = "{table}"
# Azure's limits (azure-monitor-limits-data-collection-rules, workspace limits, Tables API).
MAX_FLOWS_PER_DCR = 10
MAX_STREAMS_PER_DCR = 10
MAX_TRANSFORM_CHARS = 15_360
MAX_DCR_NAME_CHARS = 64
MAX_PREFIX_CHARS = 17
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
_TABLE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,59}_CL")


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
    """Group destinations into DCRs: one per class (10 tables fit one rule), one per destination on Auxiliary
    (older documentation allows an Auxiliary table only a rule of its own)."""
    by_class: dict[str, list[Destination]] = {}
    for destination in destinations(config):
        by_class.setdefault(destination.retention_tag, []).append(destination)
    rules: list[Rule] = []
    for name, members in by_class.items():
        if config.retention.classes[name].plan == "Auxiliary":
            rules.extend(Rule(f"{name}_{d.table}", (d,)) for d in members)
            continue
        chunks = [members[i : i + MAX_FLOWS_PER_DCR] for i in range(0, len(members), MAX_FLOWS_PER_DCR)]
        for index, chunk in enumerate(chunks):
            rules.append(Rule(name if len(chunks) == 1 else f"{name}_{index + 1}", tuple(chunk)))
    return rules


def table_columns(config: Config, table: str) -> tuple[Column, ...]:
    """Every column a destination table of the Defender table `table` can hold, with its native type: the schema
    file's columns in file order (TimeGenerated, SourceTenantId and RetentionTag last), then the columns
    `schemas.extra_columns.<table>` promotes, in configuration order (origin "promoted"), then UnmappedColumns
    (dynamic, origin "added") when `validation.unknown_columns` is keep. The one list behind the tables, the DCR
    streams (`sent_columns`, a destination's view of it) and the workspace functions."""
    return config.table_schemas()[table].columns


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
    properties: dict[str, Any] = {
        "plan": cls.plan,
        "schema": {
            "name": destination.table_name,
            "description": f"Defender {destination.table}, retention class {destination.retention_tag}",
            "columns": [
                {"name": c.name, "type": TABLE_COLUMN_TYPES[c.type]} for c in sent_columns(config, destination)
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
                    "transformKql": "source",
                    "outputStream": f"Custom-{d.table_name}",
                }
                for d in rule.destinations
            ],
        },
    }


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
    query = function_query(table_columns(config, table), [(d.table_name, sent_columns(config, d)) for d in members])
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


# -- checks ---------------------------------------------------------------------------------------------------


def resources_of(template: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """The template's resources of one ARM type."""
    return [r for r in template.get("resources", []) if r["type"] == kind]


def template_tables(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The template's custom tables: name -> table properties (plan, retention, schema)."""
    return {r["properties"]["schema"]["name"]: r["properties"] for r in resources_of(template, TABLE_TYPE)}


def check_template(template: dict[str, Any]) -> list[str]:
    """Problems Azure would refuse the template for (or that would lose columns silently); empty when none."""
    tables = template_tables(template)
    rules = resources_of(template, DCR_TYPE)
    problems = [p for name, properties in tables.items() for p in _check_table(name, properties)]
    for rule in rules:
        problems.extend(_check_rule(rule, tables))
    # A role assignment names its DCR in `scope`; the role must be Monitoring Metrics Publisher.
    publisher = MONITORING_METRICS_PUBLISHER in template.get("variables", {}).get("publisherRole", "")
    scopes = {
        r["scope"]
        for r in resources_of(template, ROLE_ASSIGNMENT_TYPE)
        if publisher and r["properties"]["roleDefinitionId"] == "[variables('publisherRole')]"
    }
    problems.extend(
        f"DCR {rule['tags'][DCR_KEY_TAG]}: no Monitoring Metrics Publisher role assignment"
        for rule in rules
        if f"[format('Microsoft.Insights/dataCollectionRules/{{0}}', {rule['name'][1:-1]})]" not in scopes
    )
    for function in resources_of(template, FUNCTION_TYPE):
        query = function["properties"]["query"]
        unknown = [t for t in re.findall(r"\b\w+_CL\b", query) if t not in tables]
        if unknown:
            problems.append(f"function {function['properties']['functionAlias']}: unknown tables {unknown}")
    return problems


def _check_table(name: str, properties: dict[str, Any]) -> list[str]:
    where = f"table {name}"
    problems = []
    if not _TABLE_NAME.fullmatch(name):
        problems.append(f"{where}: a custom table name is a letter, letters/digits/_, `_CL`, 4-63 characters")
    columns = properties["schema"]["columns"]
    if len(columns) > MAX_COLUMNS_PER_TABLE:
        problems.append(f"{where}: {len(columns)} columns; a table may have {MAX_COLUMNS_PER_TABLE}")
    plan = properties.get("plan")
    names = [c["name"] for c in columns]
    if len(set(names)) != len(names):
        problems.append(f"{where}: duplicate column names")
    for column in columns:
        column_name, column_type = column["name"], column["type"]
        if not COLUMN_NAME.fullmatch(column_name) or len(column_name) > MAX_COLUMN_NAME_CHARS:
            problems.append(f"{where}: column {column_name!r} must be a letter then letters/digits/_, <= 45 chars")
        if column_name.lower() in RESERVED_COLUMNS:
            problems.append(f"{where}: column {column_name!r} is reserved")
        if column_type not in TABLE_COLUMN_TYPES.values():
            problems.append(f"{where}: column {column_name!r} has type {column_type!r}, not a Tables API type")
    if plan == "Auxiliary" and any(c["type"] == "dynamic" for c in columns):
        problems.append(f"{where}: an Auxiliary table cannot have dynamic columns")
    if {"name": "TimeGenerated", "type": "dateTime"} not in columns:
        problems.append(f"{where}: every table needs TimeGenerated of type dateTime")
    if plan not in ("Analytics", "Basic", "Auxiliary"):
        problems.append(f"{where}: plan {plan!r} is not Analytics, Basic or Auxiliary")
    interactive = properties.get("retentionInDays")
    if interactive is not None and (plan != "Analytics" or not 4 <= interactive <= 730):
        problems.append(f"{where}: retentionInDays is 4-730 and only settable on Analytics, got {interactive}")
    total = properties.get("totalRetentionInDays")
    if total is not None and not (4 <= total <= 730 or total in TOTAL_RETENTION_YEARS):
        problems.append(f"{where}: totalRetentionInDays {total} is not 4-730 or a whole number of years up to 12")
    fixed = FIXED_INTERACTIVE_DAYS if plan in ("Basic", "Auxiliary") else interactive
    if total is not None and fixed is not None and total < fixed:
        problems.append(f"{where}: totalRetentionInDays {total} is shorter than the interactive {fixed} days")
    return problems


def _check_rule(rule: dict[str, Any], tables: dict[str, dict[str, Any]]) -> list[str]:
    where = f"DCR {rule.get('tags', {}).get(DCR_KEY_TAG, rule['name'])}"
    properties = rule["properties"]
    streams, flows = properties["streamDeclarations"], properties["dataFlows"]
    problems = []
    if len(flows) > MAX_FLOWS_PER_DCR:
        problems.append(f"{where}: {len(flows)} data flows; a DCR may have {MAX_FLOWS_PER_DCR}")
    if len(streams) > MAX_STREAMS_PER_DCR:
        problems.append(f"{where}: {len(streams)} streams; a DCR may have {MAX_STREAMS_PER_DCR}")
    if len(properties["destinations"]["logAnalytics"]) > 10:
        problems.append(f"{where}: more than 10 Log Analytics destinations")
    for stream, declaration in streams.items():
        if not stream.startswith("Custom-"):
            problems.append(f"{where}: stream {stream} must start with Custom-")
        bad = [c["name"] for c in declaration["columns"] if c["type"] not in STREAM_COLUMN_TYPES.values()]
        if bad:
            problems.append(f"{where}: stream {stream} columns {bad} have types a stream cannot declare")
    outputs = [flow["outputStream"].removeprefix("Custom-") for flow in flows]
    for flow in flows:
        transform = flow.get("transformKql")
        if transform is not None and len(flow["streams"]) != 1:
            problems.append(f"{where}: a data flow with a transform must read exactly one stream")
        if transform is not None and len(transform) > MAX_TRANSFORM_CHARS:
            problems.append(f"{where}: transform of {len(transform)} characters; the limit is {MAX_TRANSFORM_CHARS}")
        table = flow["outputStream"].removeprefix("Custom-")
        if table not in tables:
            problems.append(f"{where}: data flow into {table}, which the template does not declare")
            continue
        unknown = [s for s in flow["streams"] if s not in streams]
        if unknown:
            problems.append(f"{where}: data flow reads undeclared streams {unknown}")
            continue
        if transform in (None, "source"):
            problems.extend(_check_columns_match(where, streams[flow["streams"][0]], tables[table], table))
        if tables[table]["plan"] == "Auxiliary" and len(set(outputs)) > 1:
            problems.append(f"{where}: an Auxiliary table ({table}) needs a DCR of its own")
    return problems


def _check_columns_match(where: str, declaration: dict[str, Any], table: dict[str, Any], name: str) -> list[str]:
    """Without a transform the stream's columns land as they are: each must be a table column of its type."""
    table_types = {c["name"]: c["type"] for c in table["schema"]["columns"]}
    problems = []
    for column in declaration["columns"]:
        expected = table_types.get(column["name"])
        if expected is None:
            problems.append(f"{where}: column {column['name']} is not in table {name}; the DCR would drop it")
        elif STREAM_COLUMN_TYPES[_TABLE_TO_SCHEMA_TYPE[expected]] != column["type"]:
            problems.append(f"{where}: column {column['name']} is {column['type']} in the stream, {expected} in {name}")
    return problems


_TABLE_TO_SCHEMA_TYPE = {v: k for k, v in TABLE_COLUMN_TYPES.items()}


# -- the ingestor configuration that uses the deployment --------------------------------------------------------


def resolve_config(doc: dict[str, Any], config: Config, outputs: dict[str, Any] | None) -> dict[str, Any]:
    """`doc` (the configuration file as read) with the endpoint and every destination's DCR, stream and table
    set; without `outputs`, the values are `${output}` placeholders naming the deployment output to use. Secrets
    are never copied: each becomes `${INGESTOR_...}`, which check-config refuses until that variable is set."""
    endpoint = _output(outputs, ENDPOINT_OUTPUT)
    rule_ids = _output(outputs, RULE_IDS_OUTPUT) if outputs is not None else {}
    resolved = copy.deepcopy(doc)
    for path in secrets_in(resolved):
        *parents, key = path
        node = resolved
        for part in parents:
            node = node[part]
        node[key] = f"${{{env_name(path)}}}"
    sink = resolved.setdefault("sink", {})
    sink["endpoint"] = endpoint if outputs is not None else f"${{{ENDPOINT_OUTPUT}}}"
    retention = resolved.setdefault("retention", {})
    by_table = retention.setdefault("destinations", {})
    for index, rule in enumerate(plan_rules(config)):
        if outputs is not None and rule.key not in rule_ids:
            raise ConfigError([f"--outputs: {RULE_IDS_OUTPUT} has no {rule.key!r}; deploy the current template"])
        rule_id = rule_ids[rule.key] if outputs is not None else f"${{{RULE_IDS_OUTPUT}.{rule.key}}}"
        for destination in rule.destinations:
            settings = by_table.setdefault(destination.table, {}).setdefault(destination.retention_tag, {})
            settings.update(rule_id=rule_id, stream=destination.stream, table_name=destination.table_name)
        if index == 0:
            sink["rule_id"] = rule_id  # required, but every destination names its own rule
    return resolved


def secrets_in(doc: Any, patterns: frozenset[tuple[str, ...]] = SECRET_PATHS) -> list[tuple[str, ...]]:
    """Paths of the secrets `doc` holds (keys set to anything but null)."""
    return sorted({path for pattern in patterns for path in _walk(doc, pattern, ())})


def _walk(node: Any, pattern: tuple[str, ...], at: tuple[str, ...]) -> list[tuple[str, ...]]:
    if not pattern:
        return [at] if node is not None else []
    head, rest = pattern[0], pattern[1:]
    if isinstance(node, dict):
        keys = [k for k in node if head in ("*", k)]
        return [p for k in keys for p in _walk(node[k], rest, (*at, str(k)))]
    if isinstance(node, list) and head == "*":
        return [p for i, item in enumerate(node) for p in _walk(item, rest, (*at, str(i)))]
    return []


def _output(outputs: dict[str, Any] | None, name: str) -> Any:
    if outputs is None:
        return None
    entry = outputs.get(name) or outputs.get(name.lower())
    if not isinstance(entry, dict) or "value" not in entry:
        raise ConfigError([f"--outputs: no output {name!r}; pass what `--query properties.outputs` printed"])
    return entry["value"]


# -- command ----------------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True, help="the ingestor's YAML configuration")
    parser.add_argument("--out", type=Path, help=f"directory for {TEMPLATE_FILE} and {CONFIG_FILE}")
    parser.add_argument(
        "--check-queries",
        type=Path,
        metavar="DIR",
        help="analyze the queries in DIR (.kql/.txt files, Sentinel rule YAML, rule exports in JSON) against the "
        "workspace this configuration provisions and list those that would break (exit code 1); needs Node.js",
    )
    parser.add_argument(
        "--outputs", type=Path, help="the deployment's outputs (JSON), to fill the DCR ids into the configuration"
    )
    parser.add_argument(
        "--function-name",
        default=DEFAULT_FUNCTION_NAME,
        help="name pattern of the per-table union functions (default: %(default)s, the Defender table name)",
    )


def main(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    doc = yaml.safe_load(args.config.read_text(encoding="utf-8")) or {}
    outputs = None
    if args.outputs is not None:
        try:
            outputs = json.loads(args.outputs.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError([f"--outputs {args.outputs}: cannot read deployment outputs ({exc})"]) from None
    if "{table}" not in args.function_name:
        raise ConfigError(["--function-name: the pattern must contain {table}"])
    if args.out is None and args.check_queries is None:
        raise ConfigError(["give --out DIR (write the template and configuration) or --check-queries DIR, or both"])
    template = build_template(config, function_name=args.function_name)
    problems = check_template(template)
    if problems:
        raise ConfigError([f"generated template breaks Azure's rules: {p}" for p in problems])
    written = 0 if args.out is None else _write(args, config, doc, template, outputs)
    if args.check_queries is None:
        return written
    from ingestor.kql import Analyzer, database_from_template
    from ingestor.query_check import check, read_queries, report

    queries = read_queries(args.check_queries)
    if not queries:
        raise ConfigError([f"--check-queries {args.check_queries}: no queries found (.kql, .txt, .yaml, .yml, .json)"])
    return report(check(queries, database_from_template(template), Analyzer()), sys.stdout)


def _write(
    args: argparse.Namespace, config: Config, doc: dict[str, Any], template: dict[str, Any], outputs: Any
) -> int:
    resolved = resolve_config(doc, config, outputs)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / TEMPLATE_FILE).write_text(json.dumps(template, indent=2) + "\n", encoding="utf-8")
    header = "# Written by `ingestor provision`. " + (
        "Values come from the deployment's outputs.\n"
        if outputs is not None
        else "Deploy azuredeploy.json, then run provision again with --outputs to fill in the ${...} values.\n"
    )
    withheld = secrets_in(doc)
    if withheld:
        header += "# Secrets are ${INGESTOR_...} placeholders: set those environment variables (e.g. from a Secret).\n"
    (args.out / CONFIG_FILE).write_text(header + yaml.safe_dump(resolved, sort_keys=False), encoding="utf-8")
    rules = plan_rules(config)
    count = sum(len(r.destinations) for r in rules)
    print(f"wrote {args.out / TEMPLATE_FILE}: {count} tables, {len(rules)} data collection rules", file=sys.stderr)
    print(f"wrote {args.out / CONFIG_FILE}" + ("" if outputs else " (placeholders until --outputs)"), file=sys.stderr)
    for path in withheld:
        env = env_name(path)
        print(f"{'.'.join(path)} is not written to {CONFIG_FILE}: set the environment variable {env}", file=sys.stderr)
    return 0
