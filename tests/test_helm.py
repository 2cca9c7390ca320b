"""The Helm chart, rendered and linted with the real Helm library (helm-python-sdk) for the default values and every
`ci/*-values.yaml` scenario: built-in kinds valid for Kubernetes (kubernetes-validate, strict), custom resources
valid for their CRDs (the kubernetes-models validators generated from the Prometheus Operator and KEDA CRDs, run
with Node.js from `tests/crd-validate`), the configuration in the ConfigMap accepted by `ingestor check-config`,
and the security and scaling rules a review would ask for.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import helm_python
import kubernetes_validate
import pytest
import yaml
from helmchart import CHART_DIR, RELEASE, ci_values, manifests, of_kind, render
from realparts import ingestor_command

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


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_lint_reports_no_errors_or_warnings(scenario: str) -> None:
    report = helm_python.lint(str(CHART_DIR), SCENARIOS[scenario], strict=True, kube_version=f"v{KUBERNETES}")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


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


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_custom_resources_validate_against_their_crds(scenario: str, validate_custom: Any) -> None:
    custom = [o for o in manifests(SCENARIOS[scenario]) if o["kind"] in CUSTOM_KINDS]
    assert validate_custom(custom) == []


def test_crd_validation_catches_a_bad_custom_resource(validate_custom: Any) -> None:
    (scaler,) = of_kind(manifests(SCENARIOS["keda"]), "ScaledObject")
    scaler["spec"]["maxReplicaCount"] = "eight"
    (monitor,) = of_kind(manifests(SCENARIOS["servicemonitor"]), "ServiceMonitor")
    monitor["spec"]["endpoints"] = {"port": "metrics"}
    problems = validate_custom([scaler, monitor])
    assert [p["kind"] for p in problems] == ["keda.sh/v1alpha1/ScaledObject", "monitoring.coreos.com/v1/ServiceMonitor"]


def test_strict_validation_catches_a_bad_manifest() -> None:
    (deployment,) = of_kind(manifests(), "StatefulSet")
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["prot"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES, strict=True)


def container_env(deployment: dict[str, Any]) -> dict[str, str]:
    """The container's environment as the pod would see it; values from Secrets become placeholders."""
    env = {}
    for item in deployment["spec"]["template"]["spec"]["containers"][0].get("env", []):
        env[item["name"]] = item.get("value", f"<{item['name']} from the cluster>")
    return env


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_configmap_configuration_passes_check_config(scenario: str, tmp_path: Path) -> None:
    objects = manifests(SCENARIOS[scenario])
    (configmap,) = [c for c in of_kind(objects, "ConfigMap") if "ingestor.yaml" in c["data"]]
    (deployment,) = of_kind(objects, "StatefulSet")
    path = tmp_path / "ingestor.yaml"
    path.write_text(configmap["data"]["ingestor.yaml"])
    environment = {"PATH": "/usr/bin:/bin", **container_env(deployment)}
    done = subprocess.run(
        ingestor_command("check-config", "--config", str(path)), capture_output=True, text=True, env=environment
    )
    assert done.returncode == 0, done.stderr
    checked = yaml.safe_load(done.stdout)
    assert (
        checked["metrics"]["port"]
        == deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
    )
    assert "connection-string" not in done.stdout  # a secret reference is never resolved into the config


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


def test_grace_period_must_exceed_the_drain_bound() -> None:
    with pytest.raises(helm_python.HelmError, match="terminationGracePeriodSeconds 30 must exceed"):
        render({"terminationGracePeriodSeconds": 30})


def test_replicas_never_exceed_partitions() -> None:
    (deployment,) = of_kind(manifests(), "StatefulSet")
    assert deployment["spec"]["replicas"] <= VALUES["partitionCount"]
    with pytest.raises(helm_python.HelmError, match="more than partitionCount"):
        render({"replicaCount": 5, "partitionCount": 4})


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


def test_a_config_change_rolls_the_pods() -> None:
    def checksum(values: dict[str, Any]) -> str:
        (deployment,) = of_kind(manifests(values), "StatefulSet")
        return str(deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"])

    changed = {"config": {**copy.deepcopy(VALUES["config"]), "log_level": "DEBUG"}}
    assert checksum({}) == checksum({})
    assert checksum({}) != checksum(changed)


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


def test_connection_string_comes_only_by_secret_reference() -> None:
    env = pod_spec(SCENARIOS["connection-string"])["containers"][0]["env"]
    (item,) = [e for e in env if e["name"] == "INGESTOR_SOURCE__AUTH__CONNECTION_STRING"]
    assert item["valueFrom"]["secretKeyRef"] == {"name": "defender-eventhubs", "key": "connection-string"}


def test_monitors_select_the_metrics_port() -> None:
    objects = manifests(SCENARIOS["servicemonitor"])
    (monitor,) = of_kind(objects, "ServiceMonitor")
    (service,) = of_kind(objects, "Service")
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"] == "metrics"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    (pod_monitor,) = of_kind(manifests(SCENARIOS["workload-identity"]), "PodMonitor")
    assert pod_monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"


def test_values_schema_rejects_mistakes() -> None:
    for bad in (
        {"autoscaling": {"mode": "vpa"}},
        {"replicaCount": "two"},
        {"unknownKey": 1},
        {"config": {"metrics": {}}},
    ):
        with pytest.raises(helm_python.HelmError):
            render(bad)


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
