"""User errors of the pretraining commands are one line and exit status 1 (issue 19, item 7): the staged
``python -m booster.recipes.pretraining.train`` (a stage out of order, a missing or empty data folder, no
``--data``, a bad option, a damaged checkpoint, a new tokenizer over a trained encoder; ``export`` from
another folder finds the run's tokenizer) and ``booster fit
--config pretraining/debug`` with a missing or empty data folder. Nothing is written for a refused command."""
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

TRAIN = [sys.executable, "-m", "booster.recipes.pretraining.train"]
TINY = ["--seconds", "1", "--batch-size", "2", "--steps", "2", "--levels", "2", "--codebook-size", "8",
        "--size", "debug", "--val-every", "1"]


def run_all(cmds, cwd, cwds=None) -> list[tuple[int, str]]:
    """(exit status, stderr) of each command (in ``cwd``, or ``cwds[i]`` where given), run side by side
    (each is mostly start-up time)."""
    procs = [subprocess.Popen(c, cwd=(cwds or [None] * len(cmds))[i] or cwd, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for i, c in enumerate(cmds)]
    return [(p.wait(timeout=600), p.communicate()[1]) for p in procs]


def one_line_error(rc, err) -> str:
    assert rc == 1 and "Traceback" not in err, err[-3000:]
    lines = [ln for ln in err.strip().splitlines() if "error" in ln]
    assert len(lines) == 1, err[-3000:]
    return lines[0]


@pytest.fixture()
def folders(tmp_path):
    (tmp_path / "music").mkdir()
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not audio")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.wav").write_bytes(np.random.default_rng(0).bytes(5000))   # not a WAV file
    t = np.arange(3 * 24000) / 24000
    for i in range(3):
        sf.write(tmp_path / "music" / f"t{i}.wav", (0.3 * np.sin(2 * np.pi * (220 + 50 * i) * t)).astype(np.float32),
                 24000)
    return tmp_path


CASES = {   # argv after the module (RUN: a fresh run folder) -> words the one line must hold
    "encoder before tokenizer": (["encoder", "--data", "music", "--run", "RUN"], ["tokenizer", "--run", "first"]),
    "export before checkpoint": (["export", "--run", "RUN"], ["no encoder checkpoint", "encoder --data"]),
    "missing data folder": (["tokenizer", "--data", "nowhere", "--run", "RUN"], ["'nowhere'", "does not exist"]),
    "folder with no audio": (["tokenizer", "--data", "empty", "--run", "RUN"], ["no audio files", "'empty'"]),
    "only unreadable audio": (["tokenizer", "--data", "junk", "--run", "RUN"], ["none of the 1", "x.wav"]),
    "no --data": (["tokenizer", "--run", "RUN"], ["--data DIR"]),
    "zero steps": (["tokenizer", "--data", "music", "--run", "RUN", "--steps", "0"], ["--steps must be >= 1"]),
    "nan seconds": (["tokenizer", "--data", "music", "--run", "RUN", "--seconds", "nan"], ["--seconds", "finite"]),
    "teacher without layer": (["tokenizer", "--data", "music", "--run", "RUN", "--teacher", "muq-mini"],
                              ["--teacher-layer N"]),
    "teacher layer out of range": (["tokenizer", "--data", "music", "--run", "RUN", "--teacher", "muq-mini",
                                    "--teacher-layer", "99"], ["[99] out of range", "0..4"]),
    "bad precision": (["tokenizer", "--data", "music", "--run", "RUN", "--precision", "fp99"], ["--precision"]),
}


def test_train_user_errors_are_one_line(folders):
    cmds = [[*TRAIN, *[f"r{i}" if a == "RUN" else a for a in argv]] for i, (argv, _) in enumerate(CASES.values())]
    for i, ((case, (_, words)), (rc, err)) in enumerate(zip(CASES.items(), run_all(cmds, folders))):
        line = one_line_error(rc, err)
        assert all(w in line for w in words), (case, line)
        assert not (folders / f"r{i}").exists(), case                              # nothing written
    assert not [p.name for p in folders.glob("audio_cache/*") if p.name != "hashes.json"]   # nothing decoded


def test_staged_run_refuses_a_damaged_checkpoint_and_a_new_tokenizer(folders, monkeypatch):
    from booster.recipes.pretraining.train import run_encoder, run_tokenizer
    monkeypatch.chdir(folders)
    tiny = dict(seconds=1.0, batch_size=2, steps=2, precision="32-true")
    run_tokenizer(["music"], "r", levels=2, codebook_size=8, stat_batches=1, **tiny)
    run_encoder(["music"], "r", size="debug", val_every=1, ckpt_minutes=60, **tiny)
    tok = (folders / "r" / "tokenizer.safetensors").read_bytes()
    (folders / "afile").write_text("x")
    last = folders / "r" / "checkpoints" / "last.ckpt"
    (folders / "sub").mkdir()
    new_tokenizer, out_is_file, elsewhere = run_all(
        [[*TRAIN, "tokenizer", "--data", "music", "--run", "r", *TINY],
         [*TRAIN, "export", "--run", "r", "--out", "afile"],
         [*TRAIN, "export", "--run", "../r", "--out", "../exported"]], folders, cwds=[None, None, folders / "sub"])
    assert elsewhere[0] == 0 and (folders / "exported" / "config.json").is_file(), elsewhere[1][-2000:]
    line = one_line_error(*new_tokenizer)
    assert "already holds an encoder" in line and "another --run" in line
    assert (folders / "r" / "tokenizer.safetensors").read_bytes() == tok            # the encoder's targets kept
    assert "--out 'afile'" in one_line_error(*out_is_file)
    last.write_bytes(last.read_bytes()[:3000])                                     # a copy cut short
    for result in run_all([[*TRAIN, "export", "--run", "r"],
                           [*TRAIN, "encoder", "--data", "music", "--run", "r", *TINY]], folders):
        line = one_line_error(*result)
        assert "last.ckpt" in line and "truncated" in line


def test_booster_fit_pretraining_missing_or_empty_folder(folders):
    cmds = [[sys.executable, "-m", "booster.cli", "fit", "--config", "pretraining/debug",
             "--trainer.default_root_dir", str(folders / f"run-{name}"), "--data.folders", f"[{folders / name}]",
             "--data.synth", "null", "--data.cache_dir", str(folders / "cache")] for name in ["nowhere", "empty"]]
    (missing, empty) = run_all(cmds, folders)
    line = one_line_error(*missing)
    assert "nowhere" in line and "does not exist" in line
    line = one_line_error(*empty)
    assert "empty" in line and "no audio files" in line
    assert not list(folders.glob("run-*/tokenizer*")) and not (folders / "cache").exists()
    assert not list(folders.glob("run-*"))   # a refused fit leaves no (empty) run folder of its own making
