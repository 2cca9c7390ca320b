"""Writes helm/ingestor/README.md from the chart's values.yaml: every key with its `# --` comment, type and default.

`python helm/readme.py` writes the file; `python helm/readme.py --check` exits 1 when it is stale. The comment
format is helm-docs': `# -- text` above a key (continued by further `#` lines), `# @default -- text` to describe
a default instead of printing it.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parent / "ingestor"
_KEY = re.compile(r"^(\s*)([A-Za-z0-9_]+):")


def documented_keys(text: str) -> list[tuple[str, str, str | None]]:
    """(dotted key, description, default description) for each key that has a `# --` comment."""
    found: list[tuple[str, str, str | None]] = []
    path: list[tuple[int, str]] = []
    comment: list[str] | None = None
    default: str | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("# @default --"):
            default = stripped.removeprefix("# @default --").strip()
            continue
        if stripped.startswith("# --"):
            comment = [stripped.removeprefix("# --").strip()]
            continue
        if stripped.startswith("#") and comment is not None:
            comment.append(stripped.lstrip("#").strip())
            continue
        match = _KEY.match(line)
        if match is None:
            if not stripped:
                comment, default = None, None
            continue
        indent, key = len(match.group(1)), match.group(2)
        path = [(i, k) for i, k in path if i < indent] + [(indent, key)]
        if comment is not None:
            found.append((".".join(k for _, k in path), " ".join(comment), default))
        comment, default = None, None
    return found


def lookup(values: dict[str, Any], dotted: str) -> Any:
    node: Any = values
    for part in dotted.split("."):
        node = node[part]
    return node


def type_name(value: Any) -> str:
    return {bool: "bool", int: "int", float: "float", str: "string", list: "list", dict: "object"}.get(
        type(value), "string"
    )


def readme() -> str:
    text = (CHART / "values.yaml").read_text(encoding="utf-8")
    values = yaml.safe_load(text)
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    lines = [
        f"# {chart['name']}",
        "",
        f"{chart['description']}.",
        "",
        f"Chart version {chart['version']}, app version {chart['appVersion']}, Kubernetes {chart['kubeVersion']}.",
        "The deployment guide is `docs/deployment.md` in the repository.",
        "",
        "This file is generated from `values.yaml` by `make helm-docs`; edit the comments there.",
        "",
        "## Values",
        "",
        "| Key | Type | Default | Description |",
        "| --- | --- | --- | --- |",
    ]
    for key, description, default in documented_keys(text):
        value = lookup(values, key)
        shown = default if default is not None else f"`{json.dumps(value)}`"
        cell = description.replace("|", "\\|")
        lines.append(f"| `{key}` | {type_name(value)} | {shown} | {cell} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    target = CHART / "README.md"
    wanted = readme()
    if "--check" in sys.argv[1:]:
        if not target.is_file() or target.read_text(encoding="utf-8") != wanted:
            print(f"{target} is stale: run `make helm-docs`", file=sys.stderr)
            return 1
        return 0
    target.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
