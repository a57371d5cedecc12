"""LightningModule of the mixing recipe: a stems → stereo mix model (Mix-Wave-U-Net, CRAFx2), plain or boosted.

Everything generic (host plug-in, boost, optimiser groups, EMA, checkpoint metadata, live / cached
features, reports) is :class:`booster.training.BoosterModule`. This file holds what is mixing: the
stem slots, the loss (:class:`.metrics.MixLoss`: auraloss MR-STFT on the stereo mix + its sum and
difference), validation on fixed segments and the whole-track test with the mixing metrics.

Backbone features come from the sum of the input stems (training: live, per batch; validation and test:
through the feature cache when ``feature_cache`` is set). Shapes: stems ``[B, N, C, S]``, mix ``[B, 2, S]``.
"""
from __future__ import annotations

import torch

from booster.training import boosting
from booster.training.module import BoosterModule
from booster.training.report import Metric

from .inference import Mixer
from .metrics import HIGHER_IS_BETTER, METRICS, MixLoss, mix_metrics

DEFAULT_STEMS = ["drums", "bass", "other", "vocals"]
UNITS = {"si_sdr": "dB", "loudness_db": "LU", "centroid_hz": "Hz", "bandwidth_hz": "Hz", "crest_db": "dB"}


class MixingModule(BoosterModule):
    """Train / validate / test a mixer.

    Args (mixing): stems (the model's input slots), sample_rate, channels (per stem), segment (training
    length in seconds; set these under ``data:``, they are linked here), w_stereo / w_sum_diff (loss
    weights), eval_overlap / eval_batch (whole-track inference: chunk overlap, chunks per batch). The other
    arguments are the kit's (:class:`booster.training.BoosterModule`): host, size, host_kwargs, pretrained,
    pretrained_repo, boost, backbone, backbone_seed, boost_kwargs, feature_cache, lr, adapter_lr,
    weight_decay, betas, freeze_host, lora_rank, lora_alpha, lora_dropout, ema_decay, eval_dir, run_name,
    print_report.
    """

    task = "mixing"
    metrics = tuple(Metric(n, "mean", UNITS.get(n, ""), n in HIGHER_IS_BETTER) for n in METRICS)
    report_label = "mix"
    mean_row = False

    def __init__(self, host: str = "mix_wave_unet", stems: list[str] = DEFAULT_STEMS, sample_rate: int = 44100,
                 channels: int = 2, segment: float = 2.0, size: str = "full", host_kwargs: dict | None = None,
                 pretrained: str | None = None, pretrained_repo: str | None = None, boost: bool = False,
                 backbone: str = "debug", backbone_seed: int = 0, boost_kwargs: dict | None = None,
                 feature_cache: str | None = None, lr: float = 3e-4, adapter_lr: float | None = None,
                 weight_decay: float = 0.0, betas: tuple[float, float] = (0.9, 0.999), freeze_host: bool = False,
                 lora_rank: int = 0, lora_alpha: float | None = None, lora_dropout: float = 0.0,
                 ema_decay: float = 0.0, w_stereo: float = 1.0, w_sum_diff: float = 1.0, eval_overlap: float = 0.25,
                 eval_batch: int = 4, eval_dir: str | None = None, run_name: str | None = None,
                 print_report: bool = True):
        super().__init__(host=host, host_args=dict(stems=list(stems), sample_rate=sample_rate, channels=channels),
                         size=size, host_kwargs=host_kwargs, pretrained=pretrained, pretrained_repo=pretrained_repo,
                         boost=boost, backbone=backbone, backbone_seed=backbone_seed, boost_kwargs=boost_kwargs,
                         feature_cache=feature_cache, lr=lr, adapter_lr=adapter_lr, weight_decay=weight_decay,
                         betas=betas, freeze_host=freeze_host,
                         lora_rank=lora_rank, lora_alpha=lora_alpha, lora_dropout=lora_dropout, ema_decay=ema_decay,
                         eval_dir=eval_dir, run_name=run_name, print_report=print_report)
        self.loss_fn = MixLoss(w_stereo, w_sum_diff)

    # ---- kit hooks -------------------------------------------------------------------------------
    def task_meta(self) -> dict:
        h = self.hparams
        return {"stems": list(h.stems), "sample_rate": int(h.sample_rate), "channels": int(h.channels),
                "segment": float(h.segment)}

    def evaluated(self) -> dict:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        return {"seconds": getattr(getattr(dm, "hparams", None), "test_seconds", None),
                "overlap": float(self.hparams.eval_overlap), "sample_rate": int(self.hparams.sample_rate),
                "stems": list(self.hparams.stems)}

    def groups(self) -> list[str]:
        return ["mix"]

    def default_loss(self, stems: torch.Tensor, mix: torch.Tensor) -> torch.Tensor:
        """The recipe's loss of ``model(stems)`` against the reference ``mix`` (adapters active)."""
        return self.loss_fn(self.model(stems), mix)

    def mixer(self) -> Mixer:
        """An inference wrapper around the current weights (shares the modules)."""
        return Mixer(self.model, self.description(), overlap=self.hparams.eval_overlap,
                     batch_size=self.hparams.eval_batch, cache=self.feature_cache())

    # ---- steps -----------------------------------------------------------------------------------
    def on_train_epoch_start(self) -> None:
        ds = getattr(getattr(self.trainer, "datamodule", None), "_train", None)
        if ds is not None:
            ds.set_epoch(self.current_epoch)

    def training_step(self, batch, batch_idx):
        stems, mix = batch
        feats = self.live_features(stems.sum(1), self.hparams.sample_rate)
        with boosting.using(self.model, feats):
            loss = self.host_loss(stems, mix)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=stems.shape[0])
        return loss

    def validation_step(self, batch, batch_idx):
        stems, mix = batch
        feats = self.fixed_features(stems.sum(1), self.hparams.sample_rate)
        with boosting.using(self.model, feats):
            est = self.model(stems)
        bs = stems.shape[0]
        rows = [mix_metrics(e, m, self.hparams.sample_rate, self.loss_fn.stereo) for e, m in zip(est, mix)]
        self.log_valid("valid/loss", self.loss_fn(est, mix), bs, prog_bar=True)
        for name in ("mrstft", "si_sdr", "loudness_db"):
            self.log_valid(f"valid/{name}", float(sum(r[name] for r in rows) / bs), bs)

    def test_step(self, index, batch_idx):
        name, stems, mix = self.trainer.datamodule.load_test_track(int(index))
        est = self.mixer().mix_tensor(stems.to(self.device), cached=True).cpu()
        row = mix_metrics(est, mix, self.hparams.sample_rate, self.loss_fn.stereo)
        self.add_test_item(name, {"mix": row})
        self.log("test/mrstft", row["mrstft"], batch_size=1)
