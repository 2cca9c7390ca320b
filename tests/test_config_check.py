"""`check-config` refuses what cannot work and shows what will run: placeholders (one line for what provision fills
in), names Event Hubs refuses, the Event Hubs port, warnings (endpoint host, inline secrets), errors that say what
they expect and where the value came from, and the effective configuration (user names, TLS as used, the variables).
`run` and `replay` refuse the same. Through the CLI where a user meets it, and unit tests beside."""

from __future__ import annotations

import json
import os
import re
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from realparts import ingestor_command

from ingestor.config import (
    PATTERN_MEANINGS,
    SECRET_PATHS,
    Config,
    KafkaSourceConfig,
    env_name,
    parse_config,
    read_document,
)
from ingestor.config_check import CHART_SECRET_KEYS, EVENT_HUB_NAME, load_runnable, problems, rule_layout_comments
from ingestor.errors import ConfigError
from ingestor.provision.resolve import resolve_config
from ingestor.provision.template import plan_rules
from ingestor.sources.kafka import consumer_settings
from ingestor.tables import load_schemas

ROOT = Path(__file__).resolve().parent.parent
RULE = "dcr-5f1c0e2a9b7d4c3e8a6f2b1d0c9e8f7a"
ENDPOINT = "https://defender-dce-a1b2.westeurope-1.ingest.monitor.azure.com"
ZERO = "dcr-" + "0" * 32
# A configuration that runs; lines are counted in the tests (source.topics is line 4, sink.endpoint line 8).
GOOD = f"""\
source:
  type: kafka
  bootstrap_servers: ["contoso.servicebus.windows.net:9093"]
  topics: [defender]
  group_id: defender-ingestor
  auth: {{type: entra}}
sink:
  endpoint: {ENDPOINT}
  rule_id: {RULE}
dead_letter: {{path: /var/lib/ingestor/dead-letter}}
"""


def env(**extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("INGESTOR_")}, **extra}


def write(tmp: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp / name
    path.write_text(textwrap.dedent(text))
    return path


def check_config(path: Path, cwd: Path | None = None, **variables: str) -> subprocess.CompletedProcess[str]:
    """`ingestor check-config` run in `cwd` (default: the file's directory) on `path` relative to it."""
    cwd = cwd or path.parent
    command = ingestor_command("check-config", "--config", str(path.relative_to(cwd)))
    return subprocess.run(command, capture_output=True, text=True, env=env(**variables), cwd=cwd)


def error_lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    """The problems an exit 2 reports: one on the message's line, several listed under it."""
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.splitlines()
    (message,) = [line for line in lines if line.startswith("ingestor: invalid configuration:")]
    listed = [line.removeprefix("  - ") for line in lines if line.startswith("  - ")]
    return listed or [message.removeprefix("ingestor: invalid configuration: ")]


def warning_lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    assert done.returncode == 0, done.stderr
    return [line.removeprefix("ingestor: warning: ") for line in done.stderr.splitlines()]


def replaced(old: str, new: str, text: str = GOOD) -> str:
    assert old in text
    return text.replace(old, new)


def runnable_problems(text: str, tmp: Path, **variables: str) -> tuple[list[str], list[str]]:
    document = read_document(write(tmp, text), env(**variables))
    return problems(Config.model_validate(document.doc), document)


# -- placeholders ---------------------------------------------------------------------------------------------


@pytest.mark.process
def test_a_configuration_that_can_run_passes_without_a_word(tmp_path: Path) -> None:
    done = check_config(write(tmp_path, GOOD))
    assert warning_lines(done) == []
    assert yaml.safe_load(done.stdout)["sink"]["rule_id"] == RULE


@pytest.mark.process
@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "[defender]",
            "['<event hub>']",
            "source.topics.0: holds the placeholder <event hub>; expected the real value, e.g. defender "
            "(from c.yaml line 4)",
        ),
        (
            '"contoso.servicebus.windows.net:9093"',
            '"NS.servicebus.windows.net:9093"',
            "source.bootstrap_servers.0: names the docs' placeholder namespace NS; expected the real value, e.g. "
            "contoso-defender.servicebus.windows.net:9093 (from c.yaml line 3)",
        ),
        (
            '"contoso.servicebus.windows.net:9093"',
            '"<namespace>.servicebus.windows.net:9093"',
            "source.bootstrap_servers.0: holds the placeholder <namespace>",
        ),
        (
            '"contoso.servicebus.windows.net:9093"',
            '"kafka.example.invalid:9093"',
            "source.bootstrap_servers.0: names a host in the .invalid domain",
        ),
    ],
)
def test_placeholders_are_refused_by_key_and_line(old: str, new: str, expected: str, tmp_path: Path) -> None:
    (line,) = error_lines(check_config(write(tmp_path, replaced(old, new))))
    assert line.startswith(expected), line


@pytest.mark.process
def test_the_amqp_source_placeholders_are_refused(tmp_path: Path) -> None:
    text = f"""\
    source:
      type: eventhubs
      fully_qualified_namespace: NS.servicebus.windows.net
      eventhub_name: defender
      checkpoint_store: {{account_url: "https://<account>.blob.core.windows.net", container: defender-ingestor}}
    sink: {{endpoint: {ENDPOINT}, rule_id: {RULE}}}
    dead_letter: {{path: /tmp/dl}}
    """
    lines = error_lines(check_config(write(tmp_path, text)))
    assert [line.split(":")[0] for line in lines] == [
        "source.fully_qualified_namespace",
        "source.checkpoint_store.account_url",
    ]
    assert "(from c.yaml line 3)" in lines[0] and "holds the placeholder <account>" in lines[1]


@pytest.mark.process
def test_destination_placeholders_make_one_line_naming_the_provision_command(tmp_path: Path) -> None:
    text = replaced(f"endpoint: {ENDPOINT}", "endpoint: https://placeholder.invalid")
    text = replaced(f"rule_id: {RULE}", f"rule_id: {ZERO}\n  tables:\n    DeviceInfo: {{rule_id: {ZERO}}}", text)
    text += f"retention:\n  classes:\n    default: {{}}\n    archive: {{plan: Auxiliary, rule_id: {ZERO}}}\n"
    path = write(tmp_path, text)
    (line,) = error_lines(check_config(path))
    assert line == (
        "sink.endpoint and 3 DCR ids are placeholders (from c.yaml lines 8, 9, 11, 16): ingestor provision fills "
        "in the real values; run ingestor provision --config c.yaml --out deploy, deploy deploy/azuredeploy.json, "
        "run ingestor provision --config c.yaml --out deploy --outputs deploy/outputs.json, then check "
        "deploy/ingestor.yaml"
    )
    # provision takes that same file: its placeholders are its input
    provisioned = subprocess.run(
        ingestor_command("provision", "--config", str(path), "--out", str(tmp_path / "deploy")),
        capture_output=True,
        text=True,
        env=env(),
    )
    assert provisioned.returncode == 0, provisioned.stderr


@pytest.mark.process
def test_one_dcr_id_placeholder_is_named_by_its_key(tmp_path: Path) -> None:
    (line,) = error_lines(check_config(write(tmp_path, replaced(RULE, ZERO))))
    assert line.startswith("sink.rule_id is a placeholder (from ") and " line 9): ingestor provision" in line


@pytest.mark.process
def test_provisions_output_before_outputs_gets_one_line_then_passes_after(tmp_path: Path) -> None:
    """The documented path: provision -> check-config (one line: run --outputs) -> provision --outputs -> passes."""
    text = replaced(f"endpoint: {ENDPOINT}", "endpoint: https://placeholder.invalid", replaced(RULE, ZERO))
    text += (
        "retention:\n  default_class: hot\n  classes:\n    hot: {retention_days: 90}\n    archive: {plan: Auxiliary}\n"
        "  rules:\n    - {tables: [DeviceNetworkEvents, DeviceFileEvents], class: archive}\n"
    )
    source, deploy = write(tmp_path, text, "ingestor.yaml"), tmp_path / "deploy"
    command = ingestor_command("provision", "--config", str(source), "--out", str(deploy))
    assert subprocess.run(command, capture_output=True, env=env()).returncode == 0
    destinations = sum(len(rule.destinations) for rule in plan_rules(parse_config(yaml.safe_load(text))))
    (line,) = error_lines(check_config(deploy / "ingestor.yaml", cwd=tmp_path))
    assert line.startswith(f"sink.endpoint and {destinations + 1} DCR ids are placeholders (from deploy/ingestor")
    assert "--out deploy --outputs deploy/outputs.json and check deploy/ingestor.yaml" in line
    rule_ids = {rule.key: f"dcr-{i + 1:032x}" for i, rule in enumerate(plan_rules(parse_config(yaml.safe_load(text))))}
    outputs = deploy / "outputs.json"
    outputs.write_text(
        json.dumps({"logsIngestionEndpoint": {"value": ENDPOINT}, "dataCollectionRuleIds": {"value": rule_ids}})
    )
    assert subprocess.run([*command, "--outputs", str(outputs)], capture_output=True, env=env()).returncode == 0
    assert warning_lines(check_config(deploy / "ingestor.yaml")) == []


def test_with_the_emulator_the_all_zero_id_is_its_default_dcr(tmp_path: Path) -> None:
    emulator = replaced(RULE, f"{ZERO}\n  credential: {{type: static_token}}")
    errors, warnings = runnable_problems(emulator, tmp_path, INGESTOR_SINK__CREDENTIAL__TOKEN="t")
    assert errors == [] and warnings == []
    invalid = replaced(ENDPOINT, "https://placeholder.invalid", emulator)
    errors, _ = runnable_problems(invalid, tmp_path, INGESTOR_SINK__CREDENTIAL__TOKEN="t")
    assert len(errors) == 1 and errors[0].startswith("sink.endpoint is a placeholder")


def test_row_data_and_secrets_are_not_taken_for_placeholders(tmp_path: Path) -> None:
    text = GOOD + (
        "retention:\n  classes: {default: {}, keep: {}}\n"
        "  rules:\n    - tables: [DeviceNetworkEvents]\n      when: {column: RemoteUrl, regex: '(?P<host>x)'}\n"
        "      class: keep\n"
    )
    text = replaced("auth: {type: entra}", "auth: {type: connection_string}", text)
    assert runnable_problems(text, tmp_path, INGESTOR_SOURCE__AUTH__CONNECTION_STRING="<not a placeholder>") == (
        [],
        [],
    )


# -- Event Hubs: port and names -------------------------------------------------------------------------------


@pytest.mark.process
def test_an_event_hubs_host_without_a_port_gets_9093_and_says_so(tmp_path: Path) -> None:
    done = check_config(write(tmp_path, replaced(":9093", "")))
    (warning,) = warning_lines(done)
    assert warning == (
        "source.bootstrap_servers.0: contoso.servicebus.windows.net has no port; using "
        "contoso.servicebus.windows.net:9093, the Event Hubs Kafka endpoint; write the port to silence this "
        "(from c.yaml line 3)"
    )
    assert yaml.safe_load(done.stdout)["source"]["bootstrap_servers"] == ["contoso.servicebus.windows.net:9093"]


def test_other_servers_keep_what_is_written(tmp_path: Path) -> None:
    config = parse_config(
        {
            **yaml.safe_load(GOOD),
            "source": {"bootstrap_servers": "kafka-1,kafka-2:9094", "topics": "t", "group_id": "g"},
        }
    )
    assert config.source.bootstrap_servers == ["kafka-1", "kafka-2:9094"]


@pytest.mark.process
@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("[defender]", "['defender hub']", "source.topics.0"),
        ("[defender]", "[-defender]", "source.topics.0"),
        ("[defender]", f"[{'d' * 257}]", "source.topics.0"),
        ("{path: /var/lib/ingestor/dead-letter}", "{type: kafka, topic: dead_}", "dead_letter.topic"),
    ],
)  # fmt: skip
def test_event_hub_names_event_hubs_refuses_are_refused(old: str, new: str, key: str, tmp_path: Path) -> None:
    (line,) = error_lines(check_config(write(tmp_path, replaced(old, new))))
    assert line.startswith(f"{key}: ") and "is not an event hub name Event Hubs accepts; expected 1-256 " in line
    assert "e.g. defender (from " in line


def test_event_hub_name_limits() -> None:
    assert EVENT_HUB_NAME.fullmatch("a") and EVENT_HUB_NAME.fullmatch("a" * 256)
    assert EVENT_HUB_NAME.fullmatch("defender.advanced_hunting-1")
    assert not EVENT_HUB_NAME.fullmatch("a" * 257) and not EVENT_HUB_NAME.fullmatch("a.")


def test_topic_names_of_a_plain_kafka_cluster_are_the_clusters_business(tmp_path: Path) -> None:
    text = replaced('"contoso.servicebus.windows.net:9093"', '"127.0.0.1:9092"', replaced("[defender]", "[_t_]"))
    assert runnable_problems(replaced("auth: {type: entra}", "auth: {type: none}", text), tmp_path) == ([], [])


AMQP = f"""\
source:
  type: eventhubs
  fully_qualified_namespace: contoso.servicebus.windows.net
  eventhub_name: defender
  consumer_group: GROUP
  checkpoint_store: {{account_url: https://contosocheckpoints.blob.core.windows.net, container: defender-ingestor}}
sink: {{endpoint: {ENDPOINT}, rule_id: {RULE}}}
dead_letter: {{path: /tmp/dl}}
"""


@pytest.mark.parametrize("group", ["$Default", "defender-ingestor", "a", "g" * 50])
def test_consumer_groups_event_hubs_accepts_pass(group: str, tmp_path: Path) -> None:
    assert runnable_problems(AMQP.replace("GROUP", f"'{group}'"), tmp_path) == ([], [])


@pytest.mark.process
@pytest.mark.parametrize("group", ["$default-2", "g" * 51, "ingestor-", "my group"])
def test_consumer_groups_event_hubs_refuses_are_refused(group: str, tmp_path: Path) -> None:
    (line,) = error_lines(check_config(write(tmp_path, AMQP.replace("GROUP", f"'{group}'"))))
    assert line.startswith(f"source.consumer_group: {group!r} is not a consumer group name Event Hubs accepts")
    assert "expected $Default or 1-50 letters" in line and line.endswith("line 5)")


@pytest.mark.process
def test_an_amqp_event_hub_name_is_checked(tmp_path: Path) -> None:
    (line,) = error_lines(check_config(write(tmp_path, AMQP.replace("GROUP", "g").replace("defender\n", "hub!\n"))))
    assert line.startswith("source.eventhub_name: 'hub!' is not an event hub name") and line.endswith("line 4)")


# -- warnings -------------------------------------------------------------------------------------------------


@pytest.mark.process
def test_an_endpoint_that_is_no_ingestion_host_is_a_warning(tmp_path: Path) -> None:
    (warning,) = warning_lines(check_config(write(tmp_path, replaced(ENDPOINT, "https://monitor.example.com"))))
    assert warning.startswith("sink.endpoint: monitor.example.com is not a Logs Ingestion host; expected a DCE's")
    assert warning.endswith("line 8)")


@pytest.mark.parametrize(
    "endpoint",
    [
        ENDPOINT,
        "https://dcr-a1b2.usgovvirginia-1.ingest.monitor.azure.us",
        "https://127.0.0.1:8443",
        "https://localhost",
    ],
)
def test_ingestion_and_loopback_hosts_raise_no_warning(endpoint: str, tmp_path: Path) -> None:
    assert runnable_problems(replaced(ENDPOINT, endpoint), tmp_path) == ([], [])


@pytest.mark.process
def test_a_secret_written_in_the_file_is_a_warning_naming_the_variable_and_the_chart_key(tmp_path: Path) -> None:
    text = replaced(
        "auth: {type: entra}", "auth: {type: connection_string, connection_string: 'Endpoint=sb://x/;K=s3cr3t'}"
    )
    done = check_config(write(tmp_path, text))
    (warning,) = warning_lines(done)
    assert warning == (
        "source.auth.connection_string: a secret written in the file (from c.yaml line 6); set the "
        "environment variable INGESTOR_SOURCE__AUTH__CONNECTION_STRING instead; in the chart, existingSecret.name "
        "and existingSecret.connectionStringKey"
    )
    assert "s3cr3t" not in done.stdout + done.stderr
    from_env = check_config(write(tmp_path, replaced("auth: {type: entra}", "auth: {type: connection_string}")),
                            INGESTOR_SOURCE__AUTH__CONNECTION_STRING="Endpoint=sb://x/;K=s3cr3t")  # fmt: skip
    assert warning_lines(from_env) == []


def test_the_chart_secret_keys_are_the_charts() -> None:
    helpers = (ROOT / "helm" / "ingestor" / "templates" / "_helpers.tpl").read_text()
    block = yaml.safe_load(helpers.split('{{- define "ingestor.secretEnv" -}}')[1].split("{{- end }}")[0])
    # each key names its variable, alone or as `{path: ..., env: ...}`
    chart = {key: entry["env"] if isinstance(entry, dict) else entry for key, entry in block.items()}
    assert set(CHART_SECRET_KEYS) == set(SECRET_PATHS)
    assert {key: env_name(path) for path, key in CHART_SECRET_KEYS.items()} == chart


# -- errors: what is expected, where it came from -------------------------------------------------------------


@pytest.mark.process
def test_an_error_names_the_file_line(tmp_path: Path) -> None:
    (line,) = error_lines(check_config(write(tmp_path, GOOD + "metrics: {port: http}\n")))
    assert line == "metrics.port: got 'http'; expected a whole number, e.g. 9464 (from c.yaml line 11)"


@pytest.mark.process
def test_an_error_names_the_variable(tmp_path: Path) -> None:
    (line,) = error_lines(check_config(write(tmp_path, GOOD), INGESTOR_SOURCE__COMMIT_INTERVAL_SECS="0.1"))
    assert line == (
        "source.commit_interval_secs: got 0.1; expected a value greater than or equal to 0.25, e.g. 1.0 "
        "(from INGESTOR_SOURCE__COMMIT_INTERVAL_SECS)"
    )


@pytest.mark.process
def test_a_variable_replaces_the_file_line_as_origin(tmp_path: Path) -> None:
    (line,) = error_lines(check_config(write(tmp_path, GOOD), INGESTOR_SINK__RULE_ID="dcr-mine"))
    assert line.startswith("sink.rule_id: must be a DCR immutable id") and line.endswith(
        "(from INGESTOR_SINK__RULE_ID)"
    )


@pytest.mark.process
@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("group_id: defender-ingestor", "group_id: g\n  check_crcs: maybe",
         "source.check_crcs: got 'maybe'; expected true or false, e.g. true (from"),
        ("auth: {type: entra}", "auth: {type: password}",
         "source.auth.type: got 'password'; expected one of none | connection_string | entra, e.g. none (from"),
        ("type: kafka", "type: kafkaa", "source: got a mapping; expected one of kafka | eventhubs, e.g. kafka (from"),
        ("[defender]", "{defender: 1}", "source.topics: got a mapping; expected a list, e.g. [a, b] (from"),
        ("group_id: defender-ingestor", "group_id: g\n  commit_interval_secs: soon",
         "source.commit_interval_secs: got 'soon'; expected a number, e.g. 1.0 (from"),
        ("dead_letter: {path: /var/lib/ingestor/dead-letter}",
         "dead_letter: {path: /tmp/dl}\nretention: {classes: {default: {rule_id: my-dcr}}}",
         "retention.classes.default.rule_id: got 'my-dcr'; expected a DCR immutable id, 'dcr-' and 32 hex digits, "
         "e.g. dcr-0123456789abcdef0123456789abcdef (from"),
        ("dead_letter: {path: /var/lib/ingestor/dead-letter}",
         "dead_letter: {path: /tmp/dl}\nretention: {destinations: {DeviceInfo: {default: {stream: Info}}}}",
         "retention.destinations.DeviceInfo.default.stream: got 'Info'; expected a DCR stream name"),
    ],
)  # fmt: skip
def test_a_type_error_says_what_is_expected_with_an_example(old: str, new: str, expected: str, tmp_path: Path) -> None:
    (line,) = error_lines(check_config(write(tmp_path, replaced(old, new))))
    assert line.startswith(expected), line


@pytest.mark.process
def test_a_secret_of_the_wrong_type_is_never_shown(tmp_path: Path) -> None:
    text = replaced("auth: {type: entra}", "auth: {type: connection_string, connection_string: [s3cr3t]}")
    (line,) = error_lines(check_config(write(tmp_path, text)))
    assert (
        line.startswith("source.auth.connection_string: the value is not valid; expected text") and "s3cr3t" not in line
    )


def test_every_pattern_of_the_models_has_a_meaning() -> None:
    def patterns(node: Any) -> set[str]:
        if isinstance(node, dict):
            own = {node["pattern"]} if isinstance(node.get("pattern"), str) else set()
            return own | {p for v in node.values() for p in patterns(v)}
        return {p for v in node for p in patterns(v)} if isinstance(node, list) else set()

    found = patterns(Config.model_json_schema())
    assert found and found <= set(PATTERN_MEANINGS), found - set(PATTERN_MEANINGS)


@pytest.mark.process
def test_a_table_not_known_or_not_ingested_is_refused_by_key_and_file_line(tmp_path: Path) -> None:
    text = GOOD + (
        "schemas:\n"  # line 11
        "  tables:\n"
        "    - DeviceProcessEvents\n"
        "    - DeviceNetworkEvent\n"  # line 14
    )
    (line,) = error_lines(check_config(write(tmp_path, text)))
    assert line == (
        "schemas.tables.1: 'DeviceNetworkEvent' is no table with a schema; did you mean DeviceNetworkEvents? "
        "(from c.yaml line 14)"
    )
    text = replaced("DeviceNetworkEvent\n", "DeviceNetworkEvents\n", text) + (
        "retention:\n"  # line 15
        "  classes: {default: {}, cold: {}}\n"
        "  rules:\n"
        "    - tables: [DeviceNetworkEvents, DeviceFileEvents]\n"  # line 18
        "      class: cold\n"
    )
    (line,) = error_lines(check_config(write(tmp_path, text)))
    assert line == (
        "retention.rules.0.tables.1: DeviceFileEvents is not ingested (not in schemas.tables): add it to "
        "schemas.tables or remove it from the rule's tables (from c.yaml line 18)"
    )
    (line,) = error_lines(check_config(write(tmp_path, GOOD), INGESTOR_SCHEMAS__TABLES="DeviceInfo,,DeviceInf"))
    assert line.startswith("schemas.tables.1: 'DeviceInf' is no table with a schema; did you mean DeviceInfo")
    assert line.endswith("(from INGESTOR_SCHEMAS__TABLES)")


# -- the effective configuration ------------------------------------------------------------------------------


@pytest.mark.process
def test_the_effective_configuration_shows_which_tables_are_ingested(tmp_path: Path) -> None:
    known = len(load_schemas())
    done = check_config(write(tmp_path, GOOD))
    assert f"  tables: all  # all {known} tables with a schema file" in done.stdout.splitlines()
    assert yaml.safe_load(done.stdout)["schemas"]["tables"] == "all"
    text = GOOD + "schemas: {tables: [DeviceProcessEvents, DeviceNetworkEvents]}\n"
    done = check_config(write(tmp_path, text))
    lines = done.stdout.splitlines()
    note = f"2 of the {known} tables with a schema file; records of the others are skipped and counted"
    assert f"  tables:  # {note}" in lines
    assert lines[lines.index(f"  tables:  # {note}") + 1 :][:2] == [
        "  - DeviceProcessEvents",
        "  - DeviceNetworkEvents",
    ]
    done = check_config(write(tmp_path, GOOD), INGESTOR_SCHEMAS__TABLES="DeviceInfo")
    assert f"  tables:  # from INGESTOR_SCHEMAS__TABLES; 1 of the {known} tables" in done.stdout
    # Read back, it is the same configuration.
    again = check_config(write(tmp_path, done.stdout, "again.yaml"))
    assert yaml.safe_load(again.stdout) == yaml.safe_load(done.stdout)
    assert yaml.safe_load(done.stdout)["schemas"]["tables"] == ["DeviceInfo"]


@pytest.mark.process
def test_the_effective_configuration_uses_the_names_users_write(tmp_path: Path) -> None:
    text = GOOD + (
        "retention:\n  classes: {default: {}, keep: {}}\n"
        "  rules:\n    - {tables: [DeviceNetworkEvents], when: {column: ActionType, in: [a, b]}, class: keep}\n"
    )
    done = check_config(write(tmp_path, text))
    (rule,) = yaml.safe_load(done.stdout)["retention"]["rules"]
    assert rule["class"] == "keep" and rule["when"]["in"] == ["a", "b"]
    assert "in_" not in done.stdout and "class_" not in done.stdout


@pytest.mark.process
@pytest.mark.parametrize(
    ("old", "new", "tls"),
    [
        ("auth: {type: entra}", "auth: {type: entra}", True),  # Event Hubs forces TLS
        ('"contoso.servicebus.windows.net:9093"', '"127.0.0.1:9092"', False),
        ('["contoso.servicebus.windows.net:9093"]', '["kafka:9093"]\n  tls: true', True),
    ],
)
def test_the_printed_tls_is_the_one_the_connection_uses(old: str, new: str, tls: bool, tmp_path: Path) -> None:
    text = replaced(old, new)
    if "servicebus" not in text:
        text = replaced("auth: {type: entra}", "auth: {type: none}", text)
    done = check_config(write(tmp_path, text))
    assert yaml.safe_load(done.stdout)["source"]["tls"] is tls
    config = load_runnable(write(tmp_path, text), env()).config
    assert isinstance(config.source, KafkaSourceConfig)
    assert ("ssl_context" in consumer_settings(config.source)) is tls


@pytest.mark.process
def test_values_from_the_environment_are_commented_with_their_variable(tmp_path: Path) -> None:
    variables = {
        "INGESTOR_METRICS__PORT": "9999",
        "INGESTOR_SOURCE__TOPICS": "a,b",
        "INGESTOR_SOURCE__GROUP_ID": '"two\\nlines"',  # printed over two lines: the comment goes above it
        "INGESTOR_SINK__CREDENTIAL__TYPE": "static_token",
        "INGESTOR_SINK__CREDENTIAL__TOKEN": "s3cr3t-token",
    }
    path = write(tmp_path, GOOD)
    done = check_config(path, **variables)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "  port: 9999  # from INGESTOR_METRICS__PORT" in lines
    assert "  topics:  # from INGESTOR_SOURCE__TOPICS" in lines
    assert "    token: '**********'  # from INGESTOR_SINK__CREDENTIAL__TOKEN" in lines
    assert lines[lines.index("  # from INGESTOR_SOURCE__GROUP_ID") + 1].startswith("  group_id: ")
    assert sum("# from " in line for line in lines) == len(variables) and "s3cr3t" not in done.stdout
    printed = yaml.safe_load(done.stdout)
    assert printed["source"]["group_id"] == "two\nlines" and printed["metrics"]["port"] == 9999
    # What check-config prints is a configuration: fed back, it prints the same (without the comments).
    again = check_config(write(tmp_path, done.stdout, "again.yaml"))
    assert yaml.safe_load(again.stdout) == printed


# -- run and replay refuse the same ---------------------------------------------------------------------------


@pytest.mark.process
def test_run_and_replay_refuse_what_check_config_refuses(tmp_path: Path) -> None:
    path = write(tmp_path, replaced("[defender]", "['<event hub>']"))
    expected = error_lines(check_config(path))
    for command in (["run", "--config", "c.yaml"], ["replay", "--config", "c.yaml", "c.yaml"]):
        done = subprocess.run(ingestor_command(*command), capture_output=True, text=True, env=env(), cwd=tmp_path)
        assert error_lines(done) == expected


@pytest.mark.process
def test_replay_logs_the_warnings(tmp_path: Path) -> None:
    path = write(tmp_path, replaced(ENDPOINT, "https://monitor.example.com"))
    done = subprocess.run(
        ingestor_command("replay", "--config", str(path), str(tmp_path / "missing.jsonl.gz")),
        capture_output=True,
        text=True,
        env=env(),
    )
    assert done.returncode == 2 and "no such file" in done.stderr
    (logged,) = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert logged["level"] == "WARNING"
    assert re.match(
        r"configuration: sink\.endpoint: monitor\.example\.com is not a Logs Ingestion host", logged["message"]
    )


def test_load_runnable_raises_config_error_lines(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load_runnable(write(tmp_path, replaced(RULE, ZERO)), env())
    assert raised.value.problems[0].startswith("sink.rule_id is a placeholder")


# -- the DCRs provision spreads a class over ------------------------------------------------------------------

SPLIT = GOOD + (
    "retention:\n  default_class: hot\n  classes:\n    hot: {retention_days: 90}\n    archive: {plan: Auxiliary}\n"
    "  rules:\n    - {tables: [DeviceNetworkEvents, DeviceFileEvents], class: archive}\n"
)


def provisioned_doc(text: str = SPLIT) -> tuple[dict[str, Any], dict[str, str]]:
    """`text` as `ingestor provision --outputs` writes it, and the DCR id it gives each planned key."""
    doc = yaml.safe_load(text)
    config = parse_config(doc)
    ids = {rule.key: f"dcr-{i + 1:032x}" for i, rule in enumerate(plan_rules(config))}
    outputs = {"logsIngestionEndpoint": {"value": ENDPOINT}, "dataCollectionRuleIds": {"value": ids}}
    return resolve_config(doc, config, outputs), ids


def doc_problems(doc: dict[str, Any], tmp: Path, **variables: str) -> tuple[list[str], list[str]]:
    return runnable_problems(yaml.safe_dump(doc, sort_keys=False), tmp, **variables)


@pytest.mark.process
def test_check_config_shows_the_dcrs_a_class_is_spread_over_as_comments(tmp_path: Path) -> None:
    done = check_config(write(tmp_path, SPLIT))
    assert warning_lines(done) == []  # nothing to fix: the configuration names no DCR per table
    comments = [line for line in done.stdout.splitlines() if line.startswith("#")]
    assert comments[:2] == [
        "# ingestor provision spreads these classes over several data collection rules:",
        "#   class hot: 20 tables in 2 DCRs: a DCR holds at most 10 data flows and 10 streams, one of each per table",
    ]
    hot = sorted(t for t in load_schemas() if t not in ("DeviceNetworkEvents", "DeviceFileEvents"))
    assert comments[2:4] == [f"#     hot_1: {', '.join(hot[:10])}", f"#     hot_2: {', '.join(hot[10:])}"]
    assert comments[4] == (
        "#   class archive (plan Auxiliary): 2 tables, a DCR each: older documentation allows a DCR that feeds an "
        "Auxiliary table no other table"
    )
    assert "#     archive_DeviceFileEvents: DeviceFileEvents" in comments
    assert yaml.safe_load(done.stdout)["retention"]["default_class"] == "hot"  # comments: the YAML is unchanged


def test_classes_that_fit_a_dcr_each_get_no_comment() -> None:
    tables = sorted(load_schemas())
    retention = {
        "default_class": "c",
        "classes": {"a": {}, "b": {}, "c": {}},
        "rules": [{"tables": tables[:8], "class": "a"}, {"tables": tables[8:15], "class": "b"}],
    }
    config = parse_config(yaml.safe_load(GOOD) | {"retention": retention})
    assert [rule.key for rule in plan_rules(config)] == ["a", "b", "c"]
    assert rule_layout_comments(config) == ""
    assert rule_layout_comments(parse_config(yaml.safe_load(GOOD))).count("\n#     default_") == 3


def test_a_provisioned_configuration_agrees_with_the_plan(tmp_path: Path) -> None:
    doc, _ = provisioned_doc()
    assert doc_problems(doc, tmp_path) == ([], [])


def test_a_table_on_another_planned_dcrs_id_is_a_warning_naming_both_and_the_fix(tmp_path: Path) -> None:
    doc, ids = provisioned_doc()
    rules = {rule.key: rule for rule in plan_rules(parse_config(doc))}
    moved = rules["hot_2"].destinations[0].table  # on hot_2 in the plan: give it hot_1's DCR, as an old layout did
    doc["retention"]["destinations"][moved]["hot"]["rule_id"] = ids["hot_1"]
    errors, warnings = doc_problems(doc, tmp_path)
    assert errors == []
    (warning,) = warnings
    hot_1 = ", ".join(d.table for d in rules["hot_1"].destinations)
    assert warning.startswith(
        f"retention.destinations.{moved}.hot.rule_id: {ids['hot_1']} is the DCR of hot_1 ({hot_1}), but provision "
        f"puts {moved} on hot_2, whose DCR is {ids['hot_2']} (class hot has 20 tables and a DCR holds at most 10: "
        "2 DCRs); run ingestor provision --config YOUR_CONFIG --out DIR --outputs DIR/outputs.json with the current "
        "template's outputs, which sets every table's DCR (from "
    )
    assert warning.endswith("c.yaml line 80)")  # the line of that rule_id in the file


def test_a_table_whose_dcr_id_the_other_tables_of_its_dcr_do_not_share_is_a_warning(tmp_path: Path) -> None:
    doc, ids = provisioned_doc()
    stray = "dcr-" + "f" * 32
    doc["retention"]["destinations"]["DeviceInfo"]["hot"]["rule_id"] = stray
    (warning,) = doc_problems(doc, tmp_path)[1]
    assert warning.startswith(
        f"retention.destinations.DeviceInfo.hot.rule_id: {stray}, but provision puts DeviceInfo on hot_1, whose "
        f"other tables use {ids['hot_1']} (class hot has 20 tables"
    )


def test_a_sink_tables_dcr_id_is_checked_and_one_shadowed_by_the_destinations_is_named(tmp_path: Path) -> None:
    doc, ids = provisioned_doc()
    # sink.tables.<T>.rule_id alone (it applies to the default class): checked like the per-destination one
    del doc["retention"]["destinations"]["UrlClickEvents"]["hot"]["rule_id"]
    doc["sink"]["tables"] = {"UrlClickEvents": {"rule_id": ids["hot_1"]}, "DeviceInfo": {"rule_id": ids["hot_2"]}}
    shadowed, misplaced = doc_problems(doc, tmp_path)[1]
    assert shadowed.startswith(
        f"sink.tables.DeviceInfo.rule_id: {ids['hot_2']} is not used, retention.destinations.DeviceInfo.hot.rule_id "
        f"{ids['hot_1']} is; remove it, or run ingestor provision"
    )
    assert misplaced.startswith(f"sink.tables.UrlClickEvents.rule_id: {ids['hot_1']} is the DCR of hot_1 (")
    assert "but provision puts UrlClickEvents on hot_2, whose DCR is " in misplaced


def test_placeholders_and_the_emulators_default_dcr_are_not_compared_with_the_plan(tmp_path: Path) -> None:
    doc = yaml.safe_load(SPLIT)
    pending = write(tmp_path, yaml.safe_dump(resolve_config(doc, parse_config(doc), None)), "pending.yaml")
    with pytest.raises(ConfigError) as refused:
        load_runnable(pending, env())
    (line,) = refused.value.problems  # provision's placeholders: one line, no warning per table
    assert "placeholders" in line and "--outputs" in line
    emulator = yaml.safe_load(replaced(RULE, f"{ZERO}\n  credential: {{type: static_token}}"))
    emulator["sink"]["tables"] = {t: {"rule_id": ZERO} for t in ("DeviceInfo", "UrlClickEvents")}
    assert doc_problems(emulator, tmp_path, INGESTOR_SINK__CREDENTIAL__TOKEN="t") == ([], [])
