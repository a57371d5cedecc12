"""The "original module" of MSST's layout, without MSST's repository: lucidrains' BS-RoFormer 0.4.1 from PyPI.

MSST's models/bs_roformer/{bs_roformer,mel_band_roformer}.py are this release's classes (gated attention,
plain residuals, the same module tree and state-dict names) plus MSST's options (zero_dc, skip_connection,
mlp_expansion_factor, linear attention in BS-RoFormer, use_torch_checkpoint). 0.4.1 is the last release before
value residuals (0.5.0) and hyper-connections (0.6.0); MSST's "Roformers code updated" commits (Jan 2024) track
0.3.8-0.4.x. scripts/setup.sh downloads the pure-Python wheel (`pip download --no-deps`) into build/reference/;
it is imported from the wheel under the name ``ref041_bs_roformer`` (the installed ``bs_roformer`` 1.2.4 stays).
"""
import functools
import hashlib
import sys
from pathlib import Path

import pytest

WHEEL = Path(__file__).resolve().parents[2] / "build" / "reference" / "BS_RoFormer-0.4.1-py3-none-any.whl"
SHA256 = "bae77ce57dac07d5a8627e8951626451611f4dd56f07cdc989ee1c3af3ba5975"


@functools.lru_cache(maxsize=1)
def reference():
    """``(bs_roformer module, mel_band_roformer module)`` of BS-RoFormer 0.4.1."""
    if not WHEEL.is_file():
        pytest.fail(f"{WHEEL} is missing: run scripts/setup.sh (it downloads the reference wheel)")
    if hashlib.sha256(WHEEL.read_bytes()).hexdigest() != SHA256:
        pytest.fail(f"{WHEEL} is not BS-RoFormer 0.4.1's published wheel (sha256 differs)")
    ours = {k: v for k, v in sys.modules.items() if k == "bs_roformer" or k.startswith("bs_roformer.")}
    for k in ours:
        del sys.modules[k]
    sys.path.insert(0, str(WHEEL))
    try:
        import bs_roformer.bs_roformer as bs
        import bs_roformer.mel_band_roformer as mel
    finally:
        sys.path.remove(str(WHEEL))
        for k in [k for k in sys.modules if k == "bs_roformer" or k.startswith("bs_roformer.")]:
            sys.modules["ref041_" + k] = sys.modules.pop(k)
        sys.modules.update(ours)
    assert Path(bs.__file__).is_relative_to(WHEEL) and Path(mel.__file__).is_relative_to(WHEEL)
    return bs, mel
