"""The shape of the tree, checked: rooms import only downward, the domain package has no import
cycle and its sub-packages import in one direction, each external client has one door, and
modules and functions stay small enough to read (issue: architecture step; issue 29).

Direction between rooms (README, layout): the domain package `lifecycle` imports no room;
`serving`, `reporting` and `monitoring` import only the domain; `flows` imports the domain and the
rooms it orchestrates; `deployments` imports flows; `ops` (the CLI and local tooling) sits on top.

Direction inside `lifecycle`, lowest first (each sub-package imports only itself and those before
it; counted over every import, inside functions and under TYPE_CHECKING too):

    core       settings, errors, times, events, waiting, metric names: imports nothing of ours
    model      the model format (feature spec + booster), its pyfunc, metrics, batch scoring
    stores     the MLflow registry (it loads predictors, tags metrics), the prediction store,
               its documents and journal
    data       the sources, and the production rows read from the prediction store
    training   the search, its trials and the refit candidate, on the data's split
    decisions  the gate (on a training candidate) and the live experiments

Doors: MongoDB's client is built only by the prediction store, MLflow's client is built and
called only by the registry modules, and boto3's only by the Kinesis client and the S3 data source.
"""

from __future__ import annotations

import ast
import fnmatch
import re
from collections.abc import Iterator
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
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 60
# Modules written before the 300-line limit keep the old one until they are split; tests and
# benchmarks keep it too.
OLD_MAX_MODULE_LINES = 400
KNOWN_LONG_MODULES: set[str] = set()  # issue 29 split the last of them
OLD_LIMIT_TOPS = ("tests", "bench")

LAYERS = ("core", "model", "stores", "data", "training", "decisions")  # lowest first
# The one way in for each external client: the modules where a call may appear (fnmatch patterns).
# tests/ and bench/ build their own clients to seed and inspect the servers, and are exempt.
_MLFLOW_METHODS = (
    "set_registered_model_alias|delete_registered_model_alias|get_model_version_by_alias|"
    "get_model_version|get_registered_model|create_registered_model|set_model_version_tag|"
    "search_model_versions|register_model|search_runs|create_run|log_batch|"
    "get_experiment_by_name|create_experiment"
)
REGISTRY_DOOR = ("lifecycle/stores/registry*.py",)
STORE_DOOR = ("lifecycle/stores/prediction_store.py",)
DOORS = {
    r"(^|\.)MongoClient$": STORE_DOOR,
    r"(^|\.)PredictionStore$": STORE_DOOR,  # elsewhere: PredictionStore.open(settings, purpose)
    r"(^|\.)MlflowClient$": REGISTRY_DOOR,
    r"(^|\.)registry\.client$": REGISTRY_DOOR,  # the client does not leave the door
    rf"\.({_MLFLOW_METHODS})$": REGISTRY_DOOR,
    # Kinesis in the stream consumer; the S3 data source may read its bucket through boto3 too.
    r"(^|\.)boto3\.client$": ("serving/stream/kinesis.py", "lifecycle/data/sources.py"),
}


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


def _line_limit(top: str, name: str) -> int:
    if top in OLD_LIMIT_TOPS or name in KNOWN_LONG_MODULES:
        return OLD_MAX_MODULE_LINES
    return MAX_MODULE_LINES


@pytest.mark.parametrize("top", [*ROOMS, "tests", "bench"])
def test_no_module_over_its_line_limit_and_no_function_over_60(top: str) -> None:
    long_modules, long_functions = [], []
    for path in _python_files(top):
        text = path.read_text()
        name = path.relative_to(ROOT).as_posix()
        limit = _line_limit(top, name)
        if text.count("\n") > limit:
            long_modules.append(f"{name}: {text.count(chr(10))} lines (limit {limit})")
        if top == "bench":  # benchmark scripts are exempt from the function limit
            continue
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long_functions.append(f"{name}:{node.lineno} {node.name}: {length} lines")
    assert not long_modules, f"modules over their line limit: {long_modules}"
    assert not long_functions, f"functions over {MAX_FUNCTION_LINES} lines: {long_functions}"


def test_known_long_modules_still_exist_and_are_still_long() -> None:
    # An exception outlives its reason quietly: once a module is split (or gone), drop it here.
    stale = [
        name
        for name in sorted(KNOWN_LONG_MODULES)
        if not (ROOT / name).exists() or (ROOT / name).read_text().count("\n") <= MAX_MODULE_LINES
    ]
    assert not stale, f"no longer long, remove from KNOWN_LONG_MODULES: {stale}"


# -- inside lifecycle: cycles and the direction of its sub-packages ------------------------------
def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_modules(path: Path, module: str, known: set[str]) -> set[str]:
    """The modules of `known` that `path` (module `module`) imports, at any depth (inside
    functions, under TYPE_CHECKING)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, `level - 1` packages up
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import name`: the sub-module pkg.name when there is one, else pkg itself.
            names = [f"{base}.{alias.name}" for alias in node.names]
            modules = [name for name in names if name in known]
            targets = modules if len(modules) == len(names) else [*modules, base]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target:
                found.add(target)
    found.discard(module)
    return found


def _import_graph(top: str) -> dict[str, set[str]]:
    files = {_module_name(path): path for path in _python_files(top)}
    return {name: _imported_modules(path, name, set(files)) for name, path in files.items()}


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module (import cycles)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _layer(module: str) -> str | None:
    """The sub-package of a lifecycle module (None for `lifecycle` itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_lifecycle_has_no_import_cycle() -> None:
    cycles = _strongly_connected(_import_graph("lifecycle"))
    assert not cycles, "import cycles in lifecycle/:\n" + "\n".join(map(" <-> ".join, cycles))


def test_lifecycle_is_only_sub_packages_of_a_declared_layer() -> None:
    top = ROOT / "lifecycle"
    flat = sorted(p.name for p in top.glob("*.py") if p.name != "__init__.py")
    packages = sorted(p.name for p in top.iterdir() if (p / "__init__.py").exists())
    assert not flat, f"modules directly in lifecycle/ (put them in a sub-package): {flat}"
    assert sorted(LAYERS) == packages, f"declare each sub-package in LAYERS: {packages}"


def test_lifecycle_sub_packages_import_only_downward() -> None:
    wrong = []
    for module, targets in _import_graph("lifecycle").items():
        here = _layer(module)
        for target in sorted(targets):
            there = _layer(target)
            if there is None:
                continue  # the package's own __init__: a docstring and a version
            if here is None or LAYERS.index(there) > LAYERS.index(here):
                wrong.append(f"{module} ({here}) -> {target} ({there})")
    assert not wrong, f"imports against {' <- '.join(LAYERS)}:\n" + "\n".join(wrong)


def test_the_graph_sees_lazy_and_type_checking_imports_and_finds_cycles(tmp_path: Path) -> None:
    # Guards the guard: imports inside functions, under TYPE_CHECKING and relative ones count.
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from typing import TYPE_CHECKING\n"
        "from lifecycle.core import settings\n"
        "if TYPE_CHECKING:\n"
        "    from lifecycle.decisions.gate import GateDecision\n"
        "def f():\n"
        "    import lifecycle.stores.registry\n"
        "    from lifecycle.data.sources import load_dataset\n"
    )
    known = {_module_name(p) for p in _python_files("lifecycle")}
    assert _imported_modules(probe, "lifecycle.core.probe", known) == {
        "lifecycle.core.settings",
        "lifecycle.decisions.gate",
        "lifecycle.stores.registry",
        "lifecycle.data.sources",
    }
    relative = tmp_path / "relative.py"
    relative.write_text("from . import times\nfrom ..stores.journal import JournalEntry\n")
    assert _imported_modules(relative, "lifecycle.core.relative", known) == {
        "lifecycle.core.times",
        "lifecycle.stores.journal",
    }
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _strongly_connected(graph) == [["a", "b", "c"]]


# -- doors: one way in for each external client --------------------------------------------------
def _calls(path: Path) -> Iterator[tuple[int, str]]:
    """(line, dotted callee) of every call in `path`, with imported names spelled out in full
    (`from boto3 import client as c; c()` is `boto3.client`)."""
    tree = ast.parse(path.read_text())
    full: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):  # `import a.b` binds `a`; `import a.b as c` binds a.b
            for alias in node.names:
                if alias.asname:
                    full[alias.asname] = alias.name
                else:
                    full[alias.name.split(".")[0]] = alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                full[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            parts, func = [], node.func
            while isinstance(func, ast.Attribute | ast.Call):  # a.b().c(): through the call
                if isinstance(func, ast.Attribute):
                    parts.append(func.attr)
                func = func.value if isinstance(func, ast.Attribute) else func.func
            parts.append(full.get(func.id, func.id) if isinstance(func, ast.Name) else "?")
            yield node.lineno, ".".join(reversed(parts))


def _door_breaches(path: Path, name: str) -> list[str]:
    found = []
    for line, callee in _calls(path):
        for pattern, doors in DOORS.items():
            if re.search(pattern, callee) and not any(fnmatch.fnmatch(name, d) for d in doors):
                found.append(f"{name}:{line}: {callee}() outside {', '.join(doors)}")
    return found


def test_external_clients_are_built_and_called_only_behind_their_doors() -> None:
    breaches = []
    for room in ROOMS:
        for path in _python_files(room):
            breaches += _door_breaches(path, path.relative_to(ROOT).as_posix())
    assert not breaches, "calls outside their door:\n" + "\n".join(breaches)


def test_the_door_check_sees_aliases_and_client_methods(tmp_path: Path) -> None:
    # Guards the guard: aliased imports, a client's methods and a module-qualified call are seen.
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import pymongo\n"
        "from boto3 import client as aws\n"
        "from lifecycle.stores import registry\n"
        "def f(settings):\n"
        "    pymongo.MongoClient('mongodb://x')\n"
        "    aws('kinesis')\n"
        "    registry.client(settings).set_registered_model_alias('m', 'champion', '1')\n"
        "    registry.set_alias('champion', '1', settings)\n"
    )
    seen = sorted(b.split(": ", 1)[1].split("()")[0] for b in _door_breaches(probe, "ops/p.py"))
    assert seen == [
        "boto3.client",
        "lifecycle.stores.registry.client",
        "lifecycle.stores.registry.client.set_registered_model_alias",
        "pymongo.MongoClient",
    ]
    # Behind the registry's door only MongoDB's and boto3's clients are out of place.
    assert len(_door_breaches(probe, "lifecycle/stores/registry_runs.py")) == 2
