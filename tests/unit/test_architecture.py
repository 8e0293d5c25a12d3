"""The shape of the tree, checked: rooms import only downward, and modules and functions stay
small enough to read (issue: architecture step).

Direction (README, layout): the domain package `lifecycle` imports no room; `serving`,
`reporting` and `monitoring` import only the domain; `flows` imports the domain and the rooms it
orchestrates; `deployments` imports flows; `ops` (the CLI and local tooling) sits on top.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ROOMS = ("lifecycle", "serving", "reporting", "monitoring", "flows", "deployments", "ops")
MAY_IMPORT = {
    "lifecycle": set(),
    "serving": {"lifecycle"},
    "reporting": {"lifecycle"},
    "monitoring": {"lifecycle"},
    "flows": {"lifecycle", "serving", "reporting", "monitoring"},
    "deployments": {"lifecycle", "flows"},
    "ops": set(ROOMS),
}
# A string that names a module of a room ("serving.app:create_app", "-m reporting.nginx") is
# an import too: uvicorn factories, `python -m` commands and entry points resolve it.
_MODULE_STRING = re.compile(rf"(?:^|\s|-m\s+)({'|'.join(ROOMS)})(?:\.[a-z_]+)+(?::\w+)?(?:\s|$)")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _python_files(*tops: str) -> list[Path]:
    return sorted(p for top in tops for p in (ROOT / top).rglob("*.py"))


def _docstring_nodes(tree: ast.AST) -> set[int]:
    """ids of the docstring constants (prose that mentions modules is not an import)."""
    found = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
            found.add(id(first.value))
    return found


def _imported_rooms(path: Path) -> list[tuple[int, str, str]]:
    """(line, target room, what) for every import of another room in `path`."""
    tree = ast.parse(path.read_text())
    docstrings = _docstring_nodes(tree)
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
        ):
            names = [m.group(0).strip() for m in _MODULE_STRING.finditer(node.value)]
        for name in names:
            top = name.removeprefix("-m").strip().split(".")[0]
            if top in ROOMS:
                found.append((node.lineno, top, name))
    return found


def test_rooms_import_only_downward() -> None:
    wrong = []
    for room in ROOMS:
        for path in _python_files(room):
            for line, target, what in _imported_rooms(path):
                if target != room and target not in MAY_IMPORT[room]:
                    wrong.append(f"{path.relative_to(ROOT)}:{line}: {room} -> {what}")
    assert not wrong, "imports against the direction:\n" + "\n".join(wrong)


def test_the_direction_check_sees_imports_and_module_strings(tmp_path: Path) -> None:
    # Guards the guard: an upward import, a lazy import and a uvicorn factory string are seen.
    probe = tmp_path / "probe.py"
    probe.write_text(
        '"""Talks about serving.app:create_app in prose only."""\n'
        "import flows.train\n"
        "def f():\n"
        "    from monitoring import exporter\n"
        "    return ['-m', 'reporting.nginx'], 'serving.app:create_app'\n"
    )
    targets = sorted(target for _, target, _ in _imported_rooms(probe))
    assert targets == ["flows", "monitoring", "reporting", "serving"], targets


@pytest.mark.parametrize("top", [*ROOMS, "tests", "bench"])
def test_no_module_over_400_lines_and_no_function_over_60(top: str) -> None:
    long_modules, long_functions = [], []
    for path in _python_files(top):
        text = path.read_text()
        name = path.relative_to(ROOT)
        if text.count("\n") > MAX_MODULE_LINES:
            long_modules.append(f"{name}: {text.count(chr(10))} lines")
        if top == "bench":  # benchmark scripts are exempt from the function limit
            continue
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long_functions.append(f"{name}:{node.lineno} {node.name}: {length} lines")
    assert not long_modules, f"modules over {MAX_MODULE_LINES} lines: {long_modules}"
    assert not long_functions, f"functions over {MAX_FUNCTION_LINES} lines: {long_functions}"
