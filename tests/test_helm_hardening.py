"""The chart's durable dead letter and hardening, rendered with the real Helm library (helm-python-sdk) and validated
with kubernetes-validate (strict) for the newest Kubernetes it knows and the oldest the chart supports (1.27):

* a StatefulSet with a PersistentVolumeClaim per pod for the file dead letter by default, kept on scale-in and
  deletion; an emptyDir only behind `deadLetter.ephemeralLosesDataWithThePod`, with a `sizeLimit` and a NOTES
  warning; the dead letter's size cap set below the volume;
* autoscalers and alerts that point at the StatefulSet and its pods;
* no Kubernetes API token in the pods; an optional NetworkPolicy;
* every secret of the configuration from a Secret, and none accepted inline (in `config` or `env`); provision's
  `${INGESTOR_...}` placeholder only together with the Secret that replaces it.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import helm_python
import kubernetes_validate
import pytest
import yaml
from helmchart import CHART_DIR, RELEASE, ci_values, manifests, notes, of_kind, render, rendered_config
from test_helm import CUSTOM_KINDS, validate_custom  # noqa: F401 - the fixture is used by name

from ingestor.config import SECRET_PATHS, env_name

SCENARIOS = {"default": {}, **ci_values()}
VALUES = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
FULLNAME = f"{RELEASE}-ingestor"
KUBERNETES = [kubernetes_validate.latest_version(), "1.27.0"]  # newest known, oldest the chart allows
GIB = 1 << 30
# The existingSecret value for each secret key of the configuration, and the secret the schema would refuse.
SECRET_VALUES = {
    ("source", "auth", "connection_string"): "connectionStringKey",
    ("source", "connection_string"): "amqpConnectionStringKey",
    ("source", "checkpoint_store", "connection_string"): "checkpointStoreConnectionStringKey",
    ("sink", "credential", "token"): "staticTokenKey",
}
SECRET = "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey=c2VjcmV0"


def statefulset(values: dict[str, Any] | None = None) -> dict[str, Any]:
    (workload,) = of_kind(manifests(values), "StatefulSet")
    return workload


def pod_spec(values: dict[str, Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = statefulset(values)["spec"]["template"]["spec"]
    return spec


def with_config(**dead_letter: Any) -> dict[str, Any]:
    config = copy.deepcopy(VALUES["config"])
    config["dead_letter"].update(dead_letter)
    return config


@pytest.mark.helm
@pytest.mark.parametrize("version", KUBERNETES)
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_scenario_validates_for_the_newest_and_the_oldest_kubernetes(scenario: str, version: str) -> None:
    for obj in manifests(SCENARIOS[scenario]):
        if obj["kind"] not in CUSTOM_KINDS:
            kubernetes_validate.validate(obj, version, strict=True)


def test_the_ci_scenarios_cover_the_hardened_and_the_ephemeral_chart() -> None:
    assert {"hardened", "ephemeral"} <= set(SCENARIOS)
    assert SCENARIOS["hardened"]["networkPolicy"]["enabled"] is True
    assert SCENARIOS["ephemeral"]["deadLetter"]["ephemeralLosesDataWithThePod"] is True


# -- the dead letter is durable by default ---------------------------------------------------------------------


@pytest.mark.helm
def test_by_default_each_pod_has_its_own_dead_letter_claim() -> None:
    objects = manifests()
    assert not of_kind(objects, "Deployment") and not of_kind(objects, "PersistentVolumeClaim")
    spec = statefulset()["spec"]
    (claim,) = spec["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "dead-letter"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]  # a disk per pod, not one shared by every pod
    assert claim["spec"]["resources"]["requests"]["storage"] == "10Gi"
    assert "storageClassName" not in claim["spec"]  # the cluster default
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "dead-letter"]
    assert mount == {"name": "dead-letter", "mountPath": "/var/lib/ingestor/dead-letter"}
    assert "dead-letter" not in {v["name"] for v in pod["volumes"]}  # it comes from the claim template
    config = rendered_config()
    assert config["dead_letter"]["path"] == mount["mountPath"]
    assert config["dead_letter"]["max_total_bytes"] == 8 * GIB  # 80% of the 10Gi claim
    assert "Dead letters: a PersistentVolumeClaim per pod" in notes({})
    assert "DELETED WITH THE POD" not in notes({})


@pytest.mark.helm
def test_the_statefulset_keeps_the_rollout_and_scaling_behaviour() -> None:
    spec = statefulset()["spec"]
    assert spec["podManagementPolicy"] == "Parallel"  # scaling does not wait for each pod's readiness
    assert spec["updateStrategy"] == {"type": "RollingUpdate"}  # one pod at a time: stopped, then replaced
    assert spec["replicas"] == VALUES["replicaCount"]
    (service,) = of_kind(manifests(), "Service")
    assert spec["serviceName"] == service["metadata"]["name"]  # required by Kubernetes before 1.33
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    (budget,) = of_kind(manifests(), "PodDisruptionBudget")
    assert budget["spec"]["selector"] == spec["selector"]


@pytest.mark.helm
def test_size_and_storage_class_of_the_claims_and_the_cap_follow_them() -> None:
    values = {"deadLetter": {"persistence": {"size": "20Gi", "storageClass": "managed-csi-premium"}}}
    (claim,) = statefulset(values)["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert claim["spec"]["storageClassName"] == "managed-csi-premium"
    assert rendered_config(values)["dead_letter"]["max_total_bytes"] == 16 * GIB
    big = {"deadLetter": {"persistence": {"size": "2Ti"}}}
    assert rendered_config(big)["dead_letter"]["max_total_bytes"] == int(2 * 1024 * GIB * 0.8)


@pytest.mark.helm
def test_a_cap_given_in_config_is_kept_but_must_stay_below_the_volume() -> None:
    kept = rendered_config({"config": with_config(max_total_bytes=5 * GIB)})
    assert kept["dead_letter"]["max_total_bytes"] == 5 * GIB
    with pytest.raises(
        helm_python.HelmError,
        match=r"max_total_bytes 10737418240 is not below the dead-letter volume's 10737418240 ",
    ):
        render({"config": with_config(max_total_bytes=10 * GIB)})


@pytest.mark.helm
def test_turning_the_claim_off_without_saying_the_data_is_lost_is_refused() -> None:
    with pytest.raises(helm_python.HelmError, match=r"deadLetter\.ephemeralLosesDataWithThePod"):
        render({"deadLetter": {"persistence": {"enabled": False}}})


@pytest.mark.helm
@pytest.mark.parametrize("persistence", [True, False])
def test_an_ephemeral_dead_letter_is_explicit_size_limited_and_warned_about(persistence: bool) -> None:
    values = {
        "deadLetter": {
            "persistence": {"enabled": persistence},
            "ephemeralLosesDataWithThePod": True,
            "ephemeralSizeLimit": "512Mi",
        }
    }
    spec = statefulset(values)["spec"]
    assert "volumeClaimTemplates" not in spec and "persistentVolumeClaimRetentionPolicy" not in spec
    (volume,) = [v for v in spec["template"]["spec"]["volumes"] if v["name"] == "dead-letter"]
    assert volume == {"name": "dead-letter", "emptyDir": {"sizeLimit": "512Mi"}}
    # The ingestor pauses before the kubelet's eviction at the sizeLimit.
    assert rendered_config(values)["dead_letter"]["max_total_bytes"] == 512 * 1_048_576 * 4 // 5
    text = notes(values)
    assert "WARNING: deadLetter.ephemeralLosesDataWithThePod is true" in text
    assert "sizeLimit 512Mi" in text and "DELETED WITH THE POD" in text


@pytest.mark.helm
def test_a_kafka_dead_letter_needs_no_volume() -> None:
    values = SCENARIOS["connection-string"]
    assert values["config"]["dead_letter"]["type"] == "kafka"
    spec = statefulset(values)["spec"]
    assert "volumeClaimTemplates" not in spec
    pod = spec["template"]["spec"]
    assert "dead-letter" not in {v["name"] for v in pod["volumes"]}
    assert "dead-letter" not in {m["name"] for m in pod["containers"][0]["volumeMounts"]}
    assert "max_total_bytes" not in rendered_config(values)["dead_letter"]
    assert "WARNING: deadLetter" not in notes(values)


@pytest.mark.helm
@pytest.mark.parametrize("bad", ["10G", "10", "1.5Gi", "0Gi", "ten"])
def test_volume_sizes_the_chart_cannot_compute_with_are_refused(bad: str) -> None:
    with pytest.raises(
        helm_python.HelmError, match=r"deadLetter\.persistence\.size is .*: write a whole number and Ki"
    ):
        render({"deadLetter": {"persistence": {"size": bad}}})


# -- autoscalers and alerts point at the StatefulSet and its pods ----------------------------------------------


@pytest.mark.helm
@pytest.mark.parametrize(("mode", "kind"), [("keda", "ScaledObject"), ("hpa", "HorizontalPodAutoscaler")])
def test_autoscalers_scale_the_statefulset(mode: str, kind: str) -> None:
    objects = manifests({"autoscaling": {"mode": mode}, "partitionCount": 6})
    (scaler,) = of_kind(objects, kind)
    (workload,) = of_kind(objects, "StatefulSet")
    target = scaler["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == ("apps/v1", "StatefulSet", FULLNAME)
    assert target["name"] == workload["metadata"]["name"] and "replicas" not in workload["spec"]


@pytest.mark.helm
@pytest.mark.node
def test_the_keda_scaler_still_validates_against_its_crd(validate_custom: Any) -> None:  # noqa: F811
    assert validate_custom(of_kind(manifests(SCENARIOS["keda"]), "ScaledObject")) == []


@pytest.mark.helm
def test_alerts_and_the_keda_query_select_the_statefulset_pods() -> None:
    objects = manifests({"autoscaling": {"mode": "keda"}, "prometheusRule": {"enabled": True}})
    (scaler,) = of_kind(objects, "ScaledObject")
    (rule,) = of_kind(objects, "PrometheusRule")
    expressions = [scaler["spec"]["triggers"][0]["metadata"]["query"]]
    expressions += [r["expr"] for group in rule["spec"]["groups"] for r in group["rules"]]
    patterns = {p for expr in expressions for p in re.findall(r'pod=~"([^"]+)"', expr)}
    assert patterns == {f"{FULLNAME}-[0-9]+"}
    (pattern,) = patterns
    replicas = VALUES["replicaCount"]
    assert all(re.fullmatch(pattern, f"{FULLNAME}-{ordinal}") for ordinal in range(replicas))
    assert not re.fullmatch(pattern, f"{FULLNAME}-canary-0")


# -- no API token in the pods ----------------------------------------------------------------------------------


@pytest.mark.helm
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_no_service_account_token_is_mounted_in_any_scenario(scenario: str) -> None:
    assert pod_spec(SCENARIOS[scenario])["automountServiceAccountToken"] is False


@pytest.mark.helm
def test_the_token_stays_off_with_a_service_account_the_chart_does_not_create() -> None:
    values = {"serviceAccount": {"create": False, "name": "shared"}}
    spec = pod_spec(values)
    assert spec["automountServiceAccountToken"] is False and spec["serviceAccountName"] == "shared"
    assert not of_kind(manifests(values), "ServiceAccount")


@pytest.mark.helm
def test_workload_identity_keeps_its_own_token() -> None:
    """The webhook injects the projected `azure-identity-token` volume itself; the chart must not add one, nor
    label the pods in a way that opts them out."""
    spec = pod_spec(SCENARIOS["workload-identity"])
    labels = statefulset(SCENARIOS["workload-identity"])["spec"]["template"]["metadata"]["labels"]
    assert labels["azure.workload.identity/use"] == "true"
    assert "azure-identity-token" not in {v["name"] for v in spec["volumes"]}
    text = (CHART_DIR / "templates" / "statefulset.yaml").read_text()
    assert "azure-identity-token" in text  # the comment beside automountServiceAccountToken says why it is safe


# -- NetworkPolicy ---------------------------------------------------------------------------------------------


def network_policy(values: dict[str, Any]) -> dict[str, Any]:
    (policy,) = of_kind(manifests(values), "NetworkPolicy")
    return policy


def ports(rule: dict[str, Any]) -> set[tuple[Any, str]]:
    return {(p["port"], p["protocol"]) for p in rule["ports"]}


@pytest.mark.helm
def test_no_network_policy_unless_asked() -> None:
    assert not of_kind(manifests(), "NetworkPolicy")
    assert "no NetworkPolicy" in notes({})


@pytest.mark.helm
def test_the_network_policy_allows_only_what_the_ingestor_needs() -> None:
    policy = network_policy({"networkPolicy": {"enabled": True}})
    spec = policy["spec"]
    pod_labels = statefulset()["spec"]["template"]["metadata"]["labels"]
    assert spec["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert spec["policyTypes"] == ["Ingress", "Egress"]

    (ingress,) = spec["ingress"]
    assert ports(ingress) == {("metrics", "TCP")}
    (peer,) = ingress["from"]
    assert peer == {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    container_ports = {p["name"]: p["containerPort"] for p in pod_spec()["containers"][0]["ports"]}
    assert container_ports == {"metrics": VALUES["metrics"]["port"]}

    dns, event_hubs, https = spec["egress"]
    assert ports(dns) == {(53, "UDP"), (53, "TCP")}
    assert dns["to"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
        }
    ]
    assert ports(event_hubs) == {(9093, "TCP"), (5671, "TCP"), (443, "TCP")}
    assert event_hubs["to"] == [{"ipBlock": {"cidr": "0.0.0.0/0"}}]
    assert ports(https) == {(443, "TCP")}


@pytest.mark.helm
def test_the_network_policy_is_configurable() -> None:
    extra = {"to": [{"ipBlock": {"cidr": "10.1.2.0/24"}}], "ports": [{"port": 9092, "protocol": "TCP"}]}
    values = {
        "networkPolicy": {
            "enabled": True,
            "metricsFrom": {
                "namespaceSelector": {"matchLabels": {"team": "observability"}},
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
            },
            "dns": {"to": []},
            "eventHubsCidrs": ["10.20.0.0/24"],
            "httpsCidrs": ["20.190.128.0/18", "10.20.0.0/24"],
            "extraEgress": [extra],
        },
        "metrics": {"port": 9500},
    }
    policy = network_policy(values)
    for version in KUBERNETES:
        kubernetes_validate.validate(policy, version, strict=True)
    (peer,) = policy["spec"]["ingress"][0]["from"]
    assert peer == {
        "namespaceSelector": {"matchLabels": {"team": "observability"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
    }
    dns, event_hubs, https, added = policy["spec"]["egress"]
    assert "to" not in dns and ports(dns) == {(53, "UDP"), (53, "TCP")}  # any resolver (NodeLocal DNSCache)
    assert event_hubs["to"] == [{"ipBlock": {"cidr": "10.20.0.0/24"}}]
    assert https["to"] == [{"ipBlock": {"cidr": "20.190.128.0/18"}}, {"ipBlock": {"cidr": "10.20.0.0/24"}}]
    assert added == extra
    assert pod_spec(values)["containers"][0]["ports"][0] == {
        "name": "metrics",
        "containerPort": 9500,
        "protocol": "TCP",
    }


@pytest.mark.helm
@pytest.mark.parametrize(
    "bad",
    [
        {"eventHubsCidrs": ["servicebus.windows.net"]},
        {"httpsCidrs": []},
        {"metricsFrom": {"namespace": ""}},
        {"allowAll": True},
    ],
)
def test_network_policy_mistakes_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(helm_python.HelmError, match="networkPolicy"):
        render({"networkPolicy": {"enabled": True, **bad}})


# -- secrets ---------------------------------------------------------------------------------------------------


def test_every_secret_of_the_configuration_has_a_secret_reference() -> None:
    """Derived from the configuration models: a new secret key fails this until the chart can take it."""
    assert set(SECRET_VALUES) == set(SECRET_PATHS)
    assert set(SECRET_VALUES.values()) <= set(VALUES["existingSecret"])


@pytest.mark.helm
def test_each_secret_is_injected_from_the_secret_and_never_rendered() -> None:
    keys = {value_key: f"key-{i}" for i, value_key in enumerate(SECRET_VALUES.values())}
    values = {"existingSecret": {"name": "ingestor-secrets", **keys}}
    env = {e["name"]: e for e in pod_spec(values)["containers"][0]["env"]}
    for path, value_key in SECRET_VALUES.items():
        item = env[env_name(path)]
        assert "value" not in item, path
        assert item["valueFrom"] == {"secretKeyRef": {"name": "ingestor-secrets", "key": keys[value_key]}}, path
    objects = manifests(values)
    assert not of_kind(objects, "Secret")
    assert all("key-" not in str(c["data"]) for c in of_kind(objects, "ConfigMap"))


@pytest.mark.helm
def test_only_the_secrets_asked_for_are_injected() -> None:
    env = pod_spec(SCENARIOS["hardened"])["containers"][0]["env"]
    from_secrets = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in env if "secretKeyRef" in e.get("valueFrom", {})}
    assert from_secrets == {
        "INGESTOR_SOURCE__CONNECTION_STRING": {
            "name": "defender-ingestor-secrets",
            "key": "eventhubs-connection-string",
        },
        "INGESTOR_SOURCE__CHECKPOINT_STORE__CONNECTION_STRING": {
            "name": "defender-ingestor-secrets",
            "key": "storage-connection-string",
        },
    }
    plain = {e["name"] for e in pod_spec()["containers"][0]["env"]}
    assert plain == {"POD_NAME"}


@pytest.mark.helm
def test_a_secret_key_without_the_secret_name_is_refused() -> None:
    with pytest.raises(
        helm_python.HelmError,
        match=r"existingSecret\.staticTokenKey is set but existingSecret\.name is empty: name the Secret",
    ):
        render({"existingSecret": {"staticTokenKey": "token"}})


def config_with(path: tuple[str, ...], value: str) -> dict[str, Any]:
    config = copy.deepcopy(VALUES["config"])
    node = config
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value
    return config


@pytest.mark.helm
@pytest.mark.parametrize("path", sorted(SECRET_VALUES), ids=".".join)
def test_a_secret_inline_is_refused_with_the_value_to_use(path: tuple[str, ...]) -> None:
    with pytest.raises(helm_python.HelmError) as refused:
        render({"config": config_with(path, SECRET)})
    message = str(refused.value)
    assert f"config.{'.'.join(path)} holds a secret" in message and "remove it from config" in message
    assert f"existingSecret.{SECRET_VALUES[path]}" in message and "existingSecret.name" in message
    assert env_name(path) in message
    assert "c2VjcmV0" not in message  # the error does not repeat the secret


@pytest.mark.helm
@pytest.mark.parametrize("path", sorted(SECRET_VALUES), ids=".".join)
def test_the_placeholder_provision_writes_for_a_secret_is_taken_with_its_secret(path: tuple[str, ...]) -> None:
    """`provision` writes `${INGESTOR_...}` for a secret: the chart keeps it (the pod's variable replaces it) when
    the Secret is given, and otherwise says which values to set."""
    config = config_with(path, f"${{{env_name(path)}}}")
    with pytest.raises(helm_python.HelmError) as refused:
        render({"config": config})
    message = str(refused.value)
    assert "the placeholder provision writes" in message
    assert f"existingSecret.name and existingSecret.{SECRET_VALUES[path]}" in message
    values = {"config": config, "existingSecret": {"name": "ingestor-secrets", SECRET_VALUES[path]: "key"}}
    node = rendered_config(values)
    for part in path:
        node = node[part]
    assert node == f"${{{env_name(path)}}}"
    env = {e["name"]: e for e in pod_spec(values)["containers"][0]["env"]}
    assert env[env_name(path)]["valueFrom"]["secretKeyRef"] == {"name": "ingestor-secrets", "key": "key"}
    # An `env` entry from a Secret of the user's own does as well.
    own = {
        "config": config,
        "env": [{"name": env_name(path), "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
    }
    assert rendered_config(own)


@pytest.mark.helm
def test_a_secret_environment_variable_with_a_literal_value_is_refused() -> None:
    literal = {"env": [{"name": "INGESTOR_SINK__CREDENTIAL__TOKEN", "value": "hunter2"}]}
    with pytest.raises(
        helm_python.HelmError,
        match=r"env\[0\] INGESTOR_SINK__CREDENTIAL__TOKEN has a literal value.*valueFrom\.secretKeyRef.*"
        r"existingSecret\.staticTokenKey",
    ) as refused:
        render(literal)
    assert "hunter2" not in str(refused.value)
    from_secret = {
        "env": [
            {
                "name": "INGESTOR_SINK__CREDENTIAL__TOKEN",
                "valueFrom": {"secretKeyRef": {"name": "s", "key": "token"}},
            },
            {"name": "INGESTOR_LOG_LEVEL", "value": "DEBUG"},
        ]
    }
    env = {e["name"]: e for e in pod_spec(from_secret)["containers"][0]["env"]}
    assert env["INGESTOR_LOG_LEVEL"]["value"] == "DEBUG"
    assert env["INGESTOR_SINK__CREDENTIAL__TOKEN"]["valueFrom"]["secretKeyRef"]["key"] == "token"


@pytest.mark.helm
def test_lint_passes_for_the_hardened_values() -> None:
    values = {
        "networkPolicy": {"enabled": True},
        "existingSecret": {"name": "s", "connectionStringKey": "cs"},
        "deadLetter": {"persistence": {"storageClass": "managed-csi"}},
    }
    report = helm_python.lint(str(CHART_DIR), values, strict=True, kube_version=f"v{KUBERNETES[0]}")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []
