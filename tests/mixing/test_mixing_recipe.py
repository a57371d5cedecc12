"""`booster fit | test --config mixing/<name>`, `booster compare` and `booster mix` end to end."""
import json
import warnings

import pytest
import soundfile as sf
import torch

from booster.cli import main
from booster.training.cli import packaged_configs
from mixing_helpers import SR, write_folder

warnings.filterwarnings("ignore", message=".*(LeafSpec|num_workers|does not have many workers).*")

CONFIGS = ["demo", "wave_unet_baseline", "wave_unet_boosted", "crafx2_baseline", "crafx2_boosted"]
RATE = 8000  # the model's rate in these tests (files are 16 kHz: read resampled)


def _overrides(root, tmp, name):
    args = ["--data.root", str(root), "--data.generate", "null", "--data.sample_rate", str(RATE),
            "--data.segment", "0.5", "--data.valid_segment", "0.5", "--data.batch_size", "1",
            "--data.num_workers", "0", "--data.samples_per_epoch", "4", "--data.test_seconds", "2.0",
            "--trainer.default_root_dir", str(tmp), "--trainer.enable_progress_bar", "false",
            "--trainer.logger", "false", "--model.eval_dir", str(tmp / "eval"), "--model.run_name", name]
    if name != "demo":  # full-size hosts: same recipe at debug size to stay seconds-long on 2 CPUs
        args += ["--model.size", "debug"]
    if "boosted" in name:
        args += ["--model.backbone", "debug", "--model.feature_cache", str(tmp / "cache")]
    return args


def test_packaged_configs_are_listed():
    assert {f"mixing/{c}" for c in CONFIGS} <= set(packaged_configs())


@pytest.mark.parametrize("name", CONFIGS)
def test_every_config_fits_a_few_steps(name, mix_data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the configs write runs/... relative to the working directory
    assert main(["fit", "--config", f"mixing/{name}", *_overrides(mix_data, tmp_path, name),
                 "--trainer.fast_dev_run", "2"]) == 0


def test_boosted_fit_in_bf16_mixed_precision(mix_data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["fit", "--config", "mixing/demo", *_overrides(mix_data, tmp_path, "demo"), "--model.boost", "true",
                 "--model.host", "crafx2", "--trainer.precision", "bf16-mixed", "--trainer.fast_dev_run", "1"]) == 0


def test_fit_test_compare_and_mix(mix_data, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ckpt_dir = tmp_path / "ckpt"
    common = _overrides(mix_data, tmp_path, "crafx2_boosted")
    assert main(["fit", "--config", "mixing/crafx2_boosted", *common, "--trainer.max_steps", "2",
                 "--trainer.limit_val_batches", "1", "--trainer.val_check_interval", "2",
                 "--trainer.callbacks+=ModelCheckpoint", f"--trainer.callbacks.dirpath={ckpt_dir}",
                 "--trainer.callbacks.save_last=true"]) == 0
    last = ckpt_dir / "last.ckpt"
    ckpt = torch.load(last, map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 2 and ckpt["booster"]["task"] == "mixing" and ckpt["booster"]["boost"] is True
    assert ckpt["booster"]["host"]["name"] == "crafx2" and not any("backbone" in k for k in ckpt["state_dict"])
    assert main(["test", "--config", "mixing/crafx2_boosted", *common, "--ckpt_path", str(last)]) == 0
    report = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert report["task"] == "mixing" and list(report["items"]) == ["song_0000"]
    row = report["summary"]["mix"]
    assert {"mrstft", "si_sdr", "loudness_db", "centroid_hz", "width", "panning", "crest_db"} <= set(row)
    assert row["mrstft"] > 0
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "eval"), str(tmp_path / "eval")]) == 0
    assert "+0.00" in capsys.readouterr().out
    track = mix_data / "test" / "song_0000"
    out = tmp_path / "mixes"
    assert main(["mix", str(track), "-o", str(out), "--model", str(last), "--no-progress", "--device", "cpu",
                 "--export", str(tmp_path / "mixer.safetensors")]) == 0
    info = sf.info(str(out / "song_0000.wav"))
    assert info.channels == 2 and info.samplerate == RATE and info.frames == 2 * RATE  # 2-s track at 8 kHz
    first, _ = sf.read(str(out / "song_0000.wav"), dtype="float32")
    # the exported file mixes the same; other stem names, rates and channel counts are mapped and resampled
    odd = write_folder(tmp_path / "odd", {"Kick": (44100, 1), "vocals": (22050, 2)}, seconds=3.0)
    assert main(["mix", str(track), str(odd), "-o", str(tmp_path / "again"), "--model",
                 str(tmp_path / "mixer.safetensors"), "--alias", "drums=kick*", "--no-progress"]) == 0
    again, _ = sf.read(str(tmp_path / "again" / "song_0000.wav"), dtype="float32")
    assert (abs(again - first) < 1e-6).all()
    assert sf.info(str(tmp_path / "again" / "odd.wav")).frames == 3 * RATE


def test_mix_errors_are_one_line(mix_data, tmp_path, capsys):
    bad = write_folder(tmp_path / "bad", {"drums": (SR, 2), "theremin": (SR, 2)}, seconds=0.2)
    ckpt = tmp_path / "none.ckpt"
    assert main(["mix", str(bad), "-o", str(tmp_path / "o"), "--model", str(ckpt)]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["mix", str(tmp_path / "nope"), "-o", str(tmp_path / "o"), "--model", str(ckpt)]) == 1
    assert "is not a folder" in capsys.readouterr().err
    assert main(["mix", str(bad), "-o", str(tmp_path / "o"), "--model", str(ckpt), "--alias", "drums"]) == 1
    assert "SLOT=PATTERN" in capsys.readouterr().err
