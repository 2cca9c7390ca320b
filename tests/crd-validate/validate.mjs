// Reads a JSON array of Kubernetes objects on stdin and validates each custom resource against the schema of its
// CRD (kubernetes-models, generated from the Prometheus Operator and KEDA CRDs). Prints a JSON array of
// {kind, name, error} and exits 1 when any object fails or has a kind this script does not know.
import { PodMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";
import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject";

const MODELS = {
  "monitoring.coreos.com/v1/PodMonitor": PodMonitor,
  "monitoring.coreos.com/v1/PrometheusRule": PrometheusRule,
  "monitoring.coreos.com/v1/ServiceMonitor": ServiceMonitor,
  "keda.sh/v1alpha1/ScaledObject": ScaledObject,
};

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const problems = [];
for (const object of JSON.parse(Buffer.concat(chunks).toString("utf8"))) {
  const key = `${object.apiVersion}/${object.kind}`;
  const name = object.metadata?.name ?? "";
  const Model = MODELS[key];
  if (!Model) {
    problems.push({ kind: key, name, error: "no CRD schema for this kind" });
    continue;
  }
  try {
    new Model(object).validate();
  } catch (error) {
    problems.push({ kind: key, name, error: error.message });
  }
}
console.log(JSON.stringify(problems));
process.exit(problems.length ? 1 : 0);
