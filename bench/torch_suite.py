"""PyTorch's own optimizer test suite, run on trainlab.optim and on torch.optim as the control.

The tests are PyTorch's, not in this repository: test/test_optim.py (TestOptimRenewed, driven by
`optim_db` from torch/testing/_internal/common_optimizers.py) and test/optim/test_optim.py
(TestDifferentiableOptimizer). This script runs their tests of SGD, Adagrad, RMSprop, Adam, AdamW
and LBFGS twice, in pytest subprocesses: as they are (torch.optim), and with the `optim_cls` of
those optim_db entries, and the classes TestDifferentiableOptimizer imports, replaced by
trainlab.optim's before collection (this file is also that pytest plugin: `-p torch_suite`).
It prints passed/failed counts for both and the tests that pass for torch and fail for us, by
optimizer and cause, and writes the same text to <tests-dir>/report.txt.

    .venv/bin/python bench/torch_suite.py --tests-dir /tmp/torch_suite [--impl both|trainlab|torch]
        [-k EXPR] [--workers N] [--json]
"""

from __future__ import annotations

import argparse
import collections
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

ENV_IMPL = "TORCH_SUITE_IMPL"
OPTIMIZERS = ("SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "LBFGS")
FILES = {"test_optim.py": "test/test_optim.py", "optim/test_optim.py": "test/optim/test_optim.py"}
HOW_TO_GET = (
    "save test/test_optim.py and test/optim/test_optim.py of github.com/pytorch/pytorch (the "
    "tag of your torch, e.g. v2.13.0) as {d}/test_optim.py and {d}/optim/test_optim.py"
)
# TestOptimRenewed's test names end in _<optimizer>_cpu_<dtype>
_RENEWED = re.compile(r"_(" + "|".join(OPTIMIZERS) + r")_cpu(_|$)")
# TestDifferentiableOptimizer's tests of our optimizers, and which optimizer each one steps
_DIFFERENTIABLE = {
    "test_sgd": "SGD",
    "test_differentiable_lr": "SGD",
    "test_differentiable_weight_decay": "SGD",
    "test_differentiable_weight_decay_and_lr": "SGD",
    "test_adagrad": "Adagrad",
    "test_rmsprop": "RMSprop",
    "test_adam": "Adam",
    "test_adam_differentiable_lr": "Adam",
    "test_adam_differentiable_weight_decay": "Adam",
    "test_adam_differentiable_betas": "Adam",
    "test_adam_differentiable_all_hyperparams": "Adam",
    "test_adamw": "AdamW",
    "test_adamw_differentiable_lr": "AdamW",
    "test_adamw_differentiable_weight_decay": "AdamW",
    "test_adamw_differentiable_betas": "AdamW",
    "test_adamw_differentiable_all_hyperparams": "AdamW",
}
# test/test_optim.py imports these siblings for their own test classes, which we do not run
_STUBS = {
    "optim/__init__.py": "",
    "optim/test_lrscheduler.py": "TestLRScheduler = None  # not run here\n",
    "optim/test_swa_utils.py": "TestSWAUtils = None  # not run here\n",
}
# expecttest is a test-only dependency of torch.testing; its TestCase is unittest's plus
# assertExpectedInline, which the selected tests do not call
_EXPECTTEST = (
    "import unittest\n\nACCEPT = False\n\n\nclass TestCase(unittest.TestCase):\n    pass\n"
)


def optimizer_of(name: str) -> str | None:
    """The optimizer a test of the selection exercises, None for a test outside it."""
    base = name.split("[")[0]
    if base in _DIFFERENTIABLE:
        return _DIFFERENTIABLE[base]
    match = _RENEWED.search(base)
    return match.group(1) if match else None


# --- the pytest plugin (runs inside the pytest subprocess) ------------------------------------


def _ours() -> dict[str, type]:
    import trainlab.optim as ours

    return {name: getattr(ours, name) for name in OPTIMIZERS}


def pytest_configure(config: Any) -> None:
    """Before collection: point optim_db's entries at trainlab's classes when asked."""
    if os.environ.get(ENV_IMPL) != "trainlab":
        return
    from torch.testing._internal import common_optimizers

    ours = _ours()
    for info in common_optimizers.optim_db:
        if info.optim_cls.__name__ in ours:
            info.optim_cls = ours[info.optim_cls.__name__]


def pytest_collection_modifyitems(config: Any, items: list) -> None:
    """Keep the tests of our six optimizers; for trainlab, patch the classes that
    TestDifferentiableOptimizer's module imported from torch.optim."""
    keep, drop = [], []
    for item in items:
        (keep if optimizer_of(item.name) else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
    items[:] = keep
    if os.environ.get(ENV_IMPL) == "trainlab":
        ours = _ours()
        for item in keep:  # the globals of the test's own function (under torch's decorators)
            function = inspect.unwrap(getattr(item.obj, "__func__", item.obj))
            names = getattr(function, "__globals__", {})
            for name in ours.keys() & names.keys():
                names[name] = ours[name]
            if item.name in _DIFFERENTIABLE and not ours.keys() & names.keys():
                raise RuntimeError(f"torch_suite: cannot point {item.name} at trainlab.optim")


# --- the harness -------------------------------------------------------------------------------


def _layout(tests_dir: Path, work: Path) -> None:
    """PyTorch's two files and the small stand-ins they import, in a scratch directory."""
    for rel in FILES:
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(tests_dir / rel, work / rel)
    for rel, text in _STUBS.items():
        (work / rel).write_text(text)
    try:
        import expecttest  # noqa: F401
    except ImportError:
        (work / "expecttest.py").write_text(_EXPECTTEST)
    (work / "pytest.ini").write_text("[pytest]\n")


def _run(impl: str, work: Path, keyword: str | None, workers: int) -> tuple[Path, float]:
    """pytest over the selection with one implementation; returns its JUnit XML and seconds."""
    xml = work / f"{impl}.xml"
    cmd = [sys.executable, "-m", "pytest", "test_optim.py", "-q", "-p", "torch_suite"]
    cmd += ["-p", "no:cacheprovider", f"--junitxml={xml}", "-o", "junit_family=xunit1"]
    if keyword:
        cmd += ["-k", keyword]
    if workers > 1:
        cmd += ["-n", str(workers)]
    env = dict(os.environ)
    env[ENV_IMPL] = impl
    paths = [str(Path(__file__).resolve().parent), str(work)]
    env["PYTHONPATH"] = os.pathsep.join(paths + [env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - start
    if not xml.exists():
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"torch_suite: pytest produced no results for {impl}")
    return xml, seconds


def _cause(text: str) -> str:
    """One line saying why a test failed, with numbers and addresses blurred so that alike
    failures group together."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    errors = [ln[1:].strip() for ln in lines if ln.startswith("E ")]
    raised = [ln for ln in errors if re.match(r"^[\w.]+(Error|Exception|Warning)\b", ln)]
    line = (raised or errors or [ln.strip() for ln in lines] or ["?"])[0]
    line = re.sub(r"0x[0-9a-f]+", "0x..", line)
    line = re.sub(r"\d+(\.\d+)?(e-?\d+)?", "N", line)
    return line[:160]


def _outcomes(xml: Path) -> dict[str, tuple[str, str]]:
    """test id -> (passed | failed | skipped, cause)."""
    result = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        name = f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"
        outcome, cause = "passed", ""
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "failed"
                cause = _cause((child.text or "") + "\n" + (child.get("message") or ""))
                break
            if child.tag == "skipped":
                outcome = "skipped"
                cause = (
                    (child.get("message") or "").splitlines()[0][:120]
                    if child.get("message")
                    else ""
                )
        result[name] = (outcome, cause)
    return result


def compare(runs: dict[str, dict[str, tuple[str, str]]]) -> dict[str, Any]:
    """Counts per implementation, and the tests that pass for torch and fail for trainlab."""
    summary: dict[str, Any] = {"by_optimizer": {}, "skip_reasons": {}}
    for impl, outcomes in runs.items():
        counts = collections.Counter(outcome for outcome, _ in outcomes.values())
        summary[impl] = {k: counts.get(k, 0) for k in ("passed", "failed", "skipped")}
        per: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        for test, (outcome, _) in outcomes.items():
            per[optimizer_of(test.split("::")[-1]) or "?"][outcome] += 1
        summary["by_optimizer"][impl] = {o: dict(c) for o, c in sorted(per.items())}
        reasons = collections.Counter(c for o, c in outcomes.values() if o == "skipped")
        summary["skip_reasons"][impl] = dict(reasons.most_common())
    if {"torch", "trainlab"} <= runs.keys():
        ours, theirs = runs["trainlab"], runs["torch"]
        regressions = sorted(
            t
            for t, (o, _) in theirs.items()
            if o == "passed" and ours.get(t, ("?",))[0] != "passed"
        )
        groups: dict[str, dict[str, list[str]]] = collections.defaultdict(
            lambda: collections.defaultdict(list)
        )
        for test in regressions:
            outcome, cause = ours.get(test, ("missing", "not collected for trainlab"))
            groups[optimizer_of(test.split("::")[-1]) or "?"][cause or outcome].append(test)
        summary["only_torch_passes"] = {o: dict(c) for o, c in sorted(groups.items())}
        summary["only_trainlab_passes"] = sorted(
            t
            for t, (o, _) in ours.items()
            if o == "passed" and theirs.get(t, ("?",))[0] != "passed"
        )
    return summary


def render(summary: dict[str, Any], seconds: dict[str, float]) -> str:
    """The comparison as text: counts, then the failures only we have, by optimizer and cause."""
    out = ["impl       passed  failed  skipped  seconds"]
    for impl in ("torch", "trainlab"):
        if impl in summary:
            c = summary[impl]
            out.append(
                f"{impl:<9} {c['passed']:>7} {c['failed']:>7} {c['skipped']:>8} "
                f"{seconds.get(impl, 0):>8.0f}"
            )
    by_optimizer = summary["by_optimizer"]
    out.append("\npassed/failed/skipped by optimizer")
    for optimizer in OPTIMIZERS:
        cells = []
        for impl in ("torch", "trainlab"):
            if impl in by_optimizer:
                c = by_optimizer[impl].get(optimizer, {})
                cells.append(
                    f"{impl} {c.get('passed', 0)}/{c.get('failed', 0)}/{c.get('skipped', 0)}"
                )
        out.append(f"  {optimizer:<8} " + "   ".join(cells))
    for impl, reasons in summary["skip_reasons"].items():
        out.append(f"\nskipped for {impl}, by reason:")
        out.extend(f"  {n:>3} x {reason or '?'}" for reason, n in reasons.items())
    groups = summary.get("only_torch_passes")
    if groups is not None:
        total = sum(len(t) for causes in groups.values() for t in causes.values())
        out.append(f"\npass for torch.optim, fail for trainlab.optim: {total}")
        for optimizer, causes in groups.items():
            n = sum(len(t) for t in causes.values())
            out.append(f"\n{optimizer}: {n}")
            for cause, tests in sorted(causes.items(), key=lambda kv: -len(kv[1])):
                out.append(f"  {len(tests):>3} x {cause}")
                out.extend(f"        {t}" for t in tests)
        if summary.get("only_trainlab_passes"):
            out.append(f"\npass for trainlab only: {', '.join(summary['only_trainlab_passes'])}")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests-dir", type=Path, default=Path("/tmp/torch_suite"))
    parser.add_argument("--impl", choices=("both", "trainlab", "torch"), default="both")
    parser.add_argument("-k", dest="keyword", help="pytest -k expression to narrow the run")
    parser.add_argument("--workers", type=int, default=1, help="pytest-xdist workers per run")
    parser.add_argument("--report", type=Path, help="default: <tests-dir>/report.txt")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    tests_dir = args.tests_dir.resolve()
    missing = [rel for rel in FILES if not (tests_dir / rel).is_file()]
    if missing:
        print(f"torch_suite: {', '.join(missing)} missing: {HOW_TO_GET.format(d=tests_dir)}")
        return 2
    impls = ("torch", "trainlab") if args.impl == "both" else (args.impl,)
    runs, seconds = {}, {}
    with tempfile.TemporaryDirectory(prefix="torch_suite_") as tmp:
        work = Path(tmp)
        _layout(tests_dir, work)
        for impl in impls:
            xml, seconds[impl] = _run(impl, work, args.keyword, args.workers)
            runs[impl] = _outcomes(xml)
    summary = compare(runs)
    text = render(summary, seconds)
    report = args.report or tests_dir / "report.txt"
    report.write_text(text)
    if args.json:
        print(json.dumps({"seconds": seconds, **summary}))
    else:
        sys.stdout.write(text)
        print(f"(written to {report})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
