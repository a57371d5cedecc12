"""Dependencies point down: commands -> recipes -> training kit / adapters -> inject, cache, features ->
backbone contract -> muq, audio (host plug-ins sit beside the kit: they import neither it nor anything above).
Read from every module's own import statements (``ast``), lazy ones inside functions included, after importing
every module of the package (so the list is the real one)."""
import ast
import importlib
import importlib.util
import pkgutil
from pathlib import Path

import pytest

import booster

CORE_PACKAGES = ("booster.muq", "booster.data", "booster.models")
ABOVE_CORE = ("booster.training", "booster.recipes", "booster.commands", "booster.adapters", "booster.export")
ABOVE_KIT = ("booster.recipes", "booster.commands")
FORBIDDEN = {"core": ABOVE_CORE, "training": ABOVE_KIT, "adapters": ("booster.training", *ABOVE_KIT),
             "recipes": ("booster.commands",), "commands": (),
             "export": ("booster.commands",)}   # ONNX export of recipe models: above the kit, below the commands


def _walk(package: str) -> list[str]:
    pkg = importlib.import_module(package)
    names = [package]
    for info in pkgutil.walk_packages(pkg.__path__, package + "."):
        names.append(info.name)
    return names


def all_modules() -> list[str]:
    """Every module of booster/ plus the folders installed under it (adapters/, recipes/)."""
    names = _walk("booster")
    for extra in ("booster.adapters", "booster.recipes"):
        names += [n for n in _walk(extra) if n not in names]
    return sorted(names)


def imported_names(module: str) -> set[str]:
    """Absolute names of every module ``module``'s source imports (``from a import b`` counts a and a.b)."""
    mod = importlib.import_module(module)
    path = Path(mod.__file__)
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = importlib.util.resolve_name("." * node.level + (node.module or ""), package) if node.level \
                else node.module
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names if a.name != "*")
    return out


def _layer(module: str) -> str:
    if module.startswith(ABOVE_CORE):
        return module.split(".")[1]
    return "core"   # booster/*.py and booster.muq / booster.data / booster.models


def _under(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


MODULES = all_modules()


def test_every_module_is_walked():
    layers = {_layer(m) for m in MODULES}
    assert layers == {"core", "training", "recipes", "commands", "adapters", "export"}
    assert {"booster.adapter_io", "booster.plugins", "booster.training.cli", "booster.recipes.separation.module",
            "booster.adapters.htdemucs", *CORE_PACKAGES} <= set(MODULES)


def test_dependencies_point_down():
    wrong = []
    for m in MODULES:
        forbidden = FORBIDDEN[_layer(m)]
        wrong += [f"{m} imports {n}" for n in sorted(imported_names(m)) if _under(n, forbidden)]
    assert not wrong, "\n".join(wrong)


def test_no_module_getattr_shims():
    """Re-exports are plain imports; a module-level ``__getattr__`` hides a circle or a lazy layer breach. The one
    exception is the top-level package: its public names load on first use so that torch-free modules (the ONNX
    runner) can live in it (tests/structure/test_lazy_package.py); every lazy name is a real attribute of one
    submodule."""
    for name, (module, attr) in booster._LAZY.items():
        assert getattr(importlib.import_module(f"booster.{module}"), attr) is getattr(booster, name), name
    shims = []
    for m in (m for m in MODULES if m != "booster"):
        path = Path(importlib.import_module(m).__file__)
        tree = ast.parse(path.read_text())
        shims += [m for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "__getattr__"]
    assert not shims, shims


def test_adapter_files_and_registry_from_their_core_modules():
    from booster import adapter_io, plugins
    from booster.training import hosts
    assert booster.save_adapters is adapter_io.save_adapters and booster.load_adapters is adapter_io.load_adapters
    assert hosts.load_plugin is plugins.load_plugin and hosts.available_hosts is plugins.available_hosts
    assert "htdemucs" in plugins.available_hosts()
    inject_module = importlib.import_module("booster.injection")
    with pytest.raises(AttributeError):
        inject_module.save_adapters  # noqa: B018 (the old lazy spelling is gone: import from booster.adapter_io)


def test_no_private_muq_helpers_outside_muq():
    """Generic code never imports MuQ's private helpers (design card): what other backbones share with MuQ lives
    in a generic module (booster.extraction, booster.fingerprint, booster.features)."""
    wrong = []
    for m in MODULES:
        if _under(m, ("booster.muq",)):
            continue
        mod = importlib.import_module(m)
        tree = ast.parse(Path(mod.__file__).read_text())
        package = m if Path(mod.__file__).name == "__init__.py" else m.rpartition(".")[0]
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                base = importlib.util.resolve_name("." * node.level + (node.module or ""), package) \
                    if node.level else node.module
                if _under(base or "", ("booster.muq",)):
                    wrong += [f"{m} imports {base}.{a.name}" for a in node.names if a.name.startswith("_")]
    assert not wrong, "\n".join(wrong)
