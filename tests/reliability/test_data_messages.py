"""What the data errors tell a CLI user (issue 19, items 12 and 13): invalid data names the recipes' option
``--data.skip_invalid true`` (which every recipe's data module has), a folder made by ``booster synth`` that
differs from a config's ``data.generate`` names ``--data.generate null`` and is never offered for deletion, and
``booster synth`` never writes a set over another one."""
import json

import lightning.pytorch  # noqa: F401  (imported first: its log handler keeps pytest's session stream)
import numpy as np
import pytest
import soundfile as sf

from booster.cli import main

SR = 8000
QUICK = ["--data.sources", "[drums, vocals]", "--data.segment", "0.5", "--data.valid_segment", "0.5",
         "--data.batch_size", "2", "--data.samples_per_epoch", "4", "--data.test_seconds", "1",
         "--model.eval_bsseval", "false", "--trainer.enable_progress_bar", "false", "--trainer.max_steps", "1",
         "--trainer.limit_val_batches", "0", "--trainer.logger", "false", "--model.feature_cache", "null"]


def cli(capsys, *args):
    try:
        code = main([str(a) for a in args])
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return code, out.out, out.err


def error_line(err):
    lines = [line for line in err.strip().splitlines() if "error: " in line]
    assert len(lines) == 1, err
    return lines[0]


def track(folder, stems=("drums", "vocals"), seconds=1.0):
    folder.mkdir(parents=True, exist_ok=True)
    x = 0.1 * np.random.default_rng(0).standard_normal((int(seconds * SR), 2)).astype(np.float32)
    for s in stems:
        sf.write(folder / f"{s}.wav", x, SR)
    sf.write(folder / "mixture.wav", x * len(stems), SR)
    return folder


def test_invalid_tracks_name_the_cli_option_and_it_exists(tmp_path, capsys):
    from booster.recipes.separation.data import StemsDataModule

    root = tmp_path / "data"
    for name in ("a", "b"):
        track(root / "train" / name)
        track(root / "valid" / name)
    track(root / "train" / "broken", stems=("drums",))                     # no vocals.wav
    run = ["fit", "--config", "separation/demo", "--data.root", root, "--data.generate", "null",
           "--data.sample_rate", str(SR), "--trainer.default_root_dir", tmp_path / "run", *QUICK]
    code, _, err = cli(capsys, *run)
    assert code == 1 and "invalid" in error_line(err) and "broken" in err
    assert "--data.skip_invalid true" in err and "skip_invalid=True" in err and "remove" not in err
    dm = StemsDataModule(str(root), sources=["drums", "vocals"], sample_rate=SR, segment=0.5, skip_invalid=True)
    with pytest.warns(UserWarning, match="broken"):
        dm.setup("fit")
    assert [t.name for t in dm.train_tracks] == ["a", "b"]
    code, _, err = cli(capsys, *run, "--data.skip_invalid", "true")         # the option the message names
    assert code == 0, err
    assert (root / "train" / "broken" / "drums.wav").is_file()


def test_mixing_and_transcription_data_name_the_option(tmp_path):
    from booster.data.pairs import list_pairs
    from booster.errors import DatasetError
    from booster.recipes.mixing.data import MixingDataModule

    root = tmp_path / "mix"
    track(root / "train" / "a")
    (root / "train" / "a" / "mix").mkdir()
    sf.write(root / "train" / "a" / "mix" / "mixture.wav", np.zeros((SR, 2), np.float32), SR)
    track(root / "train" / "b")                                            # no mix/mixture.wav
    dm = MixingDataModule(str(root), stems=["drums", "vocals"], sample_rate=SR, segment=0.5, valid_holdout=0)
    with pytest.raises(DatasetError, match="--data.skip_invalid true"):
        dm._list("train")
    dm = MixingDataModule(str(root), stems=["drums", "vocals"], sample_rate=SR, segment=0.5, skip_invalid=True)
    with pytest.warns(UserWarning):
        assert [t.name for t in dm._list("train")] == ["a"]
    pairs = tmp_path / "pairs" / "train"
    pairs.mkdir(parents=True)
    sf.write(pairs / "x.wav", np.zeros(SR, np.float32), SR)
    (pairs / "x.mid").write_bytes(b"not midi")
    with pytest.raises(DatasetError, match="--data.skip_invalid true") as e:
        list_pairs(tmp_path / "pairs", "train")
    assert "remove" not in str(e.value)


def test_synth_folder_under_a_generate_config_names_generate_null(tmp_path, capsys):
    data = tmp_path / "mine"
    code, _, _ = cli(capsys, "synth", data, "--seconds", "1", "--split", "train=2", "--split", "valid=1",
                     "--renderer", "numpy", "--sample-rate", str(SR), "--no-progress", "--no-mix")
    assert code == 0
    before = sorted((p.relative_to(data), p.stat().st_mtime_ns) for p in data.rglob("*") if p.is_file())
    run = ["fit", "--config", "separation/demo", "--data.root", data, "--data.sample_rate", str(SR),
           "--trainer.default_root_dir", tmp_path / "run", *QUICK]
    code, _, err = cli(capsys, *run)
    line = error_line(err)
    assert code == 1 and "made with other settings" in line
    assert line.index("--data.generate null") < line.index("--data.root") and "remove" not in line
    assert sorted((p.relative_to(data), p.stat().st_mtime_ns) for p in data.rglob("*") if p.is_file()) == before
    code, _, err = cli(capsys, *run, "--data.generate", "null")         # what the line says: use it as it is
    assert code == 0, err
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    cut = tmp_path / "cut.ckpt"                                        # a real last.ckpt, truncated (item 11)
    cut.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    song = data / "train" / "song_0000" / "mixture.wav"
    for args in (["separate", song, "-o", tmp_path / "o", "--model", cut], ["transcribe", song, "-o", tmp_path / "o",
                 "--model", cut], ["test", "--config", "separation/demo", "--ckpt_path", cut]):
        code, _, err = cli(capsys, *args)
        assert code == 1 and "cut.ckpt' is truncated" in error_line(err) and "weights_only" not in err, args
    assert not (tmp_path / "o").exists()


def test_synth_never_writes_over_another_set(tmp_path, capsys):
    out = tmp_path / "set"
    args = ["--seconds", "1", "--renderer", "numpy", "--sample-rate", str(SR), "--no-progress", "--no-mix"]
    assert cli(capsys, "synth", out, "--tracks", "3", *args)[0] == 0
    report = json.loads((out / "synth_report.json").read_text())
    code, _, err = cli(capsys, "synth", out, "--tracks", "2", "--seed", "1", *args)
    assert code == 1 and "not empty" in error_line(err)
    assert json.loads((out / "synth_report.json").read_text()) == report
    assert sorted(p.name for p in (out / "train").iterdir()) == ["song_0000", "song_0001", "song_0002"]
    (tmp_path / "empty").mkdir()
    assert cli(capsys, "synth", tmp_path / "empty", "--tracks", "1", *args)[0] == 0     # an empty folder is fine
