"""Secrets stay secrets: the models say which keys are secret; their environment values arrive verbatim (never
parsed as YAML), and `ingestor provision` writes a `${INGESTOR_...}` placeholder instead of the secret itself."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, SecretStr
from realparts import ingestor_command

from ingestor.config import SECRET_PATHS, Config, env_name, is_secret, load_config, parse_config
from ingestor.errors import ConfigError
from ingestor.provision.template import plan_rules

RULE = "dcr-" + "ab" * 16
ENDPOINT = "https://dce.westeurope-1.ingest.monitor.azure.com"
CONNECTION_STRING = "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey="
# What a YAML parse would cut, strip, retype or unquote.
TRICKY = [
    "Kk3Vz/abc=+ #not-a-comment",
    "  padded both sides  ",
    "yes",
    "123",
    "[x]",
    "{a: b}",
    "'quoted'",
    '"double"',
    "null",
    "~",
    "a: b",
    "0x1F",
    "!!binary aGk=",
    "&anchor value",
]
SECRET_NAME = re.compile(r"secret|password|token|connection_string|passphrase|private_key", re.IGNORECASE)


def kafka_doc() -> dict[str, Any]:
    return {
        "source": {
            "type": "kafka",
            "bootstrap_servers": ["ns.servicebus.windows.net:9093"],
            "topics": ["defender"],
            "group_id": "g",
            "tls": True,
            "auth": {"type": "connection_string"},
        },
        "sink": {"endpoint": ENDPOINT, "rule_id": RULE, "credential": {"type": "static_token"}},
        "dead_letter": {"path": "/var/lib/ingestor/dead-letter"},
    }


def eventhubs_doc() -> dict[str, Any]:
    return {
        "source": {
            "type": "eventhubs",
            "eventhub_name": "defender",
            "checkpoint_store": {"container": "checkpoints"},
        },
        "sink": {"endpoint": ENDPOINT, "rule_id": RULE, "credential": {"type": "static_token"}},
        "dead_letter": {"path": "/var/lib/ingestor/dead-letter"},
    }


# Every secret key, with a configuration in which it is the one that counts.
KEYS: dict[tuple[str, ...], Any] = {
    ("source", "auth", "connection_string"): kafka_doc,
    ("source", "connection_string"): eventhubs_doc,
    ("source", "checkpoint_store", "connection_string"): eventhubs_doc,
    ("sink", "credential", "token"): kafka_doc,
}


def filled(doc: dict[str, Any], secrets: dict[tuple[str, ...], str]) -> dict[str, Any]:
    """`doc` with the other secret keys it needs set inline to harmless values, then `secrets` set inline."""
    defaults = {path: "x" for path in KEYS if _applies(doc, path)}
    for path, value in {**defaults, **secrets}.items():
        node = doc
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return doc


def _applies(doc: dict[str, Any], path: tuple[str, ...]) -> bool:
    """Whether the secret key `path` belongs in `doc` (the source's keys only in a source of their type)."""
    if path[0] != "source":
        return True
    return KEYS[path] is (kafka_doc if doc["source"]["type"] == "kafka" else eventhubs_doc)


def secret_at(config: Config, path: tuple[str, ...]) -> str:
    node: Any = config
    for part in path:
        node = getattr(node, part)
    assert isinstance(node, SecretStr)
    return node.get_secret_value()


def clean_env(**extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("INGESTOR_")}, **extra}


def _fields(model: type[BaseModel], at: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    out = []
    for name, field in model.model_fields.items():
        out.append(((*at, name), field.annotation))
        for inner in _models_in(field.annotation):
            out.extend(_fields(inner, (*at, name)))
    return out


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) for m in _models_in(arg)]


# -- which keys are secret ------------------------------------------------------------------------------------


def test_the_models_name_every_secret_key() -> None:
    assert set(SECRET_PATHS) == set(KEYS)
    # Every field whose name says secret is a SecretStr, so no secret escapes the derived list.
    named = {path for path, _ in _fields(Config) if SECRET_NAME.search(path[-1])}
    assert named and all(is_secret(path) for path in named), sorted(p for p in named if not is_secret(p))


# -- environment values ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", TRICKY)
@pytest.mark.parametrize("path", sorted(KEYS), ids=".".join)
def test_secret_from_the_environment_arrives_verbatim(path: tuple[str, ...], value: str, tmp_path: Path) -> None:
    config_path = tmp_path / "c.yaml"
    config_path.write_text(yaml.safe_dump(filled(KEYS[path](), {})))
    config = load_config(config_path, {env_name(path): value})
    assert secret_at(config, path) == value


def test_secrets_entirely_from_the_environment_arrive_verbatim() -> None:
    env = {
        "INGESTOR_SOURCE__TYPE": "eventhubs",
        "INGESTOR_SOURCE__EVENTHUB_NAME": "defender",
        "INGESTOR_SOURCE__CONNECTION_STRING": CONNECTION_STRING + "abc #def",
        "INGESTOR_SOURCE__CHECKPOINT_STORE__CONNECTION_STRING": " yes ",
        "INGESTOR_SOURCE__CHECKPOINT_STORE__CONTAINER": "checkpoints",
        "INGESTOR_SINK__ENDPOINT": ENDPOINT,
        "INGESTOR_SINK__RULE_ID": RULE,
        "INGESTOR_SINK__CREDENTIAL__TYPE": "static_token",
        "INGESTOR_SINK__CREDENTIAL__TOKEN": "{a: b}",
        "INGESTOR_DEAD_LETTER__PATH": "/tmp/dl",
    }
    config = load_config(None, env)
    assert secret_at(config, ("source", "connection_string")) == CONNECTION_STRING + "abc #def"
    assert secret_at(config, ("source", "checkpoint_store", "connection_string")) == " yes "
    assert secret_at(config, ("sink", "credential", "token")) == "{a: b}"


def test_other_keys_still_parse_yaml(tmp_path: Path) -> None:
    config_path = tmp_path / "c.yaml"
    config_path.write_text(yaml.safe_dump(filled(kafka_doc(), {})))
    env = {
        "INGESTOR_SOURCE__TOPICS": "a,b",
        "INGESTOR_SOURCE__BOOTSTRAP_SERVERS": "[ns.servicebus.windows.net:9093, k2:9093]",
        "INGESTOR_SOURCE__CHECK_CRCS": "no",
        "INGESTOR_METRICS__PORT": "9999",
        "INGESTOR_SINK__MAX_INFLIGHT_BYTES": "2097152",
        "INGESTOR_SINK__LINGER_SECS": "0.5",
    }
    config = load_config(config_path, env)
    assert config.source.topics == ["a", "b"]
    assert config.source.bootstrap_servers == ["ns.servicebus.windows.net:9093", "k2:9093"]
    assert config.source.check_crcs is False
    assert (config.metrics.port, config.sink.max_inflight_bytes, config.sink.linger_secs) == (9999, 2097152, 0.5)


@pytest.mark.parametrize("path", sorted(KEYS), ids=".".join)
def test_a_placeholder_is_refused_by_key_until_its_variable_is_set(path: tuple[str, ...], tmp_path: Path) -> None:
    env = env_name(path)
    doc = filled(KEYS[path](), {path: f"${{{env}}}"})
    with pytest.raises(ConfigError) as caught:
        parse_config(doc)
    assert any(p.startswith(".".join(path) + ":") and env in p for p in caught.value.problems), caught.value
    config_path = tmp_path / "c.yaml"
    config_path.write_text(yaml.safe_dump(doc))
    assert secret_at(load_config(config_path, {env: "from the environment"}), path) == "from the environment"


# -- provision ------------------------------------------------------------------------------------------------


@pytest.mark.process
@pytest.mark.parametrize("make", [kafka_doc, eventhubs_doc], ids=["kafka", "eventhubs"])
def test_provision_writes_no_secret(make: Any, tmp_path: Path) -> None:
    paths = [path for path in sorted(KEYS) if _applies(make(), path)]
    secrets = {path: f"{CONNECTION_STRING}Inline{i}Key== #{'/'.join(path)}" for i, path in enumerate(paths)}
    doc = filled(make(), secrets)
    config_path = tmp_path / "in.yaml"
    config_path.write_text(yaml.safe_dump(doc))
    assert "Inline0Key" in config_path.read_text()
    rule_ids = {rule.key: "dcr-" + f"{i:032x}" for i, rule in enumerate(plan_rules(parse_config(doc)))}
    outputs = tmp_path / "outputs.json"
    outputs.write_text(
        json.dumps({"logsIngestionEndpoint": {"value": ENDPOINT}, "dataCollectionRuleIds": {"value": rule_ids}})
    )
    out = tmp_path / "deploy"
    for extra in ([], ["--outputs", str(outputs)]):
        done = subprocess.run(
            ingestor_command("provision", "--config", str(config_path), "--out", str(out), *extra),
            capture_output=True,
            text=True,
            env=clean_env(),
        )
        assert done.returncode == 0, done.stderr
        written = (out / "ingestor.yaml").read_text()
        squeezed = "".join(written.split())  # YAML folds long strings over lines
        for value in secrets.values():
            assert value not in written
            assert "".join(value.split()) not in squeezed
            assert value.split("SharedAccessKey=")[1].split(" ")[0] not in written
        assert "SharedAccessKey" not in written
        lines = done.stderr.splitlines()
        for path in paths:
            (line,) = [line for line in lines if env_name(path) in line]
            assert ".".join(path) in line and "set the environment variable" in line
        assert not any(value in done.stderr for value in secrets.values())
    resolved = yaml.safe_load(written)
    for path in paths:
        node = resolved
        for part in path:
            node = node[part]
        assert node == f"${{{env_name(path)}}}"

    deployed = str(out / "ingestor.yaml")
    refused = subprocess.run(
        ingestor_command("check-config", "--config", deployed), capture_output=True, text=True, env=clean_env()
    )
    assert refused.returncode == 2
    for path in paths:
        assert f"{'.'.join(path)}: is the placeholder ${{{env_name(path)}}}" in refused.stderr, refused.stderr
    # With the variables set, the provisioned file works as it is, and the secrets arrive verbatim.
    environment = {env_name(path): value for path, value in secrets.items()}
    checked = subprocess.run(
        ingestor_command("check-config", "--config", deployed),
        capture_output=True,
        text=True,
        env=clean_env(**environment),
    )
    assert checked.returncode == 0, checked.stderr
    assert not any(value in checked.stdout for value in secrets.values())
    config = load_config(out / "ingestor.yaml", environment)
    assert all(secret_at(config, path) == value for path, value in secrets.items())


def test_a_yaml_error_names_the_place_but_never_quotes_the_line(tmp_path: Path) -> None:
    """PyYAML's message quotes the offending line, which may be a secret's: the error keeps only where it is."""
    path = tmp_path / "broken.yaml"
    path.write_text('sink:\n  credential:\n    token: "s3cr3t-token-value\n  endpoint: [https://x\n')
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    text = str(raised.value)
    assert "not valid YAML" in text and "line " in text and "column " in text
    assert "s3cr3t" not in text and raised.value.__cause__ is None
