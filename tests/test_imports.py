"""The import graph of src/trainlab points one way (DESIGN.md, "Layers of the system").

Built with ast over every module, imports at module level and inside functions alike (imports
under `if TYPE_CHECKING:` never run and are left out); an import of a package's submodule is an
edge to that submodule, not to the packages above it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "trainlab"

# Function-local imports of trainlab modules in modules outside this test's owner's area, left for
# their owners (remove an entry once the module is fixed; the test fails on a stale entry).
KNOWN_LOCAL_IMPORTS: dict[str, str] = {}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _targets(node: ast.Import | ast.ImportFrom, current: str, is_package: bool) -> list[str]:
    """The trainlab modules an import statement loads (submodules resolved, relative made
    absolute)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "trainlab"]
    base = node.module or ""
    if node.level:
        parts = current.split(".")
        parts = parts if is_package else parts[:-1]
        parts = parts[: len(parts) - (node.level - 1)]
        base = ".".join(parts + ([base] if base else []))
    if base.split(".")[0] != "trainlab":
        return []
    found = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES]
    return found if len(found) == len(node.names) else [*found, base]


def imports_of(name: str) -> list[tuple[str, int, bool, str]]:
    """(target module, line, inside a function, the source line) for each trainlab import."""
    path = MODULES[name]
    source = path.read_text()
    lines = source.splitlines()
    out: list[tuple[str, int, bool, str]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    visit(sub, in_function)
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                for target in _targets(child, name, path.name == "__init__.py"):
                    out.append((target, child.lineno, in_function, lines[child.lineno - 1]))
            inner = in_function or isinstance(
                child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
            )
            visit(child, inner)

    visit(ast.parse(source), False)
    return out


GRAPH = {name: imports_of(name) for name in MODULES}
EDGES = {name: {t for t, *_ in GRAPH[name] if t in MODULES and t != name} for name in MODULES}


def in_area(module: str, *areas: str) -> bool:
    return any(module == a or module.startswith(a + ".") for a in areas)


def test_the_graph_is_read():
    assert "trainlab.engine.trainer" in MODULES and "trainlab.experiments.api" in MODULES
    assert "trainlab.engine.state" in EDGES["trainlab.engine.trainer"]
    assert "trainlab.engine.trainer" in EDGES["trainlab.experiments.single"]


def test_no_import_cycle():
    """Tarjan's strongly connected components: every one is a single module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def connect(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(EDGES[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(MODULES):
        if v not in index:
            connect(v)
    assert cycles == []


LEAVES = ("trainlab.errors", "trainlab.version", "trainlab.smoothing", "trainlab.divergence")
ABOVE_ENGINE = (
    "trainlab.experiments",
    "trainlab.search",
    "trainlab.dashboard",
    "trainlab.landscape",
    "trainlab.cli",
    "trainlab.commands",
    "trainlab.report",
)
RULES = [
    # (who, must import only / must not import, areas, why)
    (
        ("trainlab.optim", "trainlab.schedules"),
        "only",
        ("trainlab.optim", "trainlab.errors", "trainlab.names"),
        "optim and schedules import only torch, the standard library, trainlab.errors and "
        "trainlab.names",
    ),
    (
        ("trainlab.errors", "trainlab.version", "trainlab.smoothing", "trainlab.divergence"),
        "only",
        LEAVES,
        "the shared leaves import only each other",
    ),
    (("trainlab.locking",), "only", LEAVES, "the lock helper is a leaf"),
    (
        ("trainlab.data",),
        "not",
        ("trainlab.nn", "trainlab.engine", *ABOVE_ENGINE),
        "data never imports nn, train or anything above",
    ),
    (("trainlab.engine",), "not", ABOVE_ENGINE, "the engine never imports what runs it"),
    (
        ("trainlab.report",),
        "only",
        ("trainlab.report", *LEAVES),
        "report never imports train (it reads records, not trainers)",
    ),
    (
        ("trainlab.experiments",),
        "not",
        ("trainlab.search", "trainlab.dashboard", "trainlab.cli", "trainlab.commands"),
        "search uses the experiments, never the other way",
    ),
    (
        ("trainlab.dashboard",),
        "not",
        ("trainlab.cli", "trainlab.commands", "trainlab.experiments", "trainlab.landscape"),
        "the dashboard only reads runs and studies; it runs nothing",
    ),
]


@pytest.mark.parametrize("who,kind,areas,why", RULES, ids=[r[3] for r in RULES])
def test_layers(who, kind, areas, why):
    wrong = []
    for name in MODULES:
        if not in_area(name, *who):
            continue
        for target, line, _, _ in GRAPH[name]:
            allowed = in_area(target, *areas) if kind == "only" else not in_area(target, *areas)
            if not allowed and not in_area(target, *who):
                wrong.append(f"{name}:{line} imports {target}")
    assert wrong == [], why


def test_nothing_below_imports_the_cli():
    cli = ("trainlab.cli", "trainlab.commands", "trainlab.__main__")
    wrong = [
        f"{name}:{line} imports {target}"
        for name in MODULES
        if not in_area(name, *cli)
        for target, line, _, _ in GRAPH[name]
        if in_area(target, *cli)
    ]
    assert wrong == []


def test_only_its_command_imports_the_dashboard():
    wrong = [
        f"{name}:{line} imports {target}"
        for name in MODULES
        if not in_area(name, "trainlab.dashboard", "trainlab.commands.dashboard")
        for target, line, _, _ in GRAPH[name]
        if in_area(target, "trainlab.dashboard")
    ]
    assert wrong == []


def _says_why(source_line: str) -> bool:
    """A comment on the line with words besides a noqa directive."""
    _, hash_, comment = source_line.partition("#")
    comment = re.sub(r"noqa(:\s*[A-Z]+\d+(,\s*[A-Z]+\d+)*)?", "", comment)
    return bool(hash_) and bool(re.search(r"[a-z]{3}", comment))


def test_function_local_imports_say_why():
    """A trainlab import inside a function only with a reason on its line (an optional heavy
    package, say); never just to break a cycle."""
    found: dict[str, list[str]] = {}
    for name in MODULES:
        for _target, line, local, text in GRAPH[name]:
            if local and not _says_why(text):
                found.setdefault(name, []).append(f"{name}:{line} {text.strip()}")
    unknown = {k: v for k, v in found.items() if k not in KNOWN_LOCAL_IMPORTS}
    assert unknown == {}
    stale = sorted(set(KNOWN_LOCAL_IMPORTS) - set(found))
    assert stale == [], "fixed: remove these entries from KNOWN_LOCAL_IMPORTS"


def test_optimizers_and_schedules_need_only_torch():
    """Outside trainlab, optim/ and schedules.py import torch and the standard library only."""
    import sys

    wrong = []
    for name, path in MODULES.items():
        if not in_area(name, "trainlab.optim", "trainlab.schedules"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                roots = [node.module.split(".")[0]]
            else:
                continue
            wrong += [
                f"{name}:{node.lineno} imports {r}"
                for r in roots
                if r not in ("torch", "trainlab", "__future__") and r not in sys.stdlib_module_names
            ]
    assert wrong == []
