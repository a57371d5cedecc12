"""The install cannot rot silently: exact pins, pyproject excludes the known-broken torchaudio, a torchaudio that
does not load with the installed torch is one clear ImportError."""
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            req = Requirement(line)
            pins[req.name] = str(req.specifier)
    return pins


def test_constraints_pin_an_exact_torch_torchaudio_pair():
    pins = _pins()
    for name in ("torch", "torchaudio"):
        spec = pins[name]
        assert spec.startswith("==") and "*" not in spec, f"{name} must be pinned exactly, got {spec!r}"


def test_pyproject_excludes_the_broken_torchaudio_and_admits_the_pins():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    reqs = {Requirement(d).name: Requirement(d) for d in deps}
    ta = reqs["torchaudio"].specifier
    assert "2.11.1" not in ta                      # does not load with torch 2.11.0 (undefined symbol)
    assert "2.11.0" in ta                          # loads with torch 2.11.0 (GPU machine) and 2.14.1 (here)
    assert "2.15.0" not in reqs["torch"].specifier  # torchaudio 2.11.0 does not load with it (other CUDA)
    pins = _pins()
    for name in ("torch", "torchaudio"):
        assert pins[name].lstrip("=") in reqs[name].specifier, f"the pin of {name} is outside pyproject's range"


def test_a_torchaudio_that_does_not_load_is_one_clear_error():
    code = (
        "import sys\n"
        "class Broken:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torchaudio':\n"
        "            raise OSError('libtorchaudio.so: undefined symbol: torch_exception_get_what_without_backtrace')\n"
        "sys.meta_path.insert(0, Broken())\n"
        "import booster\n"          # the package is lazy (PEP 562): torchaudio loads with the first MuQ use
        "booster.MuQ\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: torchaudio ") and "does not load with torch" in last, r.stderr[-800:]
    assert "constraints.txt" in last
