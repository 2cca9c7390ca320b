r"""The fenced code blocks and the tables of a Markdown file, each with the headings it sits under, for tests that run
or parse what the docs show. Reads the subset of CommonMark the docs use: ATX headings (`## ...`), fenced blocks
opened by three or more backticks or tildes (indented inside list items or not) and closed by the same fence, and
pipe tables (a header row, a `| --- |` row, then rows; `\|` inside a cell is a pipe).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t]*#*[ \t]*$")
_FENCE = re.compile(r"^([ \t]*)(`{3,}|~{3,})[ \t]*([^`\s]*)")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the opening fence, counted from 1
    info: str  # the language after the fence: sh, yaml, ...
    text: str  # the content, the fence's indentation removed
    headings: tuple[str, ...]  # the headings it is under, outermost first

    def where(self) -> str:
        return f"{self.path.name}:{self.line} (under {' > '.join(self.headings) or 'no heading'})"


def fenced_blocks(path: Path) -> list[Block]:
    blocks: list[Block] = []
    headings: list[tuple[int, str]] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        fence = _FENCE.match(line)
        heading = _HEADING.match(line)
        if fence:
            indent, marker, info = fence.groups()
            closing = re.compile(rf"^[ \t]*{re.escape(marker[0])}{{{len(marker)},}}[ \t]*$")
            body: list[str] = []
            start = index
            index += 1
            while index < len(lines) and not closing.match(lines[index]):
                body.append(lines[index].removeprefix(indent))
                index += 1
            text = "\n".join(body) + "\n"
            blocks.append(Block(path, start + 1, info, text, tuple(h for _, h in headings)))
        elif heading:
            level = len(heading.group(1))
            headings = [(lv, h) for lv, h in headings if lv < level] + [(level, heading.group(2))]
        index += 1
    return blocks


def blocks_under(path: Path, heading: str, info: str | None = None) -> list[Block]:
    """The blocks directly under `heading` (not under a deeper heading inside it), of one language if given."""
    found = [b for b in fenced_blocks(path) if b.headings and b.headings[-1] == heading]
    return [b for b in found if info is None or b.info == info]


@dataclass(frozen=True)
class Table:
    path: Path
    line: int  # of the header row, counted from 1
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    headings: tuple[str, ...]

    def where(self) -> str:
        return f"{self.path.name}:{self.line} (under {' > '.join(self.headings) or 'no heading'})"


def _cells(line: str) -> tuple[str, ...]:
    inner = line.strip().removeprefix("|").removesuffix("|").replace("\\|", "\0")
    return tuple(cell.strip().replace("\0", "|") for cell in inner.split("|"))


def tables(path: Path) -> list[Table]:
    """The pipe tables outside fenced blocks, with the headings they are under."""
    found: list[Table] = []
    headings: list[tuple[int, str]] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    fence: re.Pattern[str] | None = None
    index = 0
    while index < len(lines):
        line = lines[index]
        opening = _FENCE.match(line)
        heading = _HEADING.match(line)
        if fence is not None:
            if fence.match(line):
                fence = None
        elif opening:
            marker = opening.group(2)
            fence = re.compile(rf"^[ \t]*{re.escape(marker[0])}{{{len(marker)},}}[ \t]*$")
        elif heading:
            level = len(heading.group(1))
            headings = [(lv, h) for lv, h in headings if lv < level] + [(level, heading.group(2))]
        elif line.startswith("|") and index + 1 < len(lines) and re.fullmatch(r"\|( *:?-+:? *\|)+", lines[index + 1]):
            start, rows = index, []
            index += 2
            while index < len(lines) and lines[index].startswith("|"):
                rows.append(_cells(lines[index]))
                index += 1
            found.append(Table(path, start + 1, _cells(line), tuple(rows), tuple(h for _, h in headings)))
            continue
        index += 1
    return found
