"""The Helm chart rendered with the real Helm library (helm-python-sdk): manifests as parsed objects, the
ConfigMap's configuration, the notes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from helm_python import Chart

CHART_DIR = Path(__file__).resolve().parent.parent / "helm" / "ingestor"
RELEASE, NAMESPACE = "defender", "security"


def render(values: dict[str, Any] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Rendered manifests by template path; each file may hold several documents (empty ones dropped)."""
    chart = Chart.load(CHART_DIR)
    rendered = chart.render(values or {}, name=RELEASE, namespace=NAMESPACE, is_install=True)
    return {
        path: [doc for doc in yaml.safe_load_all(text) if doc]
        for path, text in rendered.items()
        if path.endswith((".yaml", ".yml", ".json"))
    }


def notes(values: dict[str, Any] | None = None) -> str:
    """The NOTES.txt that `helm install` prints."""
    rendered = Chart.load(CHART_DIR).render(values or {}, name=RELEASE, namespace=NAMESPACE, is_install=True)
    return str(rendered["ingestor/templates/NOTES.txt"])


def rendered_config(values: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ingestor configuration in the rendered ConfigMap."""
    (configmap,) = [c for c in of_kind(manifests(values), "ConfigMap") if "ingestor.yaml" in c["data"]]
    config: dict[str, Any] = yaml.safe_load(configmap["data"]["ingestor.yaml"])
    return config


def manifests(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every rendered object."""
    return [doc for docs in render(values).values() for doc in docs]


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o.get("kind") == kind]


def ci_values() -> dict[str, dict[str, Any]]:
    """The `ci/*-values.yaml` scenarios by file stem."""
    return {
        p.name.removesuffix("-values.yaml"): yaml.safe_load(p.read_text())
        for p in sorted((CHART_DIR / "ci").glob("*-values.yaml"))
    }
