"""What `check-config`, `run` and `replay` refuse (errors) or point out (warnings) beyond the models, and the
effective configuration as check-config prints it (with the data collection rules provision spreads a class over,
as comments). `load_runnable` validates the models, then refuses placeholders, names Event Hubs would refuse;
`provision` validates only the models, as its input holds placeholders by design.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from pydantic import ValidationError

from ingestor.config import (
    ALL_TABLES,
    Config,
    Document,
    EventHubsSourceConfig,
    KafkaSourceConfig,
    KeyPath,
    comma_list,
    describe,
    env_name,
    is_secret,
    node_entries,
    read_document,
    user_path,
    with_kafka_port,
)
from ingestor.errors import ConfigError
from ingestor.provision.arm import ENDPOINT_OUTPUT, RULE_IDS_OUTPUT
from ingestor.provision.azure_rules import MAX_FLOWS_PER_DCR, MAX_STREAMS_PER_DCR
from ingestor.provision.resolve import secrets_in
from ingestor.provision.template import Rule, explain_rules, plan_rules
from ingestor.tables import load_schemas

# Placeholders refused where a real value is needed (docs/configuration.md, check-config, lists them):
# the all-zero DCR id of the chart's defaults and the docs (the emulator's default DCR: allowed with static_token),
ALL_ZERO_RULE_ID = "dcr-" + "0" * 32
# `<...>` as in the chart's `<namespace>`, `<event hub>` and `<dce>`,
_ANGLE = re.compile(r"<[^<>]+>")
# the docs' namespace `NS` (docs/deployment.md) at the start of a host,
DOCS_NAMESPACE = "NS."
# a host in the `.invalid` domain (RFC 6761: it never resolves; the docs write https://placeholder.invalid),
INVALID_DOMAIN = ".invalid"
# and what `ingestor provision` writes before `--outputs`: ${logsIngestionEndpoint}, ${dataCollectionRuleIds.<key>}.
_OUTPUT = re.compile(rf"\$\{{({ENDPOINT_OUTPUT}|{RULE_IDS_OUTPUT}\.[^}}]+)\}}")
# Keys holding a host or URL (`*`: any list index).
HOST_KEYS = (
    "source.bootstrap_servers.*",
    "source.fully_qualified_namespace",
    "source.checkpoint_store.account_url",
    "sink.endpoint",
)
# What a real value looks like, for the error line.
EXAMPLES = {
    "source.bootstrap_servers.*": "contoso-defender.servicebus.windows.net:9093",
    "source.fully_qualified_namespace": "contoso-defender.servicebus.windows.net",
    "source.topics.*": "defender",
    "source.eventhub_name": "defender",
    "source.checkpoint_store.account_url": "https://contosocheckpoints.blob.core.windows.net",
}

# Azure's naming rules (learn.microsoft.com/azure/templates/microsoft.eventhub/namespaces/eventhubs and
# .../namespaces/eventhubs/consumergroups): an event hub (a Kafka topic) 1-256 characters, an AMQP consumer group
# 1-50; letters, digits, periods, hyphens and underscores, starting and ending with a letter or digit. `$Default` is
# every hub's built-in consumer group. Kafka consumer groups (`group_id`) are the Kafka protocol's, not these.
EVENT_HUB_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,254}[A-Za-z0-9])?")
CONSUMER_GROUP_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,48}[A-Za-z0-9])?")
DEFAULT_CONSUMER_GROUP = "$Default"
_NAME_RULE = "letters, digits, periods, hyphens and underscores, starting and ending with a letter or digit"

# Logs Ingestion hosts, a DCE's or a DCR's own (`<name>-<id>.<region>-1.ingest.monitor.azure.com`), in the public
# cloud and the US Government and China clouds.
INGESTION_HOST = re.compile(r"[a-z0-9.-]+\.ingest\.monitor\.azure\.(com|us|cn)")

# The chart's `existingSecret` key for each secret (helm/ingestor/templates/_helpers.tpl, `ingestor.secretEnv`).
CHART_SECRET_KEYS = {
    ("source", "auth", "connection_string"): "connectionStringKey",
    ("source", "connection_string"): "amqpConnectionStringKey",
    ("source", "checkpoint_store", "connection_string"): "checkpointStoreConnectionStringKey",
    ("sink", "credential", "token"): "staticTokenKey",
}


@dataclass(frozen=True)
class Checked:
    """A configuration that may run, the document it came from, and what check-config warns about."""

    config: Config
    document: Document
    warnings: list[str]


def load_runnable(path: Path | None, environ: dict[str, str] | None = None) -> Checked:
    """The configuration `run` can use, or ConfigError: the models' errors and the refusals below, one line each;
    the endpoint and DCR ids still to be filled in by provision make one line together."""
    document = read_document(path, environ)
    try:
        config = Config.model_validate(document.doc)
    except ValidationError as exc:
        pending = {p for p, value in _strings(document.doc) if _OUTPUT.fullmatch(value)}
        lines = [describe(e, document) for e in exc.errors() if user_path(e["loc"]) not in pending]
        raise ConfigError(lines + ([_to_provision(sorted(pending), document, True)] if pending else [])) from None
    errors, warnings = problems(config, document)
    if errors:
        raise ConfigError(errors)
    return Checked(config, document, warnings)


def problems(config: Config, document: Document) -> tuple[list[str], list[str]]:
    """(errors, warnings) of a configuration the models accept."""
    errors: list[str] = []
    emulator = config.sink.credential.type == "static_token"
    destinations: dict[KeyPath, str] = {}
    flagged: set[KeyPath] = set()
    for path, value in _strings(config.model_dump(mode="python", by_alias=True)):
        if is_secret(path) or (path[:2] == ("retention", "rules") and "when" in path):
            continue  # a secret is never looked into; `when` values are row data
        reason = _placeholder(path, value, emulator)
        if reason is None:
            continue
        flagged.add(path)
        if path == ("sink", "endpoint") or path[-1] == "rule_id":
            destinations[path] = value
        else:
            example = next((e for key, e in EXAMPLES.items() if _matches(path, key)), None)
            fix = f"expected the real value, e.g. {example}" if example else "expected the real value"
            errors.append(f"{'.'.join(path)}: {reason}; {fix}{document.where(path)}")
    if destinations:
        outputs = any(_OUTPUT.fullmatch(value) for value in destinations.values())
        errors.append(_to_provision(list(destinations), document, outputs))
    errors.extend(_names(config, document, flagged))
    warnings = [*_ports_added(document), *_endpoint(config, document, flagged), *_inline_secrets(document)]
    warnings.extend(_rule_ids(config, document, flagged))
    return errors, warnings


def _placeholder(path: KeyPath, value: str, emulator: bool) -> str | None:
    """Why `value` is a placeholder, if it is one."""
    if _OUTPUT.fullmatch(value):
        return f"is provision's placeholder {value}"
    if value == ALL_ZERO_RULE_ID and not emulator:
        return "is the all-zero DCR id, a placeholder"
    angle = _ANGLE.search(value)
    if angle:
        return f"holds the placeholder {angle.group(0)}"
    if any(_matches(path, key) for key in HOST_KEYS):
        host = urlsplit(value).netloc if "://" in value else value
        if host.startswith(DOCS_NAMESPACE):
            return f"names the docs' placeholder namespace {DOCS_NAMESPACE.rstrip('.')}"
        if host.rsplit(":", 1)[0].lower().rstrip(".").endswith(INVALID_DOMAIN):
            return f"names a host in the {INVALID_DOMAIN} domain, a placeholder that never resolves"
    return None


def _to_provision(paths: Sequence[KeyPath], document: Document, provisioned: bool) -> str:
    """The one line for an endpoint and DCR ids that `ingestor provision` is to fill in: in its input, or in what it
    wrote before `--outputs` (`provisioned`)."""
    parts = ["sink.endpoint"] if ("sink", "endpoint") in paths else []
    rule_ids = [p for p in paths if p[-1] == "rule_id"]
    if rule_ids:
        parts.append(".".join(rule_ids[0]) if len(rule_ids) == 1 else f"{len(rule_ids)} DCR ids")
    verb = "is a placeholder" if len(paths) == 1 else "are placeholders"
    what = f"{' and '.join(parts)} {verb}{_from(paths, document)}"
    file = document.file or Path("FILE")
    if provisioned:
        out = file.parent
        return (
            f"{what}: this is what provision writes before the deployment; deploy {out / 'azuredeploy.json'}, then "
            f"run ingestor provision --config YOUR_CONFIG --out {out} --outputs {out / 'outputs.json'} and check "
            f"{out / 'ingestor.yaml'}"
        )
    return (
        f"{what}: ingestor provision fills in the real values; run ingestor provision --config {file} --out "
        f"deploy, deploy deploy/azuredeploy.json, run ingestor provision --config {file} --out deploy --outputs "
        "deploy/outputs.json, then check deploy/ingestor.yaml"
    )


def _from(paths: Sequence[KeyPath], document: Document) -> str:
    origins = [o for o in (document.origin(p) for p in paths) if o is not None]
    lines = sorted({o.line for o in origins if o.line is not None})
    variables = sorted({o.variable for o in origins if o.variable})
    places = []
    if lines:
        places.append(f"{document.file} line{'s' if len(lines) > 1 else ''} {', '.join(map(str, lines))}")
    places.extend(variables)
    return f" (from {' and '.join(places)})" if places else ""


def _names(config: Config, document: Document, flagged: set[KeyPath]) -> Iterator[str]:
    """Event hub (topic) and consumer group names Event Hubs would refuse."""
    hubs: list[tuple[KeyPath, str]] = []
    source = config.source
    if isinstance(source, KafkaSourceConfig) and source.is_event_hubs:
        hubs = [(("source", "topics", str(i)), topic) for i, topic in enumerate(source.topics)]
        if config.dead_letter.type == "kafka" and config.dead_letter.topic:
            hubs.append((("dead_letter", "topic"), config.dead_letter.topic))
    elif isinstance(source, EventHubsSourceConfig):
        hubs = [(("source", "eventhub_name"), source.eventhub_name)]
        group = source.consumer_group
        if group != DEFAULT_CONSUMER_GROUP and not CONSUMER_GROUP_NAME.fullmatch(group):
            where = document.where(("source", "consumer_group"))
            yield (
                f"source.consumer_group: {group!r} is not a consumer group name Event Hubs accepts; expected "
                f"{DEFAULT_CONSUMER_GROUP} or 1-50 {_NAME_RULE}, e.g. defender-ingestor{where}"
            )
    for path, name in hubs:
        if path not in flagged and not EVENT_HUB_NAME.fullmatch(name):
            yield (
                f"{'.'.join(path)}: {name!r} is not an event hub name Event Hubs accepts; expected 1-256 "
                f"{_NAME_RULE}, e.g. defender{document.where(path)}"
            )


def _rule_ids(config: Config, document: Document, flagged: set[KeyPath]) -> Iterator[str]:
    """The per-table DCR ids (`retention.destinations.<T>.<class>.rule_id`, `sink.tables.<T>.rule_id`) that do not
    agree with the DCRs `ingestor provision` plans (`plan_rules`): tables one planned DCR holds must share one id,
    and tables of different planned DCRs must not. Each DCR id goes with the planned DCR most of its tables are on;
    a table whose id goes with another DCR, or whose DCR's other tables use another id, is named with both. A
    warning, as DCRs made by hand may group tables otherwise; placeholders are errors of their own, and the
    emulator's default DCR (the all-zero id) holds every stream."""
    rules = plan_rules(config)
    rule_of = {(d.table, d.retention_tag): rule for rule in rules for d in rule.destinations}
    default = config.retention.default_class
    entries: list[tuple[KeyPath, tuple[str, str], str]] = []
    for table, classes in config.retention.destinations.items():
        for name, settings in classes.items():
            if settings.rule_id is not None:
                entries.append((("retention", "destinations", table, name, "rule_id"), (table, name), settings.rule_id))
    for table, override in config.sink.tables.items():
        if override.rule_id is None:
            continue
        path: KeyPath = ("sink", "tables", table, "rule_id")
        winner = config.retention.destinations.get(table, {}).get(default)
        if winner is not None and winner.rule_id is not None:
            if winner.rule_id != override.rule_id and path not in flagged:
                yield (
                    f"{'.'.join(path)}: {override.rule_id} is not used, retention.destinations.{table}.{default}."
                    f"rule_id {winner.rule_id} is; remove it, or run {_OUTPUTS_COMMAND}, which writes both the same"
                    f"{document.where(path)}"
                )
            continue
        entries.append((path, (table, default), override.rule_id))
    # The all-zero id is a placeholder (an error of its own) or the emulator's default DCR, which holds every stream.
    entries = [e for e in entries if e[1] in rule_of and e[0] not in flagged and e[2] != ALL_ZERO_RULE_ID]
    # Pair DCR ids with planned DCRs, the pairs most tables share first: one id per DCR, one DCR per id.
    counts: dict[tuple[int, str], int] = {}
    for _, destination, rule_id in entries:
        key = (rules.index(rule_of[destination]), rule_id)
        counts[key] = counts.get(key, 0) + 1
    id_of: dict[int, str] = {}
    rule_with: dict[str, int] = {}
    for (index, rule_id), _ in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        if index not in id_of and rule_id not in rule_with:
            id_of[index], rule_with[rule_id] = rule_id, index
    for path, (table, name), rule_id in entries:
        index = rules.index(rule_of[(table, name)])
        if id_of.get(index) == rule_id:
            continue
        rule = rules[index]
        if rule_id in rule_with:
            other = rules[rule_with[rule_id]]
            what = f"{rule_id} is the DCR of {other.key} ({_tables(other)}), but provision puts {table} on {rule.key}"
            what += f", whose DCR is {id_of[index]}" if index in id_of else ""
        else:
            what = f"{rule_id}, but provision puts {table} on {rule.key}, whose other tables use {id_of[index]}"
        yield f"{'.'.join(path)}: {what}{_why(config, rule, rules)}; run {_OUTPUTS_COMMAND}{document.where(path)}"


_OUTPUTS_COMMAND = (
    "ingestor provision --config YOUR_CONFIG --out DIR --outputs DIR/outputs.json with the current template's "
    "outputs, which sets every table's DCR"
)


def _tables(rule: Rule) -> str:
    return ", ".join(d.table for d in rule.destinations)


def _why(config: Config, rule: Rule, rules: list[Rule]) -> str:
    """Why the plan has `rule` apart from the class's other DCRs, if it has any."""
    name = rule.destinations[0].retention_tag
    siblings = [r for r in rules if r.destinations[0].retention_tag == name]
    if len(siblings) == 1:
        return ""
    if config.retention.classes[name].plan == "Auxiliary":
        return f" (class {name} is Auxiliary: a DCR per table)"
    count = sum(len(r.destinations) for r in siblings)
    limit = min(MAX_FLOWS_PER_DCR, MAX_STREAMS_PER_DCR)
    return f" (class {name} has {count} tables and a DCR holds at most {limit}: {len(siblings)} DCRs)"


def rule_layout_comments(config: Config) -> str:
    """YAML comment lines saying, for each class provision spreads over several DCRs, which tables each holds and
    why (`template.explain_rules`); empty when every class fits one DCR."""
    lines = explain_rules(config)
    if not lines:
        return ""
    head = "# ingestor provision spreads these classes over several data collection rules:\n"
    return head + "".join(f"#   {line}\n" for line in lines)


def _ports_added(document: Document) -> Iterator[str]:
    source = document.doc.get("source")
    if not isinstance(source, dict) or source.get("type", "kafka") != "kafka":
        return
    servers = comma_list(source.get("bootstrap_servers"))
    for index, server in enumerate(servers if isinstance(servers, list) else []):
        if isinstance(server, str) and with_kafka_port(server) != server:
            path = ("source", "bootstrap_servers", str(index))
            yield (
                f"source.bootstrap_servers.{index}: {server} has no port; using {with_kafka_port(server)}, the "
                f"Event Hubs Kafka endpoint; write the port to silence this{document.where(path)}"
            )


def _endpoint(config: Config, document: Document, flagged: set[KeyPath]) -> Iterator[str]:
    path = ("sink", "endpoint")
    host = urlsplit(config.sink.endpoint).hostname or ""
    if path in flagged or config.sink.credential.type == "static_token" or _loopback(host):
        return
    if not INGESTION_HOST.fullmatch(host):
        yield (
            f"sink.endpoint: {host} is not a Logs Ingestion host; expected a DCE's or a DCR's logs ingestion "
            f"endpoint, e.g. https://my-dce-a1b2.westeurope-1.ingest.monitor.azure.com (the DCE's or DCR's "
            f"Overview in the Azure portal){document.where(path)}"
        )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _inline_secrets(document: Document) -> Iterator[str]:
    for path in secrets_in(document.doc):
        origin = document.origin(path)
        if origin is None or origin.variable:
            continue
        chart = CHART_SECRET_KEYS.get(path)
        instead = f"; in the chart, existingSecret.name and existingSecret.{chart}" if chart else ""
        yield (
            f"{'.'.join(path)}: a secret written in the file{document.where(path)}; set the environment variable "
            f"{env_name(path)} instead{instead}"
        )


def effective_yaml(checked: Checked) -> str:
    """The effective configuration as YAML (`Config.effective`), each value set by an environment variable with a
    `# from INGESTOR_...` comment, `schemas.tables` with how many tables it selects, then the DCR layout of classes
    provision spreads over several DCRs as comments (`rule_layout_comments`); read back, it is the same
    configuration."""
    text = yaml.safe_dump(checked.config.effective(), sort_keys=False, width=1_000_000)
    notes = {path: f"from {o.variable}" for path, o in checked.document.origins.items() if o.variable}
    selection = ("schemas", "tables")
    notes[selection] = "; ".join(filter(None, (notes.get(selection), selection_note(checked.config))))
    lines = text.splitlines()
    above: dict[int, str] = {}
    for path, start, value in node_entries(yaml.compose(text)):
        note = notes.get(path)
        if note is None:
            continue
        line = start.start_mark.line
        if value.start_mark.line != line or value.end_mark.line == line:  # nothing of the value follows on the line
            lines[line] += f"  # {note}"
        else:  # a scalar continued on the next lines: the comment goes above it
            above[line] = " " * start.start_mark.column + f"# {note}"
    text = "".join((f"{above[i]}\n" if i in above else "") + f"{line}\n" for i, line in enumerate(lines))
    return text + rule_layout_comments(checked.config)


def selection_note(config: Config) -> str:
    """How many tables `schemas.tables` selects, of those with a schema file."""
    known, chosen = len(load_schemas()), len(config.tables)
    if config.schemas.tables == ALL_TABLES:
        return f"all {known} tables with a schema file"
    return f"{chosen} of the {known} tables with a schema file; records of the others are skipped and counted"


def _strings(node: Any, at: KeyPath = ()) -> Iterator[tuple[KeyPath, str]]:
    """Every string value under plain data, with its key path."""
    if isinstance(node, str):
        yield at, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, (*at, str(key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _strings(value, (*at, str(index)))


def _matches(path: KeyPath, pattern: str) -> bool:
    return fnmatchcase(".".join(path), pattern)
