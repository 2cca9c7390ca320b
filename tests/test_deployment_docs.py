"""docs/deployment.md's path, run as written: step 4's configuration and commands (`provision`, the deployment's
outputs, `provision --outputs`, `check-config`), then step 6's shell line that builds the values file and its
`helm install`; the configuration the chart renders, with the pod's environment, passes `check-config` and keeps the
provisioned endpoint and every DCR id. And every configuration block of README.md and docs/*.md passes
`check-config`. The worked example of retention is docs/retention.md's, the configuration example
docs/configuration.md's.

The blocks are read from the Markdown (docblocks.py) and run by bash. Azure and the cluster are the only parts
stood in for, by `az` and `helm` programs on the PATH (`az_main`, `helm_main` below): `az deployment group create
... --query properties.outputs` prints the outputs of the template it is given, shaped as the real one prints them,
and `helm install` renders the chart with the real Helm library (helm-python-sdk), its `-f` and `--set` flags
parsed by Helm's own parsers. `ingestor` is the installed command.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml
from docblocks import Block, blocks_under, fenced_blocks
from helm_python import Chart
from test_helm import check_rendered_config

from ingestor.config import Config, parse_config
from ingestor.provision.arm import DCR_TYPE, ENDPOINT_OUTPUT, RULE_IDS_OUTPUT, resources_of
from ingestor.provision.template import build_template
from ingestor_tools.emulator.dcr import deployment_outputs

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "deployment.md"
README = ROOT / "README.md"
RETENTION_DOC = ROOT / "docs" / "retention.md"
CONFIG_DOC = ROOT / "docs" / "configuration.md"
STEP_4, STEP_6 = "4. Provision Log Analytics", "6. helm install"
# The guide's placeholders ("The names below ... are placeholders"), replaced as a user replaces them: whole words
# in the configuration and the commands. Namespace `defender` and release `ingestor` are kept, as the guide allows.
PLACEHOLDERS = {
    "NS": "contoso-defender",
    "RG": "rg-contoso-defender",
    "WS": "log-contoso-sentinel",
    "AKS": "aks-contoso",
    "REGISTRY": "contosoacr",
}
# What step 3 left in the shell: the identity's ids.
STEP_3_SHELL = {
    "CLIENT_ID": "6f0e2a52-1c3b-4d8e-9a7f-0b1c2d3e4f50",
    "PRINCIPAL_ID": "1b7e4c2d-8f3a-4e6b-9c1d-2a5f7e9b3c4d",
}
# The region part of the data collection endpoint's host the stand-in deployment reports.
DCE_HOST = "{prefix}-dce-x7k2.westeurope-1.ingest.monitor.azure.com"
# ARM prints an output's type capitalised, whatever case the template declares it in.
ARM_OUTPUT_TYPES = {"string": "String", "object": "Object", "array": "Array", "int": "Int", "bool": "Bool"}


def substituted(text: str) -> str:
    return re.sub(r"\b(" + "|".join(PLACEHOLDERS) + r")\b", lambda m: PLACEHOLDERS[m.group(1)], text)


def only(blocks: list[Block], what: str) -> Block:
    assert len(blocks) == 1, f"docs/deployment.md changed shape: expected one {what}, found {len(blocks)}"
    return blocks[0]


def step_4() -> tuple[Block, Block]:
    """Step 4's configuration block and its command block."""
    config = only(blocks_under(GUIDE, STEP_4, "yaml"), f"yaml block under {STEP_4!r}")
    commands = only(blocks_under(GUIDE, STEP_4, "sh"), f"sh block under {STEP_4!r}")
    return config, commands


def step_6() -> Block:
    """Step 6's first command block: the values file and `helm install`."""
    blocks = blocks_under(GUIDE, STEP_6, "sh")
    assert blocks, f"docs/deployment.md changed shape: no sh block under {STEP_6!r}"
    block = blocks[0]
    assert 'echo "config:"' in block.text and "helm install" in block.text, (
        f"{block.where()}: expected the line that builds values-config.yaml and the helm install command"
    )
    return block


def worked_example_retention() -> str:
    (block,) = [b for b in fenced_blocks(RETENTION_DOC) if b.info == "yaml" and b.headings[-1:] == ("Worked example",)]
    assert yaml.safe_load(block.text).keys() == {"retention"}
    return block.text


# -- the stand-ins for Azure Resource Manager and the cluster ------------------------------------------------------


def arm_outputs(template: dict[str, Any], parameters: dict[str, str]) -> dict[str, Any]:
    """What `az deployment group create ... --query properties.outputs` prints for `template`: each declared output
    as `{"type": <ARM's capitalised type>, "value": ...}`, with an endpoint and immutable ids shaped as Azure's."""
    prefix = parameters.get("namePrefix", template["parameters"]["namePrefix"].get("defaultValue"))
    outputs = {}
    for name, output in template["outputs"].items():
        if name == ENDPOINT_OUTPUT:
            value: Any = "https://" + DCE_HOST.format(prefix=prefix)
        elif name == RULE_IDS_OUTPUT:
            value = {key: "dcr-" + hashlib.md5(f"{prefix}/{key}".encode()).hexdigest() for key in output["value"]}
        else:
            raise AssertionError(f"the template declares an output the stand-in deployment does not know: {name}")
        outputs[name] = {"type": ARM_OUTPUT_TYPES[output["type"].lower()], "value": value}
    return outputs


def az_main(argv: list[str]) -> int:
    """`az deployment group create`: checks the arguments as az would and prints the template's outputs."""
    if argv[:3] != ["deployment", "group", "create"]:
        print(f"the stand-in az runs only `az deployment group create`, not `az {' '.join(argv)}`", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(prog="az deployment group create")
    parser.add_argument("--resource-group", "-g", required=True)
    parser.add_argument("--template-file", "-f", type=Path, required=True)
    parser.add_argument("--parameters", "-p", nargs="+", action="extend", default=[])
    parser.add_argument("--query", required=True)
    args = parser.parse_args(argv[3:])
    if args.query != "properties.outputs":
        print(f"--query {args.query}: the guide's is properties.outputs", file=sys.stderr)
        return 2
    template = json.loads(args.template_file.read_text(encoding="utf-8"))
    given = dict(p.split("=", 1) for p in args.parameters)
    declared = template["parameters"]
    unknown = sorted(set(given) - set(declared))
    missing = sorted(n for n, p in declared.items() if "defaultValue" not in p and n not in given)
    if unknown or missing or not all(given.values()):
        print(f"parameters: unknown {unknown}, missing {missing}, or empty: {given}", file=sys.stderr)
        return 1
    print(json.dumps(arm_outputs(template, given), indent=2))
    return 0


def merge_values(into: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """Helm's merge of values files and `--set` maps: nested maps merge, anything else is replaced."""
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge_values(into[key], value)
        else:
            into[key] = value
    return into


def helm_main(argv: list[str]) -> int:
    """`helm install NAME CHART [flags]`: renders the chart with the real Helm library into $HELM_STANDIN_OUT."""
    if argv[:1] != ["install"] or len(argv) < 3:
        print(
            f"the stand-in helm runs only `helm install NAME CHART ...`, not `helm {' '.join(argv)}`", file=sys.stderr
        )
        return 2
    parser = argparse.ArgumentParser(prog="helm install")
    parser.add_argument("--namespace", "-n", default="default")
    parser.add_argument("--create-namespace", action="store_true")
    parser.add_argument("--values", "-f", action="append", default=[])
    parser.add_argument("--set", action="append", default=[])
    args = parser.parse_args(argv[3:])
    release, chart = argv[1], argv[2]
    values: dict[str, Any] = {}
    for path in args.values:  # Helm: the values files in order, then the --set flags in order
        merge_values(values, helm_python.values_from_yaml(Path(path).read_text(encoding="utf-8")))
    for expression in args.set:
        merge_values(values, helm_python.parse_set_string(expression))
    try:
        rendered = Chart.load(chart).render(values, name=release, namespace=args.namespace, is_install=True)
    except helm_python.HelmError as exc:
        print(f"Error: INSTALLATION FAILED: {exc}", file=sys.stderr)
        return 1
    Path(os.environ["HELM_STANDIN_OUT"]).write_text(
        json.dumps({"release": release, "namespace": args.namespace, "values": values, "rendered": rendered})
    )
    return 0


def install_stand_ins(bin_dir: Path) -> None:
    bin_dir.mkdir()
    for command, main in (("az", "az_main"), ("helm", "helm_main")):
        program = bin_dir / command
        program.write_text(
            f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(Path(__file__).parent)!r})\n"
            f"from test_deployment_docs import {main}\nsys.exit({main}(sys.argv[1:]))\n"
        )
        program.chmod(0o755)


def run_block(block: Block, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The block's commands run by bash as a user pastes them (stopping at the first that fails)."""
    done = subprocess.run(
        ["bash", "-e", "-u", "-o", "pipefail", "-c", substituted(block.text)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"{block.where()} failed (exit {done.returncode}):\n{done.stderr}"
    return done


def rule_ids_in(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {v for k, v in node.items() if k == "rule_id" and isinstance(v, str)}
        return found.union(*(rule_ids_in(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(rule_ids_in(v) for v in node))
    return set()


# -- the path ----------------------------------------------------------------------------------------------------


def configuration_example() -> str:
    """The Configuration example (docs/configuration.md): a whole configuration, with a `metrics` section."""
    (block,) = [b for b in fenced_blocks(CONFIG_DOC) if b.info == "yaml" and b.headings[-1:] == ("Configuration",)]
    assert "metrics" in yaml.safe_load(block.text)
    return block.text


@pytest.mark.process
@pytest.mark.parametrize("retention", ["default", "worked example", "configuration example"])
def test_the_documented_path_runs_as_written(retention: str, tmp_path: Path) -> None:
    """The guide's configuration with its default retention, with the worked example's classes and rules
    (docs/retention.md) in its `# retention: ...` line, and the Configuration example (docs/configuration.md) in its
    place (it has `metrics`)."""
    config_block, step_4_commands = step_4()
    config_text = substituted(config_block.text)
    assert "NS." not in config_text and "contoso-defender.servicebus.windows.net:9093" in config_text
    if retention == "configuration example":
        config_text = configuration_example()
    elif retention == "worked example":
        # The block's `# retention: ...` line is where the classes and rules go (docs/retention.md, Worked example).
        line = re.search(r"^# retention: .*$", config_text, re.M)
        assert line, f"{config_block.where()}: no `# retention: ...` line to put the classes and rules in"
        config_text = config_text.replace(line.group(0), worked_example_retention().rstrip("\n"))
    (tmp_path / "ingestor.yaml").write_text(config_text)
    (tmp_path / "helm").symlink_to(ROOT / "helm")  # the guide runs from the repository's root: ./helm/ingestor
    install_stand_ins(tmp_path / "bin")
    rendered_file = tmp_path / "rendered.json"
    env = {
        "PATH": os.pathsep.join([str(tmp_path / "bin"), str(Path(sys.executable).parent), "/usr/bin", "/bin"]),
        "HOME": str(tmp_path),
        "HELM_STANDIN_OUT": str(rendered_file),
        **STEP_3_SHELL,
    }

    # Step 4, and what it wrote.
    commands = re.sub(r"\\\n\s*", " ", step_4_commands.text).splitlines()
    assert [c.split(" --")[0] for c in commands if c.strip()] == [
        "ingestor provision",
        "az deployment group create",
        "ingestor provision",
        "ingestor check-config",
    ], f"{step_4_commands.where()} changed shape"
    run_block(step_4_commands, tmp_path, env)
    template = json.loads((tmp_path / "deploy" / "azuredeploy.json").read_text())
    outputs = json.loads((tmp_path / "deploy" / "outputs.json").read_text())
    assert outputs.keys() == template["outputs"].keys()
    assert all(o.keys() == {"type", "value"} and o["type"][0].isupper() for o in outputs.values())
    endpoint, rule_ids = outputs[ENDPOINT_OUTPUT]["value"], outputs[RULE_IDS_OUTPUT]["value"]
    assert re.fullmatch(r"https://[a-z0-9-]+\.westeurope-1\.ingest\.monitor\.azure\.com", endpoint)
    assert all(re.fullmatch(r"dcr-[0-9a-f]{32}", i) for i in rule_ids.values())
    assert len(rule_ids) == len(resources_of(template, DCR_TYPE))
    assert len(rule_ids) > 1  # every table in one class is 22, and a DCR holds 10 (docs/retention.md)
    provisioned = yaml.safe_load((tmp_path / "deploy" / "ingestor.yaml").read_text())
    assert provisioned["sink"]["endpoint"] == endpoint
    assert set(rule_ids.values()) <= rule_ids_in(provisioned)
    assert rule_ids_in(provisioned["retention"]["destinations"]) == set(rule_ids.values())

    # Step 6: the values file, then helm install with the guide's flags.
    run_block(step_6(), tmp_path, env)
    assert (tmp_path / "values-config.yaml").is_file()
    installed = json.loads(rendered_file.read_text())
    assert (installed["release"], installed["namespace"]) == ("ingestor", "defender")
    assert installed["values"]["config"] == provisioned
    rendered = installed["rendered"]
    objects = [
        doc for path, text in rendered.items() if path.endswith(".yaml") for doc in yaml.safe_load_all(text) if doc
    ]
    notes = rendered["ingestor/templates/NOTES.txt"]
    assert "NOTE: " not in notes, "the guide's configuration needs nothing replaced by the chart"
    assert "WARNING: workloadIdentity" not in notes
    (statefulset,) = [o for o in objects if o["kind"] == "StatefulSet"]
    pod = statefulset["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == "contosoacr.azurecr.io/defender-ingestor:0.1.0"
    assert statefulset["spec"]["replicas"] == 2
    (account,) = [o for o in objects if o["kind"] == "ServiceAccount"]
    assert account["metadata"]["annotations"]["azure.workload.identity/client-id"] == STEP_3_SHELL["CLIENT_ID"]

    # The pod's configuration: check-config with the pod's environment, the endpoint and every DCR id kept.
    done = check_rendered_config(objects, tmp_path, secrets={})
    assert done.returncode == 0, done.stderr
    effective = yaml.safe_load(done.stdout)
    assert effective["sink"]["endpoint"] == endpoint
    assert set(rule_ids.values()) <= rule_ids_in(effective)


def test_the_stand_in_deployment_prints_what_az_prints() -> None:
    """The shape `provision --outputs` is given: what the project's emulator also writes for a deployment."""
    config = yaml.safe_load(BASE_CONFIG)
    config["retention"] = yaml.safe_load(worked_example_retention())["retention"]
    template = build_template(parse_config(config))
    printed = arm_outputs(template, {})
    emulator = deployment_outputs("https://x", [])
    assert {k: v["type"] for k, v in printed.items()} == {k: v["type"] for k, v in emulator.items()}
    assert printed[RULE_IDS_OUTPUT]["value"].keys() == template["outputs"][RULE_IDS_OUTPUT]["value"].keys()


@pytest.mark.helm
def test_the_notes_line_the_guide_shows_is_the_charts() -> None:
    shown = re.findall(r"`(NOTE: [^`]*)`", " ".join(GUIDE.read_text(encoding="utf-8").split()))
    assert shown, "docs/deployment.md shows no NOTE line of the chart"
    port = re.search(r"config\.metrics\.port (\d+)", shown[0])
    assert port, shown[0]
    values = {"config": {"metrics": {"port": int(port.group(1))}}}
    rendered = Chart.load(ROOT / "helm" / "ingestor").render(values, name="ingestor", namespace="defender")
    printed = [line for line in rendered["ingestor/templates/NOTES.txt"].splitlines() if line.startswith("NOTE: ")]
    pattern = re.escape(shown[0]).replace(re.escape("..."), ".*")
    assert any(re.fullmatch(pattern, line) for line in printed), (shown, printed)


# -- every configuration block of the docs -----------------------------------------------------------------------

# A runnable configuration with realistic values. A block that holds `source`, `sink` and `dead_letter` is taken as
# it is; any other block is a fragment: each of its sections replaces the same section of this one.
BASE_CONFIG = """
source:
  type: kafka
  bootstrap_servers: ["contoso-defender.servicebus.windows.net:9093"]
  topics: [defender]
  group_id: defender-ingestor
  tls: true
  auth: {type: entra}
sink:
  type: logs_ingestion
  endpoint: https://defender-ingestor-dce-x7k2.westeurope-1.ingest.monitor.azure.com
  rule_id: dcr-6c1f0d9a3b7e4f2a8d5c0b1e9f3a7d24
dead_letter:
  type: file
  path: /var/lib/ingestor/dead-letter
"""
COMPLETE = {"source", "sink", "dead_letter"}
CONFIG_BLOCKS = [
    b for doc in (README, *sorted((ROOT / "docs").glob("*.md"))) for b in fenced_blocks(doc) if b.info == "yaml"
]


def is_step_4(block: Block) -> bool:
    return block.path == GUIDE and block.headings[-1:] == (STEP_4,)


def test_the_docs_show_configuration_blocks() -> None:
    assert len(CONFIG_BLOCKS) >= 5 and sum(map(is_step_4, CONFIG_BLOCKS)) == 1


def check_config(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "ingestor"), "check-config", "--config", str(path)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )


@pytest.mark.process
@pytest.mark.parametrize("block", [b for b in CONFIG_BLOCKS if not is_step_4(b)], ids=Block.where)
def test_every_configuration_block_passes_check_config(block: Block, tmp_path: Path) -> None:
    shown = yaml.safe_load(substituted(block.text))
    assert isinstance(shown, dict), f"{block.where()}: a yaml block must be a configuration (a mapping of sections)"
    unknown = set(shown) - set(Config.model_fields)
    assert not unknown, f"{block.where()}: {sorted(unknown)} are no configuration sections"
    config = shown if set(shown) >= COMPLETE else {**yaml.safe_load(BASE_CONFIG), **copy.deepcopy(shown)}
    path = tmp_path / "ingestor.yaml"
    path.write_text(yaml.safe_dump(config))
    done = check_config(path)
    assert done.returncode == 0, f"{block.where()}:\n{done.stderr}"


@pytest.mark.process
def test_the_step_4_configuration_is_provisioned_and_check_config_says_to_run_outputs(tmp_path: Path) -> None:
    """The block is what `provision` starts from; before `--outputs` neither it nor what provision wrote is a
    configuration to run, and check-config says so in one line."""
    config_block, _ = step_4()
    path = tmp_path / "ingestor.yaml"
    path.write_text(substituted(config_block.text))
    deploy = tmp_path / "deploy"
    provision = subprocess.run(
        [str(Path(sys.executable).parent / "ingestor"), "provision", "--config", str(path), "--out", str(deploy)],
        capture_output=True,
        text=True,
    )
    assert provision.returncode == 0, provision.stderr
    for unprovisioned in (path, deploy / "ingestor.yaml"):
        done = check_config(unprovisioned)
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert done.returncode == 2 and len(lines) == 1, f"{unprovisioned}:\n{done.stderr}"
        assert "provision" in lines[0] and "--outputs" in lines[0]
