"""MuQConfig is validated on load: one clear error naming each bad field (issue 9, item 7)."""
import json
import math

import pytest

from booster.cli import main
from booster.errors import CheckpointError
from booster.muq.config import MuQConfig
from official_layout import official_state_dict, reduced_config, write_checkpoint


def bad(**changes):
    d = MuQConfig.debug().to_dict()
    for key, value in changes.items():
        if "." in key:
            outer, inner = key.split(".")
            d[outer] = dict(d[outer], **{inner: value})
        else:
            d[key] = value
    return d


@pytest.mark.parametrize("changes, message", [
    ({"stat.melspec_2048_std": 0}, "stat.melspec_2048_std=0 must be a finite number > 0"),
    ({"stat.melspec_2048_std": -3.0}, "melspec_2048_std=-3.0"),
    ({"stat.melspec_2048_mean": "x"}, "stat.melspec_2048_mean='x' must be a finite number"),
    ({"hop_length": 0}, "hop_length=0 must be a positive integer"),
    ({"encoder_dim": "abc"}, "encoder_dim='abc' must be a positive integer"),
    ({"encoder_depth": 2.5}, "encoder_depth=2.5 must be a positive integer"),
    ({"n_mels": True}, "n_mels=True must be a positive integer"),
    ({"label_rate": 30}, "label_rate=30"),
    ({"is_flash": "yes"}, "is_flash='yes' must be true or false"),
    ({"stat": [1, 2]}, "stat=[1, 2] must be a JSON object"),
    ({"w2v2_config.num_attention_heads": 0}, "w2v2_config.num_attention_heads=0 must be a positive integer"),
    ({"w2v2_config.layer_norm_eps": float("nan")}, "w2v2_config.layer_norm_eps=nan"),
    ({"w2v2_config.conv_depthwise_kernel_size": 6}, "conv_depthwise_kernel_size=6 must be odd"),
    ({"w2v2_config.hidden_act": "tanh"}, "hidden_act='tanh'"),
])
def test_each_bad_field_is_named(changes, message):
    with pytest.raises(CheckpointError) as e:
        MuQConfig.from_dict(bad(**changes), source="'x/config.json'")
    assert message in str(e.value) and str(e.value).startswith("'x/config.json': invalid field(s): ")


def test_all_bad_fields_in_one_message():
    with pytest.raises(CheckpointError) as e:
        MuQConfig.from_dict(bad(hop_length=0, encoder_dim="abc", **{"stat.melspec_2048_std": 0}))
    msg = str(e.value)
    assert all(k in msg for k in ("hop_length=0", "encoder_dim='abc'", "melspec_2048_std=0")) and "\n" not in msg


def test_valid_configs_pass():
    for cfg in (MuQConfig.debug(), MuQConfig.large(), reduced_config()):
        assert MuQConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))).architecture() == cfg.architecture()
    assert math.isclose(MuQConfig.large().mel_std, 18.417922652295623)


@pytest.mark.parametrize("field, value, message", [
    ("hop_length", 0, "hop_length=0"), ("encoder_dim", "abc", "encoder_dim='abc'"),
    ("stat", {"melspec_2048_mean": 6.7, "melspec_2048_std": 0}, "melspec_2048_std=0"),
])
def test_cli_checkpoint_with_bad_config_is_one_line(tmp_path, capsys, field, value, message):
    """Before: std 0 wrote NaN features with exit 0, hop_length 0 and encoder_dim "abc" crashed."""
    import soundfile as sf
    from audio_helpers import music_like
    cfg = reduced_config()
    ckpt = write_checkpoint(tmp_path / "ckpt", cfg, official_state_dict(cfg))
    d = json.loads((ckpt / "config.json").read_text())
    d[field] = value
    (ckpt / "config.json").write_text(json.dumps(d))
    sf.write(str(tmp_path / "a.wav"), music_like(1.0).numpy().T, 24000)
    code = main(["features", str(tmp_path / "a.wav"), "-o", str(tmp_path / "o"), "--checkpoint", str(ckpt),
                 "--no-progress", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 1 and message in err and "config.json" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "o" / "a.safetensors").exists()
