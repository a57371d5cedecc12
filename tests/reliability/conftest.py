"""Fixtures of the reliability tests."""
import os
import subprocess

import pytest


@pytest.fixture()
def read_only_dir(tmp_path):
    """A folder nobody may write to: chmod 555 for a normal user; root ignores permission bits, so
    for root a read-only bind mount (skipped where mounting is not allowed)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    if os.geteuid() != 0:
        ro.chmod(0o555)
        yield ro
        ro.chmod(0o755)
        return
    if subprocess.run(["mount", "--bind", str(ro), str(ro)], capture_output=True).returncode != 0:
        pytest.skip("running as root without permission to mount a read-only folder")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(ro)], check=True, capture_output=True)
        yield ro
    finally:
        subprocess.run(["umount", str(ro)], capture_output=True)
