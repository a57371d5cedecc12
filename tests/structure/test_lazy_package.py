"""The package is lazy (PEP 562): importing ``booster`` or a torch-free module (``booster.errors``) does not
import torch, so that torch-free tools (the ONNX runner) can live in the package; the public names still
resolve, and ``booster.inject`` is the function, not a module, whatever was imported first."""
import subprocess
import sys


def run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_importing_the_package_does_not_import_torch():
    assert run("import sys, booster, booster.errors; print('torch' in sys.modules)") == "False"


def test_public_names_resolve_and_inject_is_the_function():
    out = run("import booster.injection, booster, inspect; print(inspect.isfunction(booster.inject), "
              "booster.MuQ.__name__, booster.Site.__name__, callable(booster.load_adapters), "
              "'TorchBackbone' in dir(booster))")
    assert out == "True MuQ Site True True"
