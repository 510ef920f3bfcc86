"""cl_core must stay pure PyTorch + pyarrow: importing all of it loads no orchestration library,
and its modules import one another without a cycle."""

import ast
import subprocess
import sys
from pathlib import Path

import cl_core


def test_cl_core_imports_no_orchestration_library():
    code = (
        "import pkgutil, importlib, sys, cl_core\n"
        "for module in pkgutil.walk_packages(cl_core.__path__, 'cl_core.'):\n"
        "    importlib.import_module(module.name)\n"
        "loaded = sorted({m.split('.')[0] for m in sys.modules} & {'ray', 'prefect', 'mlflow', 'flows'})\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "", f"cl_core pulled in: {result.stdout.strip()}"


def test_the_config_loads_without_torch():
    """The CLI validates a config and checks names before any training: reading the objectives
    table must not import the losses (about 2 s of torch)."""
    code = "import sys, cl_core.config\nprint(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'pandas'}))\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", f"cl_core.config pulled in: {result.stdout.strip()}"


def test_the_model_specs_sit_below_the_config():
    """`cl_core.config` checks backbone names against `cl_core.models.backbones`; the specs take
    its model section as an argument and import the config for type annotations only."""
    code = "import sys, cl_core.models.spec\nprint('cl_core.config' in sys.modules)\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False", "cl_core.models.spec imported cl_core.config"


def _imported_modules(path: Path, module: str, known: set[str]) -> set[str]:
    """The modules of `known` that the source file `path` (module `module`) imports anywhere: at
    the top, inside functions or under `if TYPE_CHECKING:`; a type-only import still ties the two
    modules together. Imports named as text (`importlib.import_module`) are not seen."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: `from . import x`, `from ..store import y`
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            # `from pkg import name` imports the module pkg.name when there is one, else pkg.
            found.update(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names)
    return found & known - {module}


def _import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Each module of the package in folder `root` -> the modules of the package it imports."""
    files = {}
    for path in root.rglob("*.py"):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return {module: _imported_modules(path, module, set(files)) for module, path in files.items()}


def _a_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of `graph` as [a, b, ..., a], else None (depth-first, three colours)."""
    state: dict[str, str] = {}  # absent: unseen, "open": on the current path, "done": no cycle through it
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = "open"
        path.append(module)
        for imported in sorted(graph[module]):
            if state.get(imported) == "open":
                return path[path.index(imported):] + [imported]
            if imported not in state and (cycle := visit(imported)):
                return cycle
        state[module] = "done"
        path.pop()
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)):
            return cycle
    return None


def test_cl_core_has_no_import_cycle():
    """No module of cl_core imports, however indirectly, a module that imports it back: each
    layer builds on the ones below (a shared helper moves down, e.g. `split_for_id` into
    `cl_core.datasets.splits`, rather than one module reaching back into another)."""
    graph = _import_graph(Path(cl_core.__file__).parent, "cl_core")
    cycle = _a_cycle(graph)
    assert cycle is None, f"import cycle in cl_core: {' -> '.join(cycle)}"


def test_the_cycle_check_sees_relative_and_type_only_imports(tmp_path):
    """The check above fails on a cycle closed by a relative import one way and a type-only one
    back, as `buckets` -> `store` -> `buckets` over `split_for_id` once was."""
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "a.py").write_text("from .b import f\n")
    (package / "sub" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.sub import a\ndef f():\n    pass\n"
    )
    (package / "c.py").write_text("from pkg.sub.b import f\n")
    graph = _import_graph(package, "pkg")
    assert graph["pkg.c"] == {"pkg.sub.b"}
    assert _a_cycle(graph) == ["pkg.sub.b", "pkg.sub.a", "pkg.sub.b"]  # reached from pkg.c
