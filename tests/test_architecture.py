"""The layout rules a newcomer can rely on, checked so they cannot quietly erode.

- No module of ours is named like a standard-library module (an `http.py` once made
  `python ifs_looker/demo.py` fail with "'http' is not a package").
- Private singer-sdk names (underscore modules, functions and attributes) are used in
  one adapter module per plugin, `sdk_adapter.py`, and nowhere else: an SDK upgrade
  then breaks one module and its contract test, not a production run.
- `ifs-looker sandbox` and `ifs-looker --help` load neither the SDK nor the warehouse
  drivers. (The import direction between the layers is checked by `make lint`.)
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import singer_sdk

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = (
    "ifs_looker_core",
    "tap_ifscloud",
    "target_looker",
    "ifs_looker",
    "ifs_looker_sandboxes",
)
ADAPTERS = {"tap_ifscloud/sdk_adapter.py", "target_looker/sdk_adapter.py"}
SDK_ROOT = Path(singer_sdk.__file__).parent


def project_modules() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def sdk_private_names() -> set[str]:
    """Every `_name` (not dunder) the SDK defines: functions, methods, attributes it assigns."""
    names: set[str] = set()
    for path in SDK_ROOT.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def sdk_classes_in(tree: ast.Module) -> set[str]:
    """Local names bound to imports from singer_sdk or from an SDK adapter module."""
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (
            (node.module or "").startswith("singer_sdk")
            or (node.module or "").endswith("sdk_adapter")
        ):
            bound.update(alias.asname or alias.name for alias in node.names)
    return bound


def private_sdk_uses(path: Path, private: set[str]) -> list[str]:
    """Private SDK names a module uses: imports, overrides in SDK subclasses, self-access."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("singer_sdk"):
            if any(part.startswith("_") for part in node.module.split(".")):
                found.append(f"import from {node.module}")
            found += [f"import {a.name}" for a in node.names if a.name.startswith("_")]
    sdk_names = sdk_classes_in(tree)
    for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
        bases = {ast.unparse(b).split(".")[0] for b in cls.bases}
        if not bases & (sdk_names | {"singer_sdk"}):
            continue
        for node in ast.walk(cls):
            if isinstance(node, ast.FunctionDef) and node.name in private:
                found.append(f"{cls.name} overrides {node.name}")
            elif (
                isinstance(node, ast.Attribute)
                and node.attr in private
                and isinstance(node.value, ast.Name)
                and node.value.id in ("self", "cls")
            ):
                found.append(f"{cls.name} uses self.{node.attr}")
    return sorted(set(found))


def test_no_module_shadows_the_standard_library() -> None:
    shadowing = [
        str(path.relative_to(ROOT))
        for path in project_modules()
        if path.stem in sys.stdlib_module_names
    ]
    assert shadowing == []


def test_private_sdk_names_are_used_only_in_the_adapter_modules() -> None:
    private = sdk_private_names()
    offenders = {
        str(path.relative_to(ROOT)): uses
        for path in project_modules()
        if str(path.relative_to(ROOT)) not in ADAPTERS and (uses := private_sdk_uses(path, private))
    }
    assert offenders == {}


@pytest.mark.parametrize("adapter", sorted(ADAPTERS))
def test_each_adapter_declares_every_private_name_it_uses(adapter: str) -> None:
    """The adapter's PRIVATE_SDK_NAMES (what its contract test checks) is complete."""
    module_name = adapter.removesuffix(".py").replace("/", ".")
    module = __import__(module_name, fromlist=["PRIVATE_SDK_NAMES"])
    declared = {name.rsplit(".", 1)[-1] for name in module.PRIVATE_SDK_NAMES}
    used = set()
    for use in private_sdk_uses(ROOT / adapter, sdk_private_names()):
        used.update(re.findall(r"\b(_[A-Za-z]\w*)", use))
    assert used <= declared, f"{adapter} uses {sorted(used - declared)} without declaring them"


def loaded_top_packages(code: str) -> set[str]:
    report = "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    probe = f"{code}\nimport json, sys\n{report}"
    output = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    return set(json.loads(output.splitlines()[-1]))


@pytest.mark.parametrize(
    "argv", [["sandbox", "--port", "0"], ["--help"], ["secrets", "generate-key"]]
)
def test_light_commands_load_neither_the_sdk_nor_warehouse_drivers(argv: list[str]) -> None:
    code = (
        "import contextlib, io\n"
        "from ifs_looker.cli import build_parser, selected_command\n"
        f"argv = {argv!r}\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    build_parser(selected_command(argv)).parse_args(argv)\n"
    )
    heavy = {"singer_sdk", "sqlalchemy", "psycopg", "duckdb", "pyarrow"}
    assert loaded_top_packages(code) & heavy == set()


def test_operations_scripts_run_as_files() -> None:
    """Running a module by path puts its folder first on sys.path: nothing there may shadow."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "ifs_looker" / "demo.py"), "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "usage" in result.stdout
