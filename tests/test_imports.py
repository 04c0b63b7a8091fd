"""The import graph of src/trainlab points one way (DESIGN.md, "Layers of the system").

Built with ast over every module, imports at module level, inside functions and under
`if TYPE_CHECKING:` alike (a type-only import is still an arrow between modules); an import of a
package's submodule is an edge to that submodule, not to the packages above it. The order of the
layers is written once, below, as data (LAYERS); every module of src/trainlab must belong to one.
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


def run_python(code: str, timeout: float = 120, cwd: Path | None = None) -> str:
    """Run `code` in a fresh interpreter (what it imports is all its own); its stdout,
    stripped. A non-zero exit fails the test with the interpreter's stderr."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, cwd=cwd
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


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


# The layers, lowest first (DESIGN.md, "Layers of the system"): a module may import modules of
# its own layer and of the layers below, never above. Each entry is (layer, module areas).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "leaves",
        (
            "trainlab.errors",
            "trainlab.version",
            "trainlab.names",
            "trainlab.smoothing",
            "trainlab.divergence",
            "trainlab.locking",
            "trainlab.dotted",
            "trainlab.lazy",
            "trainlab.optimizer_defaults",
        ),
    ),
    ("runs: the run directory's one owner", ("trainlab.rundir",)),
    ("optim and schedules", ("trainlab.optim", "trainlab.schedules")),
    ("config", ("trainlab.config",)),
    ("plugin loading", ("trainlab.plugins",)),
    ("data", ("trainlab.data",)),
    ("nn", ("trainlab.nn",)),
    ("engine", ("trainlab.engine",)),
    ("report", ("trainlab.report",)),
    ("experiments", ("trainlab.experiments",)),
    ("search: the space and its config", ("trainlab.search.space", "trainlab.search.config")),
    ("search: strategies (pure samplers)", ("trainlab.search.strategies",)),
    ("search: the study", ("trainlab.search.study",)),
    ("search: the optimize() API", ("trainlab.search.optimize", "trainlab.search")),
    ("search: running (driver, cooperation, re-tests)", ("trainlab.search.running",)),
    ("dashboard", ("trainlab.dashboard",)),
    ("landscape", ("trainlab.landscape",)),
    ("the Python API's front door", ("trainlab", "trainlab.api")),
    ("commands", ("trainlab.commands",)),
    ("cli", ("trainlab.cli", "trainlab.__main__")),
]


# areas that name one package's __init__ only, not the modules under it
EXACT = {"trainlab", "trainlab.search"}


def layer_of(module: str) -> int:
    """The index of the most specific area naming `module` (-1: none)."""
    best, depth = -1, -1
    for i, (_, areas) in enumerate(LAYERS):
        for a in areas:
            named = module == a if a in EXACT else in_area(module, a)
            if named and a.count(".") > depth:
                best, depth = i, a.count(".")
    return best


def test_every_module_has_a_layer():
    assert [m for m in MODULES if layer_of(m) < 0] == []


def test_no_import_from_a_higher_layer():
    wrong = [
        f"{name}:{line} ({LAYERS[layer_of(name)][0]}) imports {target} "
        f"({LAYERS[layer_of(target)][0]})"
        for name in MODULES
        for target, line, _, _ in GRAPH[name]
        if target in MODULES and layer_of(target) > layer_of(name)
    ]
    assert wrong == []


LEAVES = LAYERS[0][1]
# Narrower than the order: who may import what at all.
RULES = [
    # (who, must import only / must not import, areas, why)
    (
        ("trainlab.optim", "trainlab.schedules"),
        "only",
        ("trainlab.optim", "trainlab.errors", "trainlab.names", "trainlab.optimizer_defaults"),
        "optim and schedules import only torch, the standard library and three leaves",
    ),
    (LEAVES, "only", LEAVES, "the shared leaves import only each other"),
    (("trainlab.rundir",), "only", LEAVES, "the run-directory owner needs no torch or Optuna"),
    (
        ("trainlab.report",),
        "only",
        ("trainlab.report", *LEAVES),
        "report never imports the engine (it reads records, not trainers)",
    ),
    (
        ("trainlab.search.strategies",),
        "not",
        ("trainlab.search.study", "trainlab.search.running", "trainlab.search.optimize"),
        "search strategies are pure samplers: no storage, no runs",
    ),
    (
        ("trainlab.search.study",),
        "not",
        ("trainlab.search.running", "trainlab.search.optimize", "trainlab.experiments"),
        "the study is what the dashboard reads: it runs nothing",
    ),
    (
        ("trainlab.search.optimize",),
        "not",
        ("trainlab.search.running",),
        "optimize() uses the strategies and the study, never the config search's driver",
    ),
    (
        ("trainlab.dashboard",),
        "not",
        ("trainlab.engine", "trainlab.experiments", "trainlab.landscape", "trainlab.data"),
        "the dashboard only reads runs and studies; it runs nothing",
    ),
    (
        ("trainlab.search.strategies",),
        "not",
        ("trainlab.rundir", "trainlab.locking", "trainlab.engine", "trainlab.experiments"),
        "strategies are pure samplers: no files, no training",
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


def test_search_strategies_open_no_file_or_storage():
    """trainlab.search.strategies reads and annotates the study it is given, nothing else."""
    io = ("os", "io", "pathlib", "shutil", "sqlite3", "optuna.storages", "optuna.artifacts")
    wrong = []
    for name, path in MODULES.items():
        if not in_area(name, "trainlab.search.strategies"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                found = [node.module]
            elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "open":
                found = ["open()"]
            else:
                continue
            wrong += [
                f"{name}:{node.lineno} {f}"
                for f in found
                if f == "open()" or any(f == m or f.startswith(m + ".") for m in io)
            ]
    assert wrong == []


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


def test_the_front_door_exports_the_api_without_loading_torch():
    """`import trainlab` is cheap (no torch, no Optuna); each name of the API loads on first
    use, and no name shadows a subpackage (`import trainlab.engine.run` works beside
    `trainlab.train`)."""

    code = (
        "import sys, trainlab\n"
        "assert 'torch' not in sys.modules and 'optuna' not in sys.modules, 'loaded'\n"
        "import trainlab.engine.run\n"
        "names = ['train', 'evaluate', 'load_run', 'search_config', 'optimize', 'compare',\n"
        "         'ensemble', 'transfer', 'lr_find', 'Result', 'Callback', 'Run']\n"
        "assert all(callable(getattr(trainlab, n)) for n in names)\n"
        "assert set(names) <= set(trainlab.__all__) and set(names) <= set(dir(trainlab))\n"
        "assert not any(f'trainlab.{n}' in sys.modules for n in names), 'a name is a module'\n"
    )
    run_python(code)


def test_the_api_module_has_every_name_the_package_exports():
    import trainlab
    import trainlab.api

    assert all(callable(getattr(trainlab.api, n)) for n in trainlab.API)


HEAVY = ("torch", "optuna")


def _imported(args: list[str]) -> tuple[int, set[str], str]:
    """Run `python -X importtime ARGS` (cwd: a scratch folder); its exit status, the top-level
    packages it imported, and its stderr without the import lines."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-X", "importtime", *args], capture_output=True, text=True, timeout=120
    )
    lines = done.stderr.splitlines()
    found = {
        line.rsplit("|", 1)[-1].strip().split(".")[0]
        for line in lines
        if line.startswith("import time:")
    }
    rest = "\n".join(line for line in lines if not line.startswith("import time:"))
    return done.returncode, found, rest


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["search", "--help"],
        ["transfer", "--help"],
        ["dashboard", "--help"],
        ["config", "--help"],
        ["--version"],
    ],
)
def test_the_parser_loads_neither_torch_nor_optuna(argv):
    """`trainlab --help` costs no more than importing Optuna: the parser is built from light
    modules (DESIGN.md, Pins), the commands reach torch and Optuna only when they run."""
    code, found, err = _imported(["-m", "trainlab", *argv])
    assert code == 0, err
    assert found & set(HEAVY) == set()


def test_a_bad_argument_exits_2_without_torch():
    code, found, err = _imported(["-m", "trainlab", "train", "x.yaml", "--no-such-flag"])
    assert code == 2 and "unrecognized arguments: --no-such-flag" in err
    assert found & set(HEAVY) == set()
    code, found, err = _imported(["-m", "trainlab", "search", "x.yaml", "--strategy", "nope"])
    assert code == 2 and "--strategy" in err
    assert found & set(HEAVY) == set()


def test_build_parser_loads_neither_torch_nor_optuna():

    code = (
        "import sys, trainlab.cli\n"
        "trainlab.cli.build_parser()\n"
        "print(sorted(m for m in ('torch', 'optuna') if m in sys.modules))\n"
    )
    assert run_python(code) == "[]"


def test_the_dashboard_answers_runs_without_optuna(tmp_path):
    """The dashboard's first /api/runs answer waits for no Optuna, torch or numpy: Optuna loads
    when a study is read, numpy when a run's page asks for its step curve."""

    run = tmp_path / "runs" / "one"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("data: {name: moons}\n")
    (run / "metrics.jsonl").write_text('{"epoch": 1, "val_accuracy": 0.5}\n')
    code = (
        "import json, sys, urllib.request\n"
        "from trainlab.dashboard.server import Dashboard\n"
        f"board = Dashboard({str(tmp_path / 'runs')!r}, port=0).start()\n"
        "with urllib.request.urlopen(board.url + 'api/runs') as answer:\n"
        "    rows = json.load(answer)\n"
        "assert [(r['name'], r['epoch'], r['val_accuracy']) for r in rows] == [('one', 1, 0.5)]\n"
        "board.stop()\n"
        "print(sorted(m for m in ('torch', 'optuna', 'numpy') if m in sys.modules))\n"
    )
    assert run_python(code, timeout=60) == "[]"


def test_a_command_builds_only_its_own_parser():
    """`trainlab dashboard` (or train, or a mistake in them) does not build transfer's flags,
    whose schema needs pydantic; the whole parser still lists every command."""
    code, found, err = _imported(["-m", "trainlab", "dashboard", "--help"])
    assert code == 0 and "pydantic" not in found, err
    code, found, err = _imported(["-m", "trainlab", "train", "x.yaml", "--no-such-flag"])
    assert code == 2 and "pydantic" not in found, err
    code, found, err = _imported(["-m", "trainlab", "nope"])
    assert code == 2 and "'transfer'" in err and "'dashboard'" in err


def test_the_search_draws_its_plots_without_matplotlib(tmp_path):
    """The end of `trainlab search` (the driver and its two pictures, params.png and curves.png)
    loads no matplotlib: its import and figures were 1.7 s of a search's wall time (issue 30)."""

    code = (
        "import sys, optuna\n"
        "import trainlab.search.running.driver\n"
        "from trainlab.search.space import parse_space\n"
        "from trainlab.search.study.plots import curves_from_study, plot_curves, plot_params\n"
        "space = parse_space({'optim.lr': 'loguniform(1e-4, 1)',\n"
        "                     'optim.name': 'choice([sgd, adam])'}, lambda p: True)\n"
        "optuna.logging.set_verbosity(optuna.logging.WARNING)\n"
        "study = optuna.create_study(direction='maximize')\n"
        "def objective(trial):\n"
        "    value = space.suggest(trial)['optim.lr']\n"
        "    trial.report(value, step=1)\n"
        "    return value\n"
        "study.optimize(objective, n_trials=3)\n"
        f"plot_params(study, space, {str(tmp_path / 'params.png')!r})\n"
        f"plot_curves(curves_from_study(study), {str(tmp_path / 'curves.png')!r})\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))\n"
    )
    assert run_python(code) == "[]"
    assert (tmp_path / "params.png").stat().st_size > 0 and (tmp_path / "curves.png").exists()


def test_a_local_search_driver_loads_no_torch(tmp_path):
    """`trainlab search`'s driver with a local executor imports no torch while it plans, opens
    the study and takes its first trials (config validation reads the optimizers' defaults as
    data, the first worker prepares the data): torch is the workers' to load, and on a small
    machine the driver's own import of it would slow theirs."""

    config = tmp_path / "exp.yaml"
    config.write_text(
        "data: {name: spirals}\nmodel: {kind: mlp, width: 8, depth: 1}\n"
        "optim: {name: adam}\ntrain: {epochs: 1}\n"
        "search:\n  strategy: tpe\n  trials: 4\n  space:\n"
        "    optim.lr: loguniform(1e-3, 1e-1)\n    optim.name: choice([sgd, adamw, lbfgs])\n"
    )
    code = (
        "import sys\n"
        "from trainlab.search import study as studies\n"
        "from trainlab.search.running import driver\n"
        f"p = driver.plan({str(config)!r}, driver.SearchOptions(out='study'))\n"
        "d = driver.Driver(p, driver.SearchOptions())\n"
        "assert d.data_in_worker\n"
        "storage = studies.open_storage('sqlite:///study.db')\n"
        "d._open_study(storage)\n"
        "for _ in range(2):  # trials 0 and 1 (lag 1: trial 2 would wait for trial 0)\n"
        "    number, values = d.search.ask()\n"
        "    driver.sampled_config(p.base, values, None, p.optim_keys)\n"
        "heavy = ('torch', 'trainlab.data', 'trainlab.optim')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    assert run_python(code, cwd=tmp_path) == "[]"


def test_a_run_that_compiles_nothing_loads_no_dynamo(tmp_path):
    """A training run whose optimizer never compiles (a small model, no torch.compile) does not
    load torch._dynamo: torch.optim.Optimizer's add_param_group, zero_grad, state_dict and
    load_state_dict import it on their first call (about 1 s of CPU), which was most of a
    search worker's time from its first trial to its first epoch (issue 30). The run saves its
    optimizer's state (checkpoints); a state is loaded back on the way."""

    code = (
        "import sys, torch, trainlab\n"
        f"out = {str(tmp_path / 'run')!r}\n"
        "config = {'data': {'name': 'spirals'}, 'model': {'kind': 'mlp', 'width': 8, 'depth': 1},\n"
        "          'optim': {'name': 'adam'}, 'train': {'epochs': 1}}\n"
        "trainlab.train(config, out=out, verbose=False)\n"
        "for make in (lambda p: trainlab.optim.SGD(p, lr=0.1, momentum=0.9),\n"
        "             trainlab.optim.LBFGS, trainlab.optim.Newton):\n"
        "    opt = make(torch.nn.Linear(2, 2).parameters())\n"
        "    opt.load_state_dict(opt.state_dict()); opt.zero_grad()\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    assert run_python(code) == "False"
