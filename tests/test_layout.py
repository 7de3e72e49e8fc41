"""The package layout's rules: one package per program, imports only downward, entry points
imported by nobody but `coderl_jax.cli`, and the pre-move module paths still importable."""

from __future__ import annotations

import ast
import importlib
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "coderl_jax"

# modules kept at their old paths for one release; they import their new home and nothing else
MOVED = {
    "coderl_jax.train.sft": "coderl_jax.sft.trainer",
    "coderl_jax.train.sft_cli": "coderl_jax.sft.cli",
    "coderl_jax.train.plan": "coderl_jax.plan.planner",
    "coderl_jax.train.ablation": "coderl_jax.experiments.ablation",
    "coderl_jax.train.rewards": "coderl_jax.rl.rewards",
    "coderl_jax.train.paper": "coderl_jax.configs.paper_settings",
}

# a package may import the packages to its right only (models -> parallel, ..., cli -> everything)
LAYERS = [
    {"parallel", "errors", "registry", "remote", "cache"}, {"models", "optim", "cpu_runtime"}, {"sampling", "rl", "data"},
    {"alignment", "eval"}, {"train"}, {"configs"}, {"sft", "plan", "experiments"}, {"cli"},
]


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every coderl_jax module a file imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("coderl_jax"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("coderl_jax"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def _sources():
    for path in sorted(PACKAGE.rglob("*.py")):
        name = _module_name(path)
        if name not in MOVED:
            yield name, path


def _layer(module: str) -> int:
    top = module.split(".")[1] if module.count(".") else "cli"
    for i, layer in enumerate(LAYERS):
        if top in layer:
            return i
    raise AssertionError(f"{module}: package {top!r} has no place in LAYERS")


def test_entry_points_are_imported_only_by_the_top_cli():
    offenders = []
    for name, path in _sources():
        if name == "coderl_jax.cli":
            continue
        for imported in _imports(path):
            if imported.endswith(".cli") or imported.endswith("_cli") or imported == "coderl_jax.cli":
                if imported != name:
                    offenders.append(f"{name} imports {imported}")
    assert not offenders, offenders


def test_packages_import_only_downward():
    offenders = []
    for name, path in _sources():
        here = _layer(name)
        for imported in _imports(path):
            if imported.split(".")[:2] == name.split(".")[:2]:
                continue  # within one package
            if _layer(imported) > here:
                offenders.append(f"{name} imports {imported}")
    assert not offenders, offenders


def test_every_package_has_a_layer():
    for path in PACKAGE.iterdir():
        if (path.is_dir() and (path / "__init__.py").exists()) or (path.suffix == ".py" and path.stem != "__init__"):
            _layer(f"coderl_jax.{path.stem}")


@pytest.mark.parametrize("old,new", sorted(MOVED.items()))
def test_old_module_paths_still_import(old, new):
    sys.modules.pop(old, None)  # import the alias afresh, so its warning is raised here
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old_module = importlib.import_module(old)
    new_module = importlib.import_module(new)
    public = [n for n in vars(new_module) if not n.startswith("_") and callable(getattr(new_module, n))]
    assert public, new
    for n in public:
        assert getattr(old_module, n) is getattr(new_module, n), (old, n)
    assert any(issubclass(w.category, DeprecationWarning) and new in str(w.message) for w in caught)
