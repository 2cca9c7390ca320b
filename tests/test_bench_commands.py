"""Every `make bench BENCH_ARGS=...` the docs show is one the benchmark harness takes: parsed by its own argument
parser (`benchmarks/harness.py` `arguments`), with the input's table weights it names."""

from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "benchmarks").glob("*.md"))]
# `BENCH_ARGS=--profile` or `BENCH_ARGS="--mix device"`, inside a `make bench` command or on its own.
BENCH_ARGS = re.compile(r'BENCH_ARGS=(?:"([^"]*)"|(\S+?))(?=`|\s|$)')


def harness() -> ModuleType:
    spec = importlib.util.spec_from_file_location("harness", ROOT / "benchmarks" / "harness.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def documented() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        for match in BENCH_ARGS.finditer(" ".join(doc.read_text(encoding="utf-8").split())):
            found.append((doc.name, match.group(1) if match.group(1) is not None else match.group(2)))
    return found


def test_the_docs_show_benchmark_arguments() -> None:
    shown = {args for _, args in documented()}
    assert {"--profile", "--mix device"} <= shown, shown
    assert any(args.startswith("--mix ") and "=" in args for args in shown), "a tenant's own weights"


@pytest.mark.parametrize(("doc", "args"), documented())
def test_each_documented_benchmark_command_parses(doc: str, args: str) -> None:
    parsed, mix = harness().arguments(shlex.split(args))
    assert mix and all(weight >= 0 for weight in mix.values()), (doc, args)
    if "=" in parsed.mix:  # weights by table name: each one the docs name is in the input
        assert set(mix) == {item.split("=")[0] for item in parsed.mix.split(",")}, (doc, args)


def test_a_misspelt_table_in_the_mix_is_refused_naming_the_valid_ones(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        harness().arguments(["--mix", "DeviceProcesEvents=3"])
    assert exit_.value.code == 2
    assert "unknown table 'DeviceProcesEvents'" in capsys.readouterr().err
