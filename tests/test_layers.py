"""The package's three layers, enforced: planning (repro.plan) and reporting (repro.report)
never import torch or the engine, at module level or inside a function; only
repro.engine does. cli.py dispatches to every layer and may import the engine inside the
function of an engine stage only. No module imports itself back through others.

Read from the source (every import statement, wherever it sits) and checked once more by
importing every torch-free module with torch made unimportable."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "repro"
TORCH = ("torch", "torchvision")


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[str, int, bool]]:
    """Every module ``path`` imports: (absolute name, line, at module level)."""
    tree = ast.parse(path.read_text())
    package = (
        module_name(path).rpartition(".")[0] if path.name != "__init__.py" else module_name(path)
    )
    top = {id(n) for n in tree.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # `from . import x` imports the module x when x is one
            names = [f"{mod}.{a.name}" for a in node.names]
            found = [n for n in names if _is_module(n)]
            out += [(n, node.lineno, id(node) in top) for n in (found or [mod])]
    return out


def _is_module(name: str) -> bool:
    if not name.startswith("repro"):
        return False
    rel = Path(*name.split("."))
    return (SRC / rel).with_suffix(".py").exists() or (SRC / rel / "__init__.py").exists()


def layer(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ("plan", "engine", "report") else "top"


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=[module_name(p) for p in MODULES])
def test_only_the_engine_imports_torch_or_the_engine(path):
    name = module_name(path)
    if layer(name) == "engine":
        return
    for mod, line, at_top in imports(path):
        where = f"{path.relative_to(SRC.parent)}:{line}"
        assert mod.split(".")[0] not in TORCH, f"{where} imports {mod} outside repro.engine"
        if layer(mod) == "engine" or mod == "repro.engine":
            # the dispatcher alone may reach the engine, inside an engine stage's function
            assert name == "repro.cli" and not at_top, f"{where} imports the engine ({mod})"


def test_the_check_sees_a_forbidden_import():
    """The scan above finds torch and the engine however they are imported."""
    bad = PACKAGE / "report" / "zz_layers_probe.py"
    text = "def f():\n    from ..engine import train\n    import torch.nn\n"
    bad.write_text(text)
    try:
        found = {m for m, _, _ in imports(bad)}
        assert {"repro.engine.train", "torch.nn"} <= found
        with pytest.raises(AssertionError, match="outside repro.engine|imports the engine"):
            test_only_the_engine_imports_torch_or_the_engine(bad)
    finally:
        bad.unlink()


def test_no_import_circle():
    """The graph of project modules (every import, in functions too) has no cycle."""
    graph = {
        module_name(p): {m for m, _, _ in imports(p) if _is_module(m) and m != module_name(p)}
        for p in MODULES
    }
    # a package's __init__ is imported by its modules implicitly; it imports none of them
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            cycle = path[path.index(node) :] + [node]
            pytest.fail("import circle: " + " -> ".join(cycle))
        if node in done:
            return
        for nxt in sorted(graph.get(node, ())):
            visit(nxt, [*path, node])
        done.add(node)

    for node in sorted(graph):
        visit(node, [])


def test_plan_and_report_modules_import_with_torch_unimportable(tmp_path):
    """Every module of the torch-free layers imports where torch cannot be imported, and
    so do the train command's flags (made from the schema, not torch) and the report
    host's description (its GPU asked without torch)."""
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text("raise ImportError('torch imported')\n")
    names = [module_name(p) for p in MODULES if layer(module_name(p)) in ("plan", "report")]
    names.append("repro.cli")
    code = (
        "import importlib, sys\n"
        "for n in sys.argv[1:]:\n"
        "    importlib.import_module(n)\n"
        "sys.modules['repro.cli'].build_parser('train')\n"
        "sys.modules['repro.report.provenance'].this_host()\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code, *names],
        env={"PYTHONPATH": f"{tmp_path}:{SRC}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr[-2000:]
