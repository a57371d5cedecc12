"""The LightningModule: host losses, boosted = baseline at init, what trains, pretrained host weights."""
import json

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from booster.errors import CheckpointError, ConfigError
from booster.recipes.separation.data import StemsDataModule
from booster.recipes.separation.module import SeparationModule
from booster.training.hosts import HostSpec, build_host, host_from_spec

from recipe_helpers import SOURCES, trainer_kwargs


def _module(host, boost, **kw):
    torch.manual_seed(0)
    return SeparationModule(host=host, sources=SOURCES, segment=1.0, size="debug", boost=boost, **kw)


def _batch(seed=0, seconds=1.0):
    g = torch.Generator().manual_seed(seed)
    srcs = 0.1 * torch.randn(2, 2, 2, int(seconds * 44100), generator=g)
    return srcs.sum(1), srcs


@pytest.mark.parametrize("host", ["htdemucs", "openunmix"])
def test_losses_match_the_hosts_training(host):
    m = _module(host, False).train()
    mix, srcs = _batch()
    torch.manual_seed(1)
    loss, per = m.compute_loss(mix, srcs)
    torch.manual_seed(1)
    if host == "htdemucs":
        ref = F.l1_loss(m.model(mix), srcs)                       # waveform L1
    else:
        X = m.model.complexnorm(m.model.stft(mix))
        refs = [F.mse_loss(m.model.target_models[s](X), m.model.complexnorm(m.model.stft(srcs[:, j].contiguous())))
                for j, s in enumerate(SOURCES)]                    # magnitude MSE per target
        ref = torch.stack(refs).mean()
    assert per.shape == (2,)
    torch.testing.assert_close(loss, ref, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("host", ["htdemucs", "openunmix"])
def test_boosted_equals_baseline_at_init_then_trains_host_and_adapters(host, stems_root, tmp_path):
    base, boosted = _module(host, False).train(), _module(host, True).train()
    mix, srcs = _batch()
    torch.manual_seed(2)
    lb, _ = base.compute_loss(mix, srcs)
    torch.manual_seed(2)
    lo, _ = boosted.compute_loss(mix, srcs, boosted.live_features(mix))
    torch.testing.assert_close(lo, lb, rtol=1e-5, atol=1e-7)   # zero-initialised adapters
    before = {k: v.clone() for k, v in boosted.model.state_dict().items()}
    dm = StemsDataModule(str(stems_root), sources=SOURCES, segment=1.0, samples_per_epoch=4, batch_size=2)
    L.Trainer(**trainer_kwargs(tmp_path, max_steps=2, limit_val_batches=1, gradient_clip_val=1.0)).fit(boosted, dm)
    after = boosted.model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any(k.startswith("adapters.") for k in changed)
    assert any(k.startswith("host.") for k in changed)        # fine-tuned end to end (train_host)
    assert boosted.trainer.callback_metrics["valid/nsdr"].isfinite()


def test_freeze_host_trains_only_adapters_and_ema(stems_root, tmp_path):
    m = _module("openunmix", True, freeze_host=True, ema_decay=0.5)
    before = {k: v.clone() for k, v in m.model.state_dict().items()}
    dm = StemsDataModule(str(stems_root), sources=SOURCES, segment=1.0, samples_per_epoch=6, batch_size=2)
    L.Trainer(**trainer_kwargs(tmp_path, max_steps=3, limit_val_batches=0)).fit(m, dm)
    after = m.model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k]) and before[k].is_floating_point()}
    assert changed and all(k.startswith("adapters.") or "running_" in k for k in changed)
    k = next(k for k in changed if k.startswith("adapters."))
    assert not torch.equal(m._ema[k], after[k]) and not torch.equal(m._ema[k], before[k])
    with pytest.raises(ConfigError, match="boost=True"):
        _module("openunmix", False, freeze_host=True)


def test_datamodule_split_fraction_and_generation(tmp_path, stems_root):
    dm = StemsDataModule(str(stems_root), sources=SOURCES, segment=0.5, valid_segment=1.0, fraction=0.5,
                         samples_per_epoch=3, batch_size=1)
    dm.setup("fit")
    assert len(dm._train.tracks) == 1 and [t.name for t in dm.valid_tracks] == ["t0"]
    mix, srcs = next(iter(dm.train_dataloader()))
    assert mix.shape == (1, 2, 22050) and srcs.shape == (1, 2, 2, 22050)
    torch.testing.assert_close(mix, srcs.sum(1))
    assert len(dm._valid) == 2                                  # 2 s track, 1 s segments
    gen = StemsDataModule(str(tmp_path / "synth"), segment=1.0, valid_holdout=1,
                          generate={"splits": {"train": 2}, "seconds": 1.5, "seed": 3})
    gen.prepare_data()
    gen.setup("fit")
    assert len(gen.train_tracks) == 1 and len(gen.valid_tracks) == 1  # no valid folder: held out


def test_pretrained_hosts_from_local_files(tmp_path):
    torch.manual_seed(0)
    src, _ = build_host("htdemucs", sources=SOURCES, segment=1.0, size="debug")
    args, kwargs = src._init_args_kwargs  # demucs' own package layout (what its release files hold)
    torch.save({"klass": type(src), "args": args, "kwargs": kwargs, "state": src.state_dict(),
                "training_args": {}}, tmp_path / "tinydemucs.th")
    m, spec = build_host("htdemucs", sources=SOURCES, pretrained="tinydemucs", pretrained_repo=str(tmp_path))
    for a, b in zip(src.state_dict().values(), m.state_dict().values()):
        torch.testing.assert_close(a, b)
    rebuilt = host_from_spec(HostSpec.from_dict(json.loads(json.dumps(spec.to_dict()))))  # JSON-safe, same arch
    assert rebuilt.state_dict().keys() == m.state_dict().keys()
    with pytest.raises(ConfigError, match="separates"):
        build_host("htdemucs", sources=["a", "b"], pretrained="tinydemucs", pretrained_repo=str(tmp_path))
    with pytest.raises(CheckpointError, match="cannot load demucs model 'nope'"):
        build_host("htdemucs", sources=SOURCES, pretrained="nope", pretrained_repo=str(tmp_path))

    umx, _ = build_host("openunmix", sources=SOURCES, size="debug")
    for s in SOURCES:
        torch.save(umx.target_models[s].state_dict(), tmp_path / f"{s}.pth")
        (tmp_path / f"{s}.json").write_text(json.dumps({"args": {"nfft": 512, "nhop": 128, "hidden_size": 16,
                                                                 "nb_channels": 2, "nb_layers": 1}}))
    loaded, _ = build_host("openunmix", sources=SOURCES, pretrained=str(tmp_path))
    x = torch.rand(1, 2, 257, 10)
    loaded.eval(), umx.eval()
    torch.testing.assert_close(loaded.target_models["vocals"](x), umx.target_models["vocals"](x))


def test_eval_bsseval_false_reports_global_sdr_only(stems_root, tmp_path):
    """The fast test report (studies): only gSDR is declared and measured, and the report says so."""
    module = _module("htdemucs", False, eval_bsseval=False, eval_dir=str(tmp_path / "eval"), print_report=False)
    assert [m.name for m in module.metrics] == ["gSDR"]
    assert [m.name for m in SeparationModule.metrics][:1] == ["SDR"]  # the class keeps the full set
    dm = StemsDataModule(str(stems_root), sources=SOURCES, segment=1.0, samples_per_epoch=2, batch_size=2,
                         test_seconds=1.0)
    trainer = L.Trainer(**trainer_kwargs(tmp_path, max_steps=1, limit_val_batches=0))
    trainer.fit(module, dm)
    trainer.test(module, dm, verbose=False)
    report = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert [m["name"] for m in report["metrics"]] == ["gSDR"]
    assert report["evaluated"]["bsseval"] is False
    assert set(report["summary"]["mean"]) == {"gSDR"}
