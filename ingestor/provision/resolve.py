"""The ingestor configuration that uses a deployment: `resolve_config` fills the deployment's outputs (or
`${output}` placeholders) into the configuration file and writes every secret (`secrets_in`) as a
`${INGESTOR_...}` placeholder naming the environment variable that must carry it. Pure.
"""

from __future__ import annotations

import copy
from typing import Any

from ingestor.config import SECRET_PATHS, Config, env_name
from ingestor.errors import ConfigError
from ingestor.provision.arm import ENDPOINT_OUTPUT, RULE_IDS_OUTPUT
from ingestor.provision.template import plan_rules


def resolve_config(doc: dict[str, Any], config: Config, outputs: dict[str, Any] | None) -> dict[str, Any]:
    """`doc` (the configuration file as read) with the endpoint and every destination's DCR, stream and table
    set, and each `sink.tables.<T>.rule_id` it holds set to its table's DCR too; without `outputs`, the values are
    `${output}` placeholders naming the deployment output to use. Secrets are never copied: each becomes
    `${INGESTOR_...}`, which check-config refuses until that variable is set."""
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
    per_table = sink.get("tables") if isinstance(sink.get("tables"), dict) else {}
    for index, rule in enumerate(plan_rules(config)):
        if outputs is not None and rule.key not in rule_ids:
            raise ConfigError([f"--outputs: {RULE_IDS_OUTPUT} has no {rule.key!r}; deploy the current template"])
        rule_id = rule_ids[rule.key] if outputs is not None else f"${{{RULE_IDS_OUTPUT}.{rule.key}}}"
        for destination in rule.destinations:
            settings = by_table.setdefault(destination.table, {}).setdefault(destination.retention_tag, {})
            settings.update(rule_id=rule_id, stream=destination.stream, table_name=destination.table_name)
            # `sink.tables.<T>.rule_id` (the default class's) is what an earlier layout gave the table: the DCR
            # named above wins over it, but a stale one would still say otherwise in the file.
            override = per_table.get(destination.table)
            default = destination.retention_tag == config.retention.default_class
            if default and isinstance(override, dict) and override.get("rule_id") is not None:
                override["rule_id"] = rule_id
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


def _output(outputs: Any, name: str) -> Any:
    """The value of output `name` in what `az deployment group create ... --query properties.outputs` printed:
    `{"<name>": {"type": "String", "value": ...}, ...}` (ARM may lowercase the first letter of a name)."""
    if outputs is None:
        return None
    if not isinstance(outputs, dict):
        raise ConfigError(
            [f"--outputs: expected a JSON object of outputs, got {type(outputs).__name__}; {_OUTPUTS_FIX}"]
        )
    if isinstance(outputs.get("properties"), dict) and "outputs" in outputs["properties"]:
        raise ConfigError([f"--outputs: this is the whole deployment, not its outputs; {_OUTPUTS_FIX}"])
    entry = outputs.get(name) or outputs.get(name[:1].lower() + name[1:]) or outputs.get(name.lower())
    if not isinstance(entry, dict) or "value" not in entry:
        raise ConfigError([f"--outputs: no output {name!r}; {_OUTPUTS_FIX}"])
    value = entry["value"]
    expected = str if name == ENDPOINT_OUTPUT else dict
    if not isinstance(value, expected):
        raise ConfigError([f"--outputs: output {name!r} is not a {expected.__name__}; {_OUTPUTS_FIX}"])
    return value


_OUTPUTS_FIX = "pass what `az deployment group create ... --query properties.outputs` printed for the current template"
