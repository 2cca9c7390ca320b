"""The Helm chart, rendered and linted with the real Helm library (helm-python-sdk) for the default values and every
`ci/*-values.yaml` scenario: built-in kinds valid for Kubernetes (kubernetes-validate, strict), custom resources
valid for their CRDs (the kubernetes-models validators generated from the Prometheus Operator and KEDA CRDs, run
with Node.js from `tests/crd-validate`), the configuration in the ConfigMap accepted by `ingestor check-config`,
and the security and scaling rules a review would ask for.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import helm_python
import kubernetes_validate
import pytest
import yaml
from helmchart import CHART_DIR, RELEASE, ci_values, manifests, notes, of_kind, render, rendered_config
from realparts import ingestor_command

from ingestor.config import Config

SCENARIOS = {"default": {}, **ci_values()}
KUBERNETES = kubernetes_validate.latest_version()
# Custom resources: kubernetes-validate carries only the built-in kinds' schemas.
CUSTOM_KINDS = {
    "ServiceMonitor": "monitoring.coreos.com/v1",
    "PodMonitor": "monitoring.coreos.com/v1",
    "PrometheusRule": "monitoring.coreos.com/v1",
    "ScaledObject": "keda.sh/v1alpha1",
}
VALUES = yaml.safe_load((CHART_DIR / "values.yaml").read_text())


def test_every_ci_scenario_is_covered() -> None:
    assert {"keda", "servicemonitor", "workload-identity", "connection-string"} <= set(SCENARIOS)


@pytest.mark.helm
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_lint_reports_no_errors_or_warnings(scenario: str) -> None:
    report = helm_python.lint(str(CHART_DIR), SCENARIOS[scenario], strict=True, kube_version=f"v{KUBERNETES}")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.helm
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_manifest_validates_strictly(scenario: str) -> None:
    objects = manifests(SCENARIOS[scenario])
    assert of_kind(objects, "StatefulSet")
    for obj in objects:
        if obj["kind"] in CUSTOM_KINDS:
            assert obj["apiVersion"] == CUSTOM_KINDS[obj["kind"]]
            continue
        kubernetes_validate.validate(obj, KUBERNETES, strict=True)
    assert not of_kind(objects, "Secret"), "the chart never renders secrets"


CRD_VALIDATOR = Path(__file__).resolve().parent / "crd-validate"


@pytest.fixture(scope="module")
def validate_custom() -> Any:
    """A function validating custom resources against their CRD schemas; installs the validator's npm packages."""
    npm = shutil.which("npm")
    assert npm, "npm (Node.js) is needed to validate the chart's custom resources"
    if not (CRD_VALIDATOR / "node_modules" / ".package-lock.json").is_file():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=CRD_VALIDATOR, check=True, capture_output=True)

    def validate(objects: list[dict[str, Any]]) -> list[dict[str, str]]:
        done = subprocess.run(
            ["node", "validate.mjs"], cwd=CRD_VALIDATOR, input=json.dumps(objects), capture_output=True, text=True
        )
        assert done.returncode in (0, 1), done.stderr
        problems: list[dict[str, str]] = json.loads(done.stdout)
        return problems

    return validate


@pytest.mark.helm
@pytest.mark.node
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_custom_resources_validate_against_their_crds(scenario: str, validate_custom: Any) -> None:
    custom = [o for o in manifests(SCENARIOS[scenario]) if o["kind"] in CUSTOM_KINDS]
    assert validate_custom(custom) == []


@pytest.mark.helm
@pytest.mark.node
def test_crd_validation_catches_a_bad_custom_resource(validate_custom: Any) -> None:
    (scaler,) = of_kind(manifests(SCENARIOS["keda"]), "ScaledObject")
    scaler["spec"]["maxReplicaCount"] = "eight"
    (monitor,) = of_kind(manifests(SCENARIOS["servicemonitor"]), "ServiceMonitor")
    monitor["spec"]["endpoints"] = {"port": "metrics"}
    problems = validate_custom([scaler, monitor])
    assert [p["kind"] for p in problems] == ["keda.sh/v1alpha1/ScaledObject", "monitoring.coreos.com/v1/ServiceMonitor"]


@pytest.mark.helm
def test_strict_validation_catches_a_bad_manifest() -> None:
    (deployment,) = of_kind(manifests(), "StatefulSet")
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["prot"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES, strict=True)


def container_env(deployment: dict[str, Any], secrets: dict[tuple[str, str], str] | None = None) -> dict[str, str]:
    """The container's environment as the pod would see it: a `secretKeyRef` takes its value from `secrets`
    (Secret name, key), or a placeholder when none is given; a `fieldRef` to the pod's name, its first ordinal."""
    env = {}
    for item in deployment["spec"]["template"]["spec"]["containers"][0].get("env", []):
        source = item.get("valueFrom", {})
        if "secretKeyRef" in source and secrets is not None:
            ref = source["secretKeyRef"]
            env[item["name"]] = secrets[(ref["name"], ref["key"])]
        elif source.get("fieldRef", {}).get("fieldPath") == "metadata.name":
            env[item["name"]] = f"{deployment['metadata']['name']}-0"
        else:
            env[item["name"]] = item.get("value", f"<{item['name']} from the cluster>")
    return env


def check_rendered_config(
    objects: list[dict[str, Any]], directory: Path, secrets: dict[tuple[str, str], str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`ingestor check-config` on the rendered ConfigMap's configuration, with the rendered pod's environment."""
    (configmap,) = [c for c in of_kind(objects, "ConfigMap") if "ingestor.yaml" in c["data"]]
    (statefulset,) = of_kind(objects, "StatefulSet")
    path = directory / "rendered-ingestor.yaml"
    path.write_text(configmap["data"]["ingestor.yaml"])
    environment = {"PATH": "/usr/bin:/bin", **container_env(statefulset, secrets)}
    return subprocess.run(
        ingestor_command("check-config", "--config", str(path)), capture_output=True, text=True, env=environment
    )


# What a deployer sets in place of the chart's placeholders: the namespace and event hub of docs/deployment.md
# step 1, and the endpoint and DCR id that provision --outputs writes.
DEPLOYED = {
    "source": {"bootstrap_servers": ["contoso-defender.servicebus.windows.net:9093"], "topics": ["defender"]},
    "sink": {
        "endpoint": "https://defender-ingestor-dce-a1b2.westeurope-1.ingest.monitor.azure.com",
        "rule_id": "dcr-0123456789abcdef0123456789abcdef",
    },
}


def deployed(values: dict[str, Any]) -> dict[str, Any]:
    """`values` with the deployer's source and sink where the scenario leaves the chart's placeholders."""
    values = copy.deepcopy(values)
    config = values.setdefault("config", {})
    for section, real in DEPLOYED.items():
        config.setdefault(section, copy.deepcopy(real))
    return values


@pytest.mark.helm
@pytest.mark.process
def test_the_chart_defaults_are_placeholders_that_check_config_refuses_and_notes_warn_of(tmp_path: Path) -> None:
    """Installed without a configuration of one's own, the pod would exit 2: check-config names each placeholder
    with its key, and `helm install` says so before the pods start."""
    done = check_rendered_config(manifests(), tmp_path)
    assert done.returncode == 2
    for key, placeholder in (("source.bootstrap_servers.0", "<namespace>"), ("source.topics.0", "<event hub>")):
        assert f"{key}: holds the placeholder {placeholder}" in done.stderr
    assert "sink.endpoint and sink.rule_id are placeholders" in done.stderr
    warning = next(line for line in notes().splitlines() if line.startswith("WARNING: config still holds"))
    for placeholder in ("<namespace>", "<event hub>", "<dce>", "<region>", "dcr-" + "0" * 32):
        assert placeholder in warning
    assert "step 6" in warning
    assert "WARNING: config still holds" not in notes(deployed({}))


@pytest.mark.helm
def test_notes_warn_that_the_default_image_is_not_published() -> None:
    assert "WARNING: image.repository is the chart's default" in notes()
    built = notes({"image": {"repository": "contoso.azurecr.io/defender-ingestor", "tag": "0.1.0"}})
    assert "WARNING: image.repository" not in built


@pytest.mark.helm
@pytest.mark.process
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_configmap_configuration_passes_check_config(scenario: str, tmp_path: Path) -> None:
    objects = manifests(deployed(SCENARIOS[scenario]))
    (deployment,) = of_kind(objects, "StatefulSet")
    done = check_rendered_config(objects, tmp_path)
    assert done.returncode == 0, done.stderr
    checked = yaml.safe_load(done.stdout)
    assert (
        checked["metrics"]["port"]
        == deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
    )
    assert "connection-string" not in done.stdout  # a secret reference is never resolved into the config


@pytest.mark.helm
@pytest.mark.process
def test_a_broken_configuration_fails_check_config(tmp_path: Path) -> None:
    values = {"config": copy.deepcopy(VALUES["config"])}
    values["config"]["sink"]["rule_id"] = "not-a-rule"
    (configmap,) = of_kind(manifests(values), "ConfigMap")
    path = tmp_path / "ingestor.yaml"
    path.write_text(configmap["data"]["ingestor.yaml"])
    done = subprocess.run(ingestor_command("check-config", "--config", str(path)), capture_output=True, text=True)
    assert done.returncode == 2 and "sink.rule_id" in done.stderr


def pod_spec(values: dict[str, Any] | None = None) -> dict[str, Any]:
    (deployment,) = of_kind(manifests(values), "StatefulSet")
    spec: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return spec


@pytest.mark.helm
def test_pods_are_hardened_and_probed() -> None:
    spec = pod_spec()
    pod, (container,) = spec["securityContext"], spec["containers"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] > 0
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"]
    writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
    assert writable == {"/tmp", "/var/lib/ingestor/dead-letter"}
    assert spec["terminationGracePeriodSeconds"] > VALUES["config"]["shutdown_grace_secs"]
    assert container["args"] == ["run", "--config", "/etc/ingestor/ingestor.yaml"]


@pytest.mark.helm
@pytest.mark.parametrize("grace", [30, 60, 59.5])
def test_the_drain_bound_must_stay_below_the_termination_grace_period(grace: float) -> None:
    config = {**copy.deepcopy(VALUES["config"]), "shutdown_grace_secs": grace}
    if grace < VALUES["terminationGracePeriodSeconds"]:
        assert pod_spec({"config": config})["terminationGracePeriodSeconds"] == VALUES["terminationGracePeriodSeconds"]
        with pytest.raises(helm_python.HelmError, match=f"config.shutdown_grace_secs {grace} is not below"):
            render({"config": config, "terminationGracePeriodSeconds": int(grace)})
        return
    with pytest.raises(
        helm_python.HelmError,
        match=f"config.shutdown_grace_secs {grace} is not below terminationGracePeriodSeconds 60: Kubernetes would "
        "kill a pod before it has flushed, uploaded and committed",
    ):
        render({"config": config})


@pytest.mark.helm
def test_replicas_never_exceed_partitions() -> None:
    (deployment,) = of_kind(manifests(), "StatefulSet")
    assert deployment["spec"]["replicas"] <= VALUES["partitionCount"]
    with pytest.raises(helm_python.HelmError, match="more than partitionCount"):
        render({"replicaCount": 5, "partitionCount": 4})


@pytest.mark.helm
@pytest.mark.parametrize(
    ("mode", "kind", "field"),
    [("keda", "ScaledObject", "maxReplicaCount"), ("hpa", "HorizontalPodAutoscaler", "maxReplicas")],
)
def test_autoscaling_is_capped_at_the_partition_count(mode: str, kind: str, field: str) -> None:
    objects = manifests({"autoscaling": {"mode": mode, "maxReplicas": 32}, "partitionCount": 6})
    (scaler,) = of_kind(objects, kind)
    assert scaler["spec"][field] == 6
    (deployment,) = of_kind(objects, "StatefulSet")
    assert "replicas" not in deployment["spec"]  # the autoscaler owns the count
    if mode == "keda":
        (trigger,) = scaler["spec"]["triggers"]
        assert trigger["type"] == "prometheus"
        assert "ingestor_consumer_lag_messages" in trigger["metadata"]["query"]


@pytest.mark.helm
def test_a_config_change_rolls_the_pods() -> None:
    def checksum(values: dict[str, Any]) -> str:
        (deployment,) = of_kind(manifests(values), "StatefulSet")
        return str(deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"])

    changed = {"config": {**copy.deepcopy(VALUES["config"]), "log_level": "DEBUG"}}
    assert checksum({}) == checksum({})
    assert checksum({}) != checksum(changed)


@pytest.mark.helm
def test_workload_identity_annotates_the_service_account_and_labels_the_pods() -> None:
    objects = manifests(SCENARIOS["workload-identity"])
    (account,) = of_kind(objects, "ServiceAccount")
    assert account["metadata"]["annotations"]["azure.workload.identity/client-id"] == (
        "6f0e2a52-1c3b-4d8e-9a7f-0b1c2d3e4f50"
    )
    (deployment,) = of_kind(objects, "StatefulSet")
    assert deployment["spec"]["template"]["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == account["metadata"]["name"]
    plain = manifests(SCENARIOS["connection-string"])
    (deployment,) = of_kind(plain, "StatefulSet")
    assert "azure.workload.identity/use" not in deployment["spec"]["template"]["metadata"]["labels"]


@pytest.mark.helm
def test_connection_string_comes_only_by_secret_reference() -> None:
    env = pod_spec(SCENARIOS["connection-string"])["containers"][0]["env"]
    (item,) = [e for e in env if e["name"] == "INGESTOR_SOURCE__AUTH__CONNECTION_STRING"]
    assert item["valueFrom"]["secretKeyRef"] == {"name": "defender-eventhubs", "key": "connection-string"}


@pytest.mark.helm
def test_monitors_select_the_metrics_port() -> None:
    objects = manifests(SCENARIOS["servicemonitor"])
    (monitor,) = of_kind(objects, "ServiceMonitor")
    (service,) = of_kind(objects, "Service")
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"] == "metrics"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    (pod_monitor,) = of_kind(manifests(SCENARIOS["workload-identity"]), "PodMonitor")
    assert pod_monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"


@pytest.mark.helm
def test_values_schema_rejects_mistakes() -> None:
    for bad in (
        {"autoscaling": {"mode": "vpa"}},
        {"replicaCount": "two"},
        {"unknownKey": 1},
    ):
        with pytest.raises(helm_python.HelmError):
            render(bad)


@pytest.mark.helm
def test_dead_letters_persist_per_pod_when_asked() -> None:
    objects = manifests(SCENARIOS["workload-identity"])
    (statefulset,) = of_kind(objects, "StatefulSet")
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]  # one claim per pod, no shared claim
    assert not of_kind(objects, "PersistentVolumeClaim")
    mount = next(
        m
        for m in pod_spec(SCENARIOS["workload-identity"])["containers"][0]["volumeMounts"]
        if m["name"] == "dead-letter"
    )
    assert "subPathExpr" not in mount
    assert claim["metadata"]["name"] == "dead-letter" and statefulset["metadata"]["name"] == f"{RELEASE}-ingestor"


@pytest.mark.process
def test_chart_readme_is_generated_from_values() -> None:
    done = subprocess.run(
        [sys.executable, str(CHART_DIR.parent / "readme.py"), "--check"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    readme = (CHART_DIR / "README.md").read_text()
    for key in ("partitionCount", "workloadIdentity.clientId", "autoscaling.keda.lagThreshold"):
        assert f"| `{key}` |" in readme


def test_every_value_is_documented() -> None:
    sys.path.insert(0, str(CHART_DIR.parent))
    from readme import documented_keys

    documented = {key for key, _, _ in documented_keys((CHART_DIR / "values.yaml").read_text())}

    def undocumented(node: dict[str, Any], prefix: str = "") -> list[str]:
        missing = []
        for key, value in node.items():
            dotted = prefix + key
            if dotted in documented:
                continue
            if isinstance(value, dict) and value:
                missing.extend(undocumented(value, dotted + "."))
            else:
                missing.append(dotted)
        return missing

    assert undocumented(VALUES) == []
    assert len(documented) > 50


# -- the chart takes any configuration; what it sets itself wins, with a NOTES line --------------------------


def note_lines(values: dict[str, Any]) -> list[str]:
    return [line for line in notes(values).splitlines() if line.startswith("NOTE: ")]


# Every section of the configuration, as `provision` would write it, with chart-set keys that differ.
EVERY_SECTION: dict[str, Any] = {
    "source": {
        "type": "kafka",
        "bootstrap_servers": ["contoso-defender.servicebus.windows.net:9093"],
        "topics": ["defender"],
        "group_id": "defender-ingestor",
        "tls": True,
        "auth": {"type": "entra"},
        "commit_interval_secs": 2.0,
    },
    "sink": {
        "type": "logs_ingestion",
        "endpoint": "https://contoso-dce-a1b2.westeurope-1.ingest.monitor.azure.com",
        "rule_id": "dcr-0c6f3d1e9b2a4f7d8e5c1a3b6d9f2e4a",
        "linger_secs": 1.5,
    },
    "dead_letter": {"type": "file", "path": "/data/dead-letter", "max_file_bytes": 1_048_576},
    "metrics": {"host": "127.0.0.1", "port": 9100},
    "validation": {"unknown_columns": "drop", "max_field_bytes": 32768},
    "schemas": {"extra_columns": {"DeviceProcessEvents": {"ProcessRiskScore": "long"}}},
    "retention": {
        "default_class": "hot",
        "classes": {"hot": {"plan": "Analytics"}, "archive": {"plan": "Auxiliary", "total_retention_days": 365}},
        "rules": [{"tables": ["DeviceNetworkEvents"], "class": "archive"}],
    },
    "log_level": "DEBUG",
    "shutdown_grace_secs": 45,
}


@pytest.mark.helm
@pytest.mark.process
def test_the_chart_takes_every_section_of_the_configuration(tmp_path: Path) -> None:
    assert set(EVERY_SECTION) == set(Config.model_fields), "cover every section of the configuration"
    values = {"config": EVERY_SECTION}
    rendered = rendered_config(values)
    for section in set(EVERY_SECTION) - {"metrics", "dead_letter"}:
        assert rendered[section] == EVERY_SECTION[section], section
    assert rendered["metrics"] == {"host": "0.0.0.0", "port": VALUES["metrics"]["port"]}
    assert rendered["dead_letter"]["path"] == "/var/lib/ingestor/dead-letter"
    assert rendered["dead_letter"]["max_file_bytes"] == 1_048_576
    assert note_lines(values) == [
        "NOTE: config.dead_letter.path /data/dead-letter is replaced by the chart's /var/lib/ingestor/dead-letter "
        "(the chart mounts the dead-letter volume there; remove config.dead_letter.path).",
        "NOTE: config.metrics.host 127.0.0.1 is replaced by the chart's 0.0.0.0 (the kubelet's probes and "
        "Prometheus reach the pod from outside it; remove config.metrics.host).",
        "NOTE: config.metrics.port 9100 is replaced by the chart's 9464 (the container port, the probes, the "
        "Service and the monitors use it; set metrics.port instead of config.metrics.port).",
    ]
    done = check_rendered_config(manifests(values), tmp_path)
    assert done.returncode == 0, done.stderr


@pytest.mark.helm
def test_the_chart_metrics_port_is_the_one_every_part_uses() -> None:
    values = {"config": {**EVERY_SECTION, "metrics": {"port": 9500}}, "metrics": {"port": 9500}}
    assert rendered_config(values)["metrics"] == {"host": "0.0.0.0", "port": 9500}
    assert note_lines(values) == [line for line in note_lines(values) if "metrics" not in line]
    moved = {"config": EVERY_SECTION, "metrics": {"port": 9500}}
    assert rendered_config(moved)["metrics"]["port"] == 9500
    assert any("config.metrics.port 9100 is replaced by the chart's 9500" in line for line in note_lines(moved))
    objects = manifests(moved)
    (service,) = of_kind(objects, "Service")
    assert service["spec"]["ports"][0]["port"] == 9500
    container = pod_spec(moved)["containers"][0]
    assert (
        container["ports"][0]["containerPort"] == 9500 and container["readinessProbe"]["httpGet"]["port"] == "metrics"
    )


@pytest.mark.helm
def test_chart_set_keys_given_with_the_chart_values_give_no_note() -> None:
    same = copy.deepcopy(EVERY_SECTION)
    same["metrics"] = {"host": "0.0.0.0", "port": 9464}
    same["dead_letter"]["path"] = "/var/lib/ingestor/dead-letter"
    assert note_lines({"config": same}) == []
    assert note_lines({}) == []


@pytest.mark.helm
def test_a_kafka_dead_letter_keeps_its_own_keys_and_gets_no_path() -> None:
    values = SCENARIOS["connection-string"]
    assert rendered_config(values)["dead_letter"] == values["config"]["dead_letter"]


@pytest.mark.helm
@pytest.mark.parametrize("name", ["INGESTOR_METRICS__PORT", "INGESTOR_METRICS__HOST", "INGESTOR_DEAD_LETTER__PATH"])
def test_env_may_not_override_what_the_chart_sets(name: str) -> None:
    key = name.removeprefix("INGESTOR_").lower().replace("__", ".")
    with pytest.raises(
        helm_python.HelmError, match=rf"env\[0\] {name} would override config\.{key}, which the chart sets itself"
    ):
        render({"env": [{"name": name, "value": "1"}]})


# -- every refusal is a sentence ------------------------------------------------------------------------------

TEMPLATES = CHART_DIR / "templates"
# (values, what the message must say): one for each `fail` of the templates (see the test below).
REFUSALS: dict[str, tuple[dict[str, Any], str]] = {
    "replicas above partitions": (
        {"replicaCount": 5, "partitionCount": 4},
        "replicaCount 5 is more than partitionCount 4: pods beyond the partition count get no partitions and stay "
        "not ready. Lower replicaCount, or set partitionCount to your event hub's partition count.",
    ),
    "a number out of range": (
        {"metrics": {"port": 70000}},
        "metrics.port is 70000: it must be from 1 to 65535 (the TCP port of /metrics, /healthz and /readyz).",
    ),
    "a number below its least": (
        {"partitionCount": 0},
        "partitionCount is 0: it must be from 1 to 2000 (the partition count of your event hub).",
    ),
    "a number not set": (
        {"livenessProbe": {"periodSeconds": None}},
        "livenessProbe.periodSeconds is not set: it must be a whole number at least 1 (seconds between checks).",
    ),
    "autoscaling minimum above its maximum": (
        {"autoscaling": {"mode": "keda", "minReplicas": 6}, "partitionCount": 4},
        "autoscaling.minReplicas 6 is more than the most pods autoscaling may run, 4",
    ),
    "grace period": (
        {"terminationGracePeriodSeconds": 30},
        "config.shutdown_grace_secs 30 is not below terminationGracePeriodSeconds 30",
    ),
    "no image": ({"image": {"repository": ""}}, "image.repository is empty: name the image you built"),
    "a size the chart cannot read": (
        {"deadLetter": {"ephemeralSizeLimit": "1GB"}},
        'deadLetter.ephemeralSizeLimit is "1GB": write a whole number and Ki, Mi, Gi or Ti, e.g. 10Gi',
    ),
    "a dead-letter cap too small": (
        {"config": {"dead_letter": {"max_total_bytes": 4096}}},
        "config.dead_letter.max_total_bytes 4096 is below 1048576 (1 MiB), the least the ingestor takes",
    ),
    "a dead-letter cap above the volume": (
        {"config": {"dead_letter": {"max_total_bytes": 20 << 30}}},
        "config.dead_letter.max_total_bytes 21474836480 is not below the dead-letter volume's 10737418240 bytes",
    ),
    "no claim and no consent to lose the dead letter": (
        {"deadLetter": {"persistence": {"enabled": False}}},
        "deadLetter.persistence.enabled is false with a file dead letter: its entries would be lost with the pod.",
    ),
    "keda address": (
        {"autoscaling": {"keda": {"serverAddress": "prometheus:9090"}}},
        'autoscaling.keda.serverAddress "prometheus:9090" is not a URL',
    ),
    "no metrics namespace": (
        {"networkPolicy": {"metricsFrom": {"namespace": ""}}},
        "networkPolicy.metricsFrom.namespace is empty: name the namespace of your Prometheus",
    ),
    "no address ranges": ({"networkPolicy": {"httpsCidrs": []}}, "networkPolicy.httpsCidrs is empty"),
    "a host name for an address range": (
        {"networkPolicy": {"eventHubsCidrs": ["contoso.servicebus.windows.net"]}},
        'networkPolicy.eventHubsCidrs[0] "contoso.servicebus.windows.net" is not an address range',
    ),
    "a secret key without the Secret": (
        {"existingSecret": {"connectionStringKey": "cs"}},
        "existingSecret.connectionStringKey is set but existingSecret.name is empty",
    ),
    "a secret placeholder without the Secret": (
        {"config": {"sink": {"credential": {"type": "static_token", "token": "${INGESTOR_SINK__CREDENTIAL__TOKEN}"}}}},
        "config.sink.credential.token is ${INGESTOR_SINK__CREDENTIAL__TOKEN}, the placeholder provision writes",
    ),
    "a secret inline": (
        {"config": {"sink": {"credential": {"type": "static_token", "token": "hunter2"}}}},
        "config.sink.credential.token holds a secret",
    ),
    "env over a chart-set key": (
        {"env": [{"name": "INGESTOR_METRICS__PORT", "value": "9100"}]},
        "env[0] INGESTOR_METRICS__PORT would override config.metrics.port, which the chart sets itself",
    ),
    "a secret env literal": (
        {"env": [{"name": "INGESTOR_SOURCE__CONNECTION_STRING", "value": "Endpoint=sb://x/;SharedAccessKey=k"}]},
        "env[0] INGESTOR_SOURCE__CONNECTION_STRING has a literal value",
    ),
}


def refusal(values: dict[str, Any]) -> str:
    """The message Helm gives for values the chart refuses, without Helm's `execution error at (file:line):`."""
    with pytest.raises(helm_python.HelmError) as refused:
        render(values)
    return re.sub(r"^execution error at \([^)]*\): ", "", str(refused.value))


@pytest.mark.helm
@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_every_refusal_reads_as_a_sentence(case: str) -> None:
    values, expected = REFUSALS[case]
    message = refusal(values)
    assert expected in message
    assert message.endswith(".") and message[0].isalpha() and " " in message
    for jargon in ("'not' failed", "value must be", "minimum:", "maximum:", "minLength", "pattern", "schema"):
        assert jargon not in message


def _fail_formats() -> list[str]:
    formats = []
    for path in sorted(TEMPLATES.iterdir()):
        text = path.read_text()
        formats += re.findall(r'fail \(printf "((?:[^"\\]|\\.)*)"', text)
        formats += re.findall(r'fail "((?:[^"\\]|\\.)*)"', text)
    return formats


@pytest.mark.helm
def test_every_fail_of_the_templates_is_exercised() -> None:
    """Each `fail` message of the templates is produced by one of REFUSALS (its `%` verbs as wildcards)."""
    formats = _fail_formats()
    assert len(formats) >= 15
    messages = [refusal(values) for values, _ in REFUSALS.values()]
    for text in formats:
        pattern = re.escape(text).replace("%%", "%")
        pattern = re.sub(r"%[sdvq]", ".+?", pattern)
        assert any(re.fullmatch(pattern, m) for m in messages), f"no test makes the chart say: {text}"


SCHEMA_KEYWORDS = {"$schema", "title", "description", "type", "properties", "items", "enum", "required"}


def test_the_schema_keeps_only_the_checks_helm_words_clearly() -> None:
    """values.schema.json checks types, names and choices; a range or pattern belongs in the templates, where its
    refusal is a sentence (Helm words those as `minimum: got 0, want 1` or `does not match pattern`)."""
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    used: set[str] = set()

    def walk(node: Any, in_properties: bool = False) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if not in_properties:
                    used.add(key)
                walk(value, key == "properties" and not in_properties)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(schema)
    assert used - {"additionalProperties"} <= SCHEMA_KEYWORDS


@pytest.mark.helm
@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"autoscaling": {"mode": "vpa"}}, "at '/autoscaling/mode': value must be one of 'none', 'hpa', 'keda'"),
        ({"replicaCount": "two"}, "at '/replicaCount': got string, want integer"),
        ({"unknownKey": 1}, "additional properties 'unknownKey' not allowed"),
        ({"config": {"source": None}}, "at '/config': missing property 'source'"),
    ],
)
def test_the_schema_messages_that_stay_name_the_value_and_what_it_takes(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm_python.HelmError) as refused:
        render(values)
    assert message in str(refused.value)


@pytest.mark.helm
@pytest.mark.parametrize(
    ("source", "auth"),
    [
        ({"bootstrap_servers": ["kafka.kafka.svc:9092"]}, None),  # plain Kafka: the ingestor's defaults, no TLS
        ({"bootstrap_servers": ["contoso.servicebus.windows.net:9093"]}, {"type": "entra"}),
        (
            {"bootstrap_servers": ["contoso.servicebus.windows.net:9093"], "auth": {"type": "connection_string"}},
            {"type": "connection_string"},
        ),
    ],
)
def test_a_kafka_source_gets_entra_only_on_event_hubs_and_never_a_tls_it_did_not_ask_for(
    source: dict[str, Any], auth: dict[str, str] | None
) -> None:
    """Helm merges `config` into the chart's defaults: what a plain Kafka source leaves out must stay out."""
    rendered = rendered_config({"config": {"source": {"topics": ["defender"], "group_id": "ingestor", **source}}})
    assert rendered["source"].get("auth") == auth
    assert "tls" not in rendered["source"]
    if auth != {"type": "connection_string"}:  # (that one needs its Secret to validate)
        config = Config.model_validate(rendered)
        assert config.source.uses_tls == (auth is not None)  # type: ignore[union-attr]
