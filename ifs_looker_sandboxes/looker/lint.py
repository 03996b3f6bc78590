"""A small LookML validator for `POST /projects/{id}/validate`.

Real Looker validates a project's LookML from its git checkout. The sandbox checks
what most often breaks generated LookML: unbalanced blocks, explores and joins that
name views that do not exist, and `${view.field}` / `${field}` references to fields
that are not declared. Errors come back as Looker `ProjectError` objects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

BLOCK = re.compile(r"\b(view|explore|join|dimension|dimension_group|measure)\s*:\s*(\w+)\s*\{")
REFERENCE = re.compile(r"\$\{([^}]*)\}")
FROM = re.compile(r"\bfrom\s*:\s*(\w+)")
TIMEFRAMES = re.compile(r"\btimeframes\s*:\s*\[([^\]]*)\]")
FIELD_KINDS = ("dimension", "dimension_group", "measure")


@dataclass
class Block:
    kind: str
    name: str
    file: str
    line: int
    text: str = ""
    children: list[Block] = field(default_factory=list)


def _error(file: str, line: int, message: str) -> dict:
    return {
        "code": "lookml_error",
        "severity": "error",
        "kind": "error",
        "message": message,
        "sanitized_message": message,
        "file_path": file,
        "line_number": line,
        "model_id": None,
        "explore": None,
        "field_name": None,
        "help_url": None,
        "params": None,
    }


def _parse(path: Path, root: Path, errors: list[dict]) -> list[Block]:
    """Top-level blocks of one file, with nested blocks and their raw text."""
    name = str(path.relative_to(root))
    text = REFERENCE.sub(lambda m: "$" + "_" * (len(m.group(0)) - 1), path.read_text("utf-8"))
    original = path.read_text("utf-8")
    tops: list[Block] = []
    stack: list[tuple[Block | None, int]] = []
    pos = 0
    while pos < len(text):
        opening = BLOCK.search(text, pos)
        brace = min((i for i in (text.find("{", pos), text.find("}", pos)) if i >= 0), default=-1)
        if brace < 0:
            break
        line = text.count("\n", 0, brace) + 1
        if opening is not None and opening.end() - 1 == brace:
            block = Block(opening.group(1), opening.group(2), name, line)
            parent = stack[-1][0] if stack else None
            (parent.children if parent else tops).append(block)
            stack.append((block, opening.end()))
        elif text[brace] == "{":
            stack.append((None, brace + 1))
        else:
            if not stack:
                errors.append(_error(name, line, "Unexpected '}' with no open block"))
            else:
                block, start = stack.pop()
                if block is not None:
                    block.text = original[start:brace]
        pos = brace + 1
    for block, _ in stack:
        if block is not None:
            errors.append(_error(name, block.line, f"{block.kind} '{block.name}' is not closed"))
    return tops


def _field_names(view: Block) -> set[str]:
    names: set[str] = set()
    for child in view.children:
        if child.kind == "dimension_group":
            frames = TIMEFRAMES.search(child.text)
            for frame in (frames.group(1) if frames else "raw,date").split(","):
                names.add(f"{child.name}_{frame.strip()}")
        elif child.kind in FIELD_KINDS:
            names.add(child.name)
    return names


def lint_project(directory: Path) -> list[dict]:
    """ProjectError dicts for every problem found in the `.lkml` files under `directory`."""
    errors: list[dict] = []
    blocks = [b for p in sorted(directory.rglob("*.lkml")) for b in _parse(p, directory, errors)]
    views = {b.name: b for b in blocks if b.kind == "view"}
    fields = {name: _field_names(view) for name, view in views.items()}
    for view in views.values():
        for child in view.children:
            for ref in REFERENCE.findall(child.text):
                if ref != "TABLE" and "." not in ref and ref not in fields[view.name]:
                    errors.append(
                        _error(view.file, child.line, f"Unknown field '{ref}' in view {view.name}")
                    )
    for explore in (b for b in blocks if b.kind == "explore"):
        base = FROM.search(explore.text.split("join:")[0])
        aliases = {explore.name: base.group(1) if base else explore.name}
        for join in (c for c in explore.children if c.kind == "join"):
            source = FROM.search(join.text)
            aliases[join.name] = source.group(1) if source else join.name
        for alias, view_name in aliases.items():
            if view_name not in views:
                errors.append(
                    _error(explore.file, explore.line, f"View '{view_name}' (as {alias}) not found")
                )
        for ref in REFERENCE.findall(explore.text):
            alias, _, name = ref.partition(".")
            view_name = aliases.get(alias)
            if view_name is None or name not in fields.get(view_name, set()):
                errors.append(
                    _error(explore.file, explore.line, f"Unknown field '{ref}' in {explore.name}")
                )
    return errors
