"""The user's own code, named in a config as `package.module:attribute` (a model factory, a data
function): found on sys.path, in the config file's folder or the current directory, imported
once, and every way it can fail said in one line naming the config field. A plugin that changes
torch's default dtype (``torch.set_default_dtype``, at import or when called) has it restored,
with a warning line: trainlab's tensors and the config's train.precision assume float32.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from trainlab.errors import UserError, warn

# the module part of a plugin name recorded for a run trained on a Python object that cannot be
# imported back (a lambda, a local function): the hyphen keeps it from naming a real module
UNIMPORTABLE = "python-object"


def first_line(err: BaseException) -> str:
    """`Type: first line of the message` (a user's exception in one line)."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


@contextlib.contextmanager
def default_dtype_kept(field: str, name: str) -> Iterator[None]:
    """Run the user's code `name` (`field` names it in the config); a change it makes to torch's
    default dtype is undone, with a warning line (module docstring)."""
    import torch  # the callers (model and data plugins) have it loaded

    before = torch.get_default_dtype()
    try:
        yield
    finally:
        after = torch.get_default_dtype()
        if after != before:
            torch.set_default_dtype(before)
            warn(
                f"{field}: {name} changed torch's default dtype to {after} "
                f"(torch.set_default_dtype); trainlab set it back to {before} (train.precision "
                "chooses the dtype; give a tensor its own dtype where one needs it)"
            )


def load_object(path: str, field: str, search_dirs: Iterable[str | Path] = ()) -> Any:
    """The object `package.module:attr` names (attr may be dotted: `Class.method`).

    The module is looked up on sys.path, then in `search_dirs` (the config's folder) and the
    current directory; a mistake is a UserError naming `field`.
    """
    module_name, _, attr = path.partition(":")
    dirs = [str(Path(d).resolve()) for d in (*search_dirs, Path.cwd())]
    added = [d for d in dirs if d not in sys.path]
    sys.path.extend(added)  # after sys.path: an installed package wins over a local file
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if (
            err.name
            and module_name.startswith(err.name)
            and module_name.split(".")[0] == (err.name.split(".")[0])
        ):
            raise UserError(
                f"{field}: cannot import module {module_name!r} (looked on sys.path and in "
                f"{', '.join(dict.fromkeys(dirs))})"
            ) from None
        raise UserError(f"{field}: importing {module_name!r} failed: {first_line(err)}") from None
    except Exception as err:  # the user's module itself raised on import
        raise UserError(f"{field}: importing {module_name!r} failed: {first_line(err)}") from None
    finally:
        for d in added:
            if d in sys.path:
                sys.path.remove(d)
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise UserError(f"{field}: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def source_dir(path: str) -> str | None:
    """The folder that the module of an imported plugin `package.module:attr` was found in (the
    one holding its top-level package), for a run to record; None when it is not imported."""
    name = path.partition(":")[0]
    file = getattr(sys.modules.get(name), "__file__", None)
    if not file:
        return None
    root = Path(file).resolve().parent
    for _ in range(name.count(".")):
        root = root.parent
    return str(root)


def import_path_of(obj: Any) -> str | None:
    """`module:qualname` when `obj` can be imported back by that name in another process (so a
    run directory or a search worker can rebuild it); None for lambdas, local functions and
    objects defined in a script run as __main__."""
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not module or not qualname or module == "__main__" or "<" in qualname:
        return None
    try:
        found = load_object(f"{module}:{qualname}", "plugin")
    except UserError:
        return None
    return f"{module}:{qualname}" if found is obj else None
