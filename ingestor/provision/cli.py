"""`ingestor provision`: reads the configuration, writes the checked template and the resolved configuration
(`--out`), and analyzes a SOC's queries against the workspace they provision (`--check-queries`). The only
module of the package with I/O.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from ingestor.config import Config, env_name, load_config
from ingestor.errors import ConfigError
from ingestor.provision.azure_rules import check_template
from ingestor.provision.resolve import resolve_config, secrets_in
from ingestor.provision.template import DEFAULT_FUNCTION_NAME, build_template, explain_rules, plan_rules

TEMPLATE_FILE = "azuredeploy.json"
CONFIG_FILE = "ingestor.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True, help="the ingestor's YAML configuration")
    parser.add_argument("--out", type=Path, help=f"directory for {TEMPLATE_FILE} and {CONFIG_FILE}")
    parser.add_argument(
        "--check-queries",
        type=Path,
        metavar="DIR",
        help="analyze the queries in DIR (.kql/.txt files, Sentinel rule YAML, rule exports in JSON) against the "
        "workspace this configuration provisions and list those that would break or need what the retention "
        "configuration does not give (exit code 1); needs Node.js",
    )
    parser.add_argument(
        "--outputs", type=Path, help="the deployment's outputs (JSON), to fill the DCR ids into the configuration"
    )
    parser.add_argument(
        "--function-name",
        default=DEFAULT_FUNCTION_NAME,
        help="name pattern of the per-table union functions (default: %(default)s, the Defender table name)",
    )


def main(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    doc = yaml.safe_load(args.config.read_text(encoding="utf-8")) or {}
    outputs = None
    if args.outputs is not None:
        try:
            outputs = json.loads(args.outputs.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError([f"--outputs {args.outputs}: cannot read deployment outputs ({exc})"]) from exc
    if "{table}" not in args.function_name:
        raise ConfigError(["--function-name: the pattern must contain {table}"])
    if args.out is None and args.check_queries is None:
        raise ConfigError(["give --out DIR (write the template and configuration) or --check-queries DIR, or both"])
    template = build_template(config, function_name=args.function_name)
    problems = check_template(template)
    if problems:
        raise ConfigError([f"generated template breaks Azure's rules: {p}" for p in problems])
    written = 0 if args.out is None else _write(args, config, doc, template, outputs)
    if args.check_queries is None:
        return written
    from ingestor.provision.kql import Analyzer, database_from_template
    from ingestor.provision.query_check import check, needs, read_queries, report, report_findings

    queries = read_queries(args.check_queries)
    if not queries:
        raise ConfigError([f"--check-queries {args.check_queries}: no queries found (.kql, .txt, .yaml, .yml, .json)"])
    broken = report(check(queries, database_from_template(template), Analyzer()), sys.stdout)
    return max(broken, report_findings(needs(queries, config), sys.stdout))


def _write(
    args: argparse.Namespace, config: Config, doc: dict[str, Any], template: dict[str, Any], outputs: Any
) -> int:
    resolved = resolve_config(doc, config, outputs)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / TEMPLATE_FILE).write_text(json.dumps(template, indent=2) + "\n", encoding="utf-8")
    header = "# Written by `ingestor provision`. " + (
        "Values come from the deployment's outputs.\n"
        if outputs is not None
        else "Deploy azuredeploy.json, then run provision again with --outputs to fill in the ${...} values.\n"
    )
    withheld = secrets_in(doc)
    if withheld:
        header += "# Secrets are ${INGESTOR_...} placeholders: set those environment variables (e.g. from a Secret).\n"
    (args.out / CONFIG_FILE).write_text(header + yaml.safe_dump(resolved, sort_keys=False), encoding="utf-8")
    rules = plan_rules(config)
    count = sum(len(r.destinations) for r in rules)
    print(f"wrote {args.out / TEMPLATE_FILE}: {count} tables, {len(rules)} data collection rules", file=sys.stderr)
    for line in explain_rules(config, rules):
        print(f"  {line}", file=sys.stderr)
    print(f"wrote {args.out / CONFIG_FILE}" + ("" if outputs else " (placeholders until --outputs)"), file=sys.stderr)
    for path in withheld:
        env = env_name(path)
        print(f"{'.'.join(path)} is not written to {CONFIG_FILE}: set the environment variable {env}", file=sys.stderr)
    return 0
