"""examples/lecture7.ipynb, the lecture as a notebook: committed without outputs, and run from
top to bottom on the small CI budget (TRAINLAB_NOTEBOOK_BUDGET=ci) by a kernel on this very
interpreter, in a temporary folder; an error in any cell fails the test.

The one slow test of the suite (about a minute on 2 quiet cores): `-m "not notebook"` skips it.
"""

import json
import os
import sys
from pathlib import Path

import nbclient
import nbformat
import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "lecture7.ipynb"
KERNEL = "trainlab-notebook-test"


def test_notebook_is_committed_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code
    assert all(not c.outputs and c.execution_count is None for c in code)


def _kernel_on_this_interpreter(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A kernel spec for sys.executable in a private JUPYTER_PATH, and every Jupyter/IPython
    folder under `root` (nothing is written to the home directory)."""
    spec = root / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec.joinpath("kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": KERNEL, "language": "python"})
    )
    monkeypatch.setenv("JUPYTER_PATH", str(root / "jupyter"))
    for name, folder in [
        ("JUPYTER_CONFIG_DIR", "config"),
        ("JUPYTER_DATA_DIR", "data"),
        ("JUPYTER_RUNTIME_DIR", "runtime"),
        ("IPYTHONDIR", "ipython"),
    ]:
        monkeypatch.setenv(name, str(root / folder))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the notebook's own inline backend
    # the kernel is one of the suite's two processes (xdist): one torch thread, as conftest's
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    src = str(Path(__file__).resolve().parents[1] / "src")  # this checkout's trainlab
    paths = [src, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))


@pytest.mark.notebook
def test_notebook_runs_on_the_ci_budget(tmp_path, monkeypatch):
    _kernel_on_this_interpreter(tmp_path / "jupyter-home", monkeypatch)
    monkeypatch.setenv("TRAINLAB_NOTEBOOK_BUDGET", "ci")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        kernel_name=KERNEL,
        timeout=300,  # per cell; the whole notebook takes about a minute on 2 quiet cores
        startup_timeout=120,
        resources={"metadata": {"path": str(cwd)}},
    )
    client.execute()  # raises CellExecutionError at the first cell that fails

    pictures: dict[str, int] = {}  # section heading -> pictures drawn inline under it
    section = None
    for cell in nb.cells:
        if cell.cell_type == "markdown" and cell.source.startswith("## "):
            section = cell.source.splitlines()[0]
            pictures[section] = 0
        elif cell.cell_type == "code":
            assert not [o for o in cell.outputs if o.output_type == "error"]
            if section is not None:
                pictures[section] += sum("image/png" in o.get("data", {}) for o in cell.outputs)
    assert len(pictures) >= 7  # the lecture's seven steps
    assert not [s for s, n in pictures.items() if n == 0 and s != "## Where next"]
    # everything the notebook wrote is under runs/notebook/ of its working directory
    assert [p.name for p in cwd.iterdir()] == ["runs"]
    assert [p.name for p in (cwd / "runs").iterdir()] == ["notebook"]
