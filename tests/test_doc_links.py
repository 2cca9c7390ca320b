"""The documentation's links resolve, and the README's "Deploy to Azure" path is docs/deployment.md's, in order, with
an image-build command the Dockerfile and the versions agree with."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted(
    [ROOT / "README.md", *ROOT.glob("docs/*.md"), ROOT / "helm/ingestor/README.md", *ROOT.glob("benchmarks/*.md")]
)
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.M | re.S)
HEADING = re.compile(r"^#{1,6} (.+)$", re.M)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation dropped (hyphens and underscores kept), spaces to `-`."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(FENCE.sub("", path.read_text(encoding="utf-8"))):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(path: Path) -> list[str]:
    return LINK.findall(FENCE.sub("", path.read_text(encoding="utf-8")))


def test_slug_follows_github() -> None:
    assert slug("6. helm install") == "6-helm-install"
    assert slug("Will my queries still work?") == "will-my-queries-still-work"
    assert slug("`ingestor provision` and `check-config`") == "ingestor-provision-and-check-config"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(doc: Path) -> None:
    broken = []
    for target in links(doc):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        path = (doc.parent / file_part).resolve() if file_part else doc
        if not path.exists():
            broken.append(f"{target}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{target}: no heading with that anchor in {path.relative_to(ROOT)}")
    assert not broken, f"{doc.relative_to(ROOT)}: " + "; ".join(broken)


def _deploy_section() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(r"^## Deploy to Azure\n(.*?)(?=^## )", readme, re.M | re.S)
    assert found, "README.md has no 'Deploy to Azure' section"
    return found.group(1)


def test_deploy_section_follows_the_deployment_guide_step_by_step() -> None:
    guide = ROOT / "docs/deployment.md"
    steps = [slug(h) for h in HEADING.findall(guide.read_text(encoding="utf-8")) if re.match(r"\d+\. ", h)]
    linked = [
        target.partition("#")[2] for target in links_in(_deploy_section()) if target.startswith("docs/deployment.md#")
    ]
    numbered = [anchor for anchor in linked if re.match(r"\d+-", anchor)]
    assert numbered == steps, "the README's numbered steps must link to every step of docs/deployment.md, in order"


def links_in(text: str) -> list[str]:
    return LINK.findall(FENCE.sub("", text))


def test_deploy_section_says_no_image_is_published_and_builds_one_as_the_guide_does() -> None:
    section = _deploy_section()
    assert "No image is published" in section
    commands = re.findall(r"^\s*(az acr build .+)$", section, re.M)
    assert len(commands) == 1
    command = commands[0].strip()
    assert command in (ROOT / "docs/deployment.md").read_text(encoding="utf-8")
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    chart = yaml.safe_load((ROOT / "helm/ingestor/Chart.yaml").read_text())
    build_args = dict(re.findall(r"--build-arg (\w+)=(\S+)", command))
    declared = set(re.findall(r"^ARG (\w+)", (ROOT / "Dockerfile").read_text(), re.M))
    assert set(build_args) <= declared, f"build args {set(build_args) - declared} are not ARGs of the Dockerfile"
    assert build_args["VERSION"] == version == chart["appVersion"]
    assert f":{version} " in command
