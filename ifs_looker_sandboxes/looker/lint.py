"""A small LookML validator for `POST /projects/{id}/validate`.

Real Looker validates a project's LookML from its git checkout. The sandbox checks
what most often breaks generated LookML: its structure (blocks that do not close, a
`}` too many, SQL blocks not ended by `;;`, unterminated strings, a field or view
declared twice), explores and joins that name views that do not exist, and
`${view.field}` / `${field}` references to fields that are not declared. Errors come
back as Looker `ProjectError` objects.

It parses LookML as Looker does: `name: value` pairs, where a value is a word, a
quoted string (with `\\"` and `\\\\` escapes), a `[list]`, a block `name { ... }`, or, for
SQL-valued parameters (`sql`, `sql_on`, `sql_table_name`, `html`, ...), everything up
to `;;`, braces and quotes included. `#` starts a comment outside values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

REFERENCE = re.compile(r"\$\{([^}]*)\}")
FROM = re.compile(r"\bfrom\s*:\s*(\w+)")
TIMEFRAMES = re.compile(r"\btimeframes\s*:\s*\[([^\]]*)\]")
FIELD_KINDS = ("dimension", "dimension_group", "measure")
_KEY = re.compile(r"(\w+)\s*:\s*")
_WORD = re.compile(r"[^\s{}\[\]\"#]+")
_SPACE = re.compile(r"[ \t]*")
# parameters whose value is SQL, HTML or a Looker expression: it runs to `;;`
_TO_DOUBLE_SEMICOLON = re.compile(r"sql\w*|\w+_sql|html|expression|\w+_expression")


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


class _Parser:
    """One file's top-level blocks, with nested blocks and each block's raw text."""

    def __init__(self, text: str, file: str, errors: list[dict]) -> None:
        self.text, self.file, self.errors = text, file, errors
        self.tops: list[Block] = []
        self.stack: list[tuple[Block, int]] = []

    def line(self, pos: int) -> int:
        return self.text.count("\n", 0, pos) + 1

    def error(self, pos: int, message: str) -> None:
        self.errors.append(_error(self.file, self.line(pos), message))

    def parse(self) -> list[Block]:
        text, pos = self.text, 0
        while pos < len(text):
            char = text[pos]
            if char.isspace():
                pos += 1
            elif char == "#":
                pos = self._line_end(pos)
            elif char == "}":
                self._close(pos)
                pos += 1
            else:
                pos = self._pair(pos)
        for block, _ in self.stack:
            self.errors.append(
                _error(self.file, block.line, f"{block.kind} '{block.name}' is not closed")
            )
        return self.tops

    def _line_end(self, pos: int) -> int:
        end = self.text.find("\n", pos)
        return len(self.text) if end < 0 else end + 1

    def _close(self, pos: int) -> None:
        if not self.stack:
            self.error(pos, "Unexpected '}' with no open block")
            return
        block, start = self.stack.pop()
        block.text = self.text[start:pos]

    def _pair(self, pos: int) -> int:
        """One `name: value` (or `kind: name {` opening a block); returns where it ends."""
        text = self.text
        key = _KEY.match(text, pos)
        if key is None:
            self.error(pos, f"Unexpected {text[pos]!r}: expected 'name: value'")
            return self._line_end(pos)
        name, pos = key.group(1), key.end()
        if _TO_DOUBLE_SEMICOLON.fullmatch(name):
            end = text.find(";;", pos)
            if end < 0:
                self.error(key.start(), f"{name} is not ended by ';;'")
                return len(text)
            return end + 2
        if pos >= len(text):
            self.error(key.start(), f"{name} has no value")
            return pos
        if text[pos] == '"':
            return self._string(pos)
        if text[pos] == "[":
            end = text.find("]", pos)
            if end < 0:
                self.error(pos, f"{name}: '[' is not closed")
                return len(text)
            return end + 1
        if text[pos] == "{":
            self._open(name, "", key.start(), pos + 1)
            return pos + 1
        word = _WORD.match(text, pos)
        if word is None:
            self.error(pos, f"{name}: unexpected {text[pos]!r}")
            return pos + 1
        after = _SPACE.match(text, word.end()).end()
        if after < len(text) and text[after] == "{":
            self._open(name, word.group(0), key.start(), after + 1)
            return after + 1
        return word.end()

    def _string(self, pos: int) -> int:
        text, index = self.text, pos + 1
        while index < len(text) and text[index] not in '"\n':
            index += 2 if text[index] == "\\" else 1
        if index >= len(text) or text[index] != '"':
            self.error(pos, "Unterminated string")
            return index
        return index + 1

    def _open(self, kind: str, name: str, pos: int, body: int) -> None:
        block = Block(kind, name, self.file, self.line(pos))
        parent = self.stack[-1][0] if self.stack else None
        (parent.children if parent else self.tops).append(block)
        self.stack.append((block, body))


def _parse(path: Path, root: Path, errors: list[dict]) -> list[Block]:
    """Top-level blocks of one file, with nested blocks and their raw text."""
    return _Parser(path.read_text("utf-8"), str(path.relative_to(root)), errors).parse()


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
    views: dict[str, Block] = {}
    for view in (b for b in blocks if b.kind == "view"):
        if view.name in views:
            errors.append(_error(view.file, view.line, f"View '{view.name}' is declared twice"))
        views[view.name] = view
        declared: set[str] = set()
        for child in (c for c in view.children if c.kind in FIELD_KINDS):
            if child.name in declared:
                errors.append(
                    _error(
                        view.file,
                        child.line,
                        f"Field '{child.name}' is declared twice in view {view.name}",
                    )
                )
            declared.add(child.name)
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
