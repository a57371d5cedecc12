"""booster.fsutil: atomic writes leave nothing behind on failure or kill, stale temp files are swept,
permissions follow the umask, output names are unique, checkpoint files are checked before loading."""
import os
import signal
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from booster.errors import CheckpointError
from booster.fsutil import (TEMP_SUFFIX, OutputError, atomic_path, check_checkpoint_file, check_output_dir,
                            sweep_temp_files, unique_output_names, write_text)


def leftovers(folder):
    return sorted(p.name for p in Path(folder).iterdir() if p.name.endswith(TEMP_SUFFIX))


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_failed_write_leaves_old_file_and_no_temp(tmp_path, error):
    target = tmp_path / "a.txt"
    write_text(target, "old")
    with pytest.raises(error):
        with atomic_path(target) as tmp:
            tmp.write_text("half of the new")
            raise error("killed")
    assert target.read_text() == "old" and leftovers(tmp_path) == []


def test_permissions_follow_umask(tmp_path):
    from safetensors.torch import save_file
    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "w.safetensors") as tmp:
            save_file({"x": torch.zeros(2)}, str(tmp))
        os.umask(0o077)
        write_text(tmp_path / "private.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "w.safetensors").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "private.txt").stat().st_mode & 0o777 == 0o600


def test_sigkill_mid_write_is_swept_by_next_writer(tmp_path):
    """A writer killed with SIGKILL leaves its temp file; the next write into the folder removes it,
    while the temp file of a live writer is kept."""
    script = textwrap.dedent(f"""
        import sys, time
        from booster.fsutil import atomic_path
        with atomic_path({str(tmp_path / 'big.bin')!r}) as tmp:
            with open(tmp, 'wb') as f:
                f.write(b'x' * 1_000_000); f.flush()
                print('writing', flush=True)
                time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    live = leftovers(tmp_path)
    assert len(live) == 1
    assert sweep_temp_files(tmp_path) == []  # the writer is alive: its file is kept
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert leftovers(tmp_path) == live and not (tmp_path / "big.bin").exists()
    removed = sweep_temp_files(tmp_path)
    assert [p.name for p in removed] == live and leftovers(tmp_path) == []


def test_foreign_and_fresh_remote_temp_files_are_kept(tmp_path):
    (tmp_path / "user.tmp").write_text("mine")                         # not our naming
    remote = tmp_path / f".x.wav.deadbeef-123-abcd1234{TEMP_SUFFIX}"  # another host, fresh
    remote.write_text("...")
    assert sweep_temp_files(tmp_path) == []
    old = time.time() - 3 * 24 * 3600
    os.utime(remote, (old, old))
    assert sweep_temp_files(tmp_path) == [remote] and (tmp_path / "user.tmp").exists()


def test_unique_output_names(tmp_path):
    for rel in ["a/song.wav", "b/song.wav", "c/song.wav", "c/song.flac", "c/other.wav", "d/in/x.wav",
                "d/in/sub/x.wav", "e/in/x.wav", "f/Song.wav"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    t = tmp_path
    names = unique_output_names([t / "a/song.wav", t / "b/song.wav"])
    assert sorted(names.values()) == ["a/song", "b/song"]
    names = unique_output_names([t / "c/song.wav", t / "c/song.flac", t / "c/other.wav"])
    assert names[t / "c/song.wav"] == "song.wav" and names[t / "c/song.flac"] == "song.flac"
    assert names[t / "c/other.wav"] == "other"
    walked = [t / "d/in/x.wav", t / "d/in/sub/x.wav", t / "e/in/x.wav"]
    names = unique_output_names(walked, [t / "d/in", t / "e/in"])
    assert names[t / "d/in/sub/x.wav"] == "sub/x" and {names[t / "d/in/x.wav"], names[t / "e/in/x.wav"]} == {
        "d/in/x", "e/in/x"}
    names = unique_output_names([t / "a/song.wav", t / "f/Song.wav"])  # case-insensitive file systems
    assert sorted(names.values()) == ["a/song", "f/Song"]
    assert len(unique_output_names([t / "a/song.wav", t / "a/../a/song.wav"])) == 1  # same file once
    mixed = unique_output_names([t / "a/song.wav", t / "b/song.wav", t / "c/song.flac"])
    assert len({v.casefold() for v in mixed.values()}) == 3


def test_check_output_dir(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="existing file"):
        check_output_dir(tmp_path / "file")
    with pytest.raises(OutputError, match="cannot create"):
        check_output_dir(tmp_path / "file" / "sub")
    assert check_output_dir(tmp_path / "new" / "deep").is_dir()


def test_read_only_output_dir(read_only_dir):
    with pytest.raises(OutputError, match="not writable") as e:
        check_output_dir(read_only_dir, "-o")
    assert str(e.value).startswith(f"-o {str(read_only_dir)!r}")
    with pytest.raises(OutputError, match="cannot create"):
        check_output_dir(read_only_dir / "sub")


def _ckpt(path, obj):
    torch.save(obj, path)
    return path


@pytest.mark.parametrize("damage, message", [
    ("missing", "does not exist"), ("empty", "empty"), ("truncated", "truncated"),
    ("random", "not a PyTorch checkpoint"), ("pickle", "raw pickle"), ("folder", "is a folder"),
    ("crc", "CRC"),
])
def test_checkpoint_file_checks(tmp_path, damage, message):
    import pickle
    good = _ckpt(tmp_path / "good.ckpt", {"state_dict": {"w": torch.full((256,), 1234.5)}, "global_step": 3})
    assert check_checkpoint_file(good) == good
    bad = tmp_path / "bad.ckpt"
    data = good.read_bytes()
    if damage == "empty":
        bad.write_bytes(b"")
    elif damage == "truncated":
        bad.write_bytes(data[: len(data) // 2])
    elif damage == "random":
        bad.write_bytes(os.urandom(4096))
    elif damage == "pickle":
        bad.write_bytes(pickle.dumps({"state_dict": {}}))
    elif damage == "folder":
        bad.mkdir()
    elif damage == "crc":
        at = data.index(struct.pack("<f", 1234.5) * 4)  # inside the tensor record
        bad.write_bytes(data[:at] + b"\xff\xff" + data[at + 2:])
    with pytest.raises(CheckpointError, match=message) as e:
        check_checkpoint_file(bad, "--ckpt_path")
    assert "\n" not in str(e.value) and "--ckpt_path" in str(e.value)


def test_pipe_safe_stops_quietly_when_the_reader_goes_away():
    """``booster compare ... --json | head``: no BrokenPipeError traceback, exit status 0."""
    code = ("from booster.fsutil import pipe_safe\n"
            "with pipe_safe():\n    for i in range(200000): print('line', i)\n")
    r = subprocess.run(f"{sys.executable} -c \"{code}\" | head -n 2", shell=True, capture_output=True, text=True,
                       timeout=120, executable="/bin/bash")
    assert r.stdout == "line 0\nline 1\n" and "Traceback" not in r.stderr and "BrokenPipe" not in r.stderr, r.stderr
    plain = code.replace("with pipe_safe():\n    ", "if True:\n    ")
    r = subprocess.run(f"set -o pipefail; {sys.executable} -c \"{plain}\" | head -n 2", shell=True,
                       capture_output=True, text=True, timeout=120, executable="/bin/bash")
    assert "BrokenPipeError" in r.stderr  # what the guard prevents


@pytest.mark.parametrize("damage, message", [("missing", "does not exist"), ("empty", "empty or truncated"),
                                             ("truncated", "truncated"), ("random", "not a safetensors file"),
                                             ("header", "unreadable header")])
def test_safetensors_file_checks(tmp_path, damage, message):
    from safetensors.torch import save_file
    from booster.fsutil import check_safetensors_file
    good = tmp_path / "good.safetensors"
    save_file({"w": torch.ones(1000)}, str(good), metadata={"format": "x"})
    assert check_safetensors_file(good) == {"format": "x"}
    bad, data = tmp_path / "bad.safetensors", good.read_bytes()
    if damage == "empty":
        bad.write_bytes(b"")
    elif damage == "truncated":
        bad.write_bytes(data[:-10])
    elif damage == "random":
        bad.write_bytes(os.urandom(300))
    elif damage == "header":
        bad.write_bytes(data[:8] + b"\xff" * (len(data) - 8))
    with pytest.raises(CheckpointError, match=message) as e:
        check_safetensors_file(bad, "--model")
    assert "\n" not in str(e.value)


def test_concurrent_writers_leave_one_complete_file(tmp_path):
    """Two runs writing the same output at once: the file is one writer's complete content."""
    import threading
    target = tmp_path / "same.txt"
    contents = [str(i) * 200_000 for i in range(4)]

    def writer(text):
        for _ in range(20):
            write_text(target, text)

    threads = [threading.Thread(target=writer, args=(c,)) for c in contents]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert target.read_text() in contents and leftovers(tmp_path) == []


def test_legacy_temp_files_of_dead_processes_are_swept(tmp_path):
    """Versions before fsutil named temp files .<name>.tmp<pid> (audio) and .<name>.<pid>.tmp (features)."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    old = time.time() - 2 * 3600
    legacy = [tmp_path / f".song.wav.tmp{dead}", tmp_path / f".a.safetensors.{dead}.tmp"]
    keep = [tmp_path / f".live.wav.tmp{os.getpid()}", tmp_path / "notes.tmp1", tmp_path / f".x.{dead}.tmpfile"]
    for p in legacy + keep:
        p.write_text("x")
        os.utime(p, (old, old))
    fresh = tmp_path / f".fresh.wav.tmp{dead}"
    fresh.write_text("x")  # too new to be sure
    assert sorted(sweep_temp_files(tmp_path)) == sorted(legacy)
    assert all(p.exists() for p in keep + [fresh])
