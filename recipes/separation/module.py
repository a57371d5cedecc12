"""LightningModule of the separation recipe: a host separator, plain (baseline) or boosted.

Everything generic (host plug-in, boost, optimiser groups, EMA, checkpoint metadata, live/cached
features, reports) is :class:`booster.training.BoosterModule`. This file holds what is separation: the
sources and their loss weights, validation SDR, full-track test with museval.

Losses are each host's own (its plug-in's ``loss``): waveform L1 for HTDemucs, magnitude MSE per
target for Open-Unmix, BS-RoFormer's L1 + multi-resolution STFT loss; waveform L1 for a host without one.
Shapes: mixture ``[B, C, S]``, sources ``[B, N, C, S]``.
"""
from __future__ import annotations

import torch

from booster.errors import ConfigError
from booster.training import boosting
from booster.training.module import BoosterModule

from .evaluation import METRICS
from .inference import Separator, inherited_inference

DEFAULT_SOURCES = ["drums", "bass", "other", "vocals"]


class SeparationModule(BoosterModule):
    """Train / validate / test a separator.

    Args (separation): sources, sample_rate, channels, segment (training length in seconds; set them under
    ``data:``, they are linked here), source_weights (loss weight per source), eval_overlap (chunk overlap
    of full-track inference), eval_batch (chunks per batch at inference), eval_bsseval (museval BSSEval v4
    SDR/SIR/ISR/SAR in the test report; false: global SDR only, much faster, e.g. for studies). The other arguments are the kit's
    (:class:`booster.training.BoosterModule`): host, size, host_kwargs, pretrained, pretrained_repo, boost,
    backbone, backbone_seed, boost_kwargs, feature_cache, lr, adapter_lr, weight_decay, betas, freeze_host, lora_rank,
    lora_alpha, lora_dropout, ema_decay, eval_dir, run_name, print_report.
    """

    task = "separation"
    metrics = METRICS
    report_label = "source"
    mean_row = True

    def __init__(self, host: str = "htdemucs", sources: list[str] = DEFAULT_SOURCES, sample_rate: int = 44100,
                 channels: int = 2, segment: float = 6.0, size: str = "full", host_kwargs: dict | None = None,
                 pretrained: str | None = None, pretrained_repo: str | None = None, boost: bool = False,
                 backbone: str = "debug", backbone_seed: int = 0, boost_kwargs: dict | None = None,
                 feature_cache: str | None = None, lr: float = 3e-4, adapter_lr: float | None = None,
                 weight_decay: float = 0.0, betas: tuple[float, float] = (0.9, 0.999), freeze_host: bool = False,
                 lora_rank: int = 0, lora_alpha: float | None = None, lora_dropout: float = 0.0,
                 ema_decay: float = 0.0, source_weights: list[float] | None = None, eval_overlap: float = 0.25,
                 eval_batch: int = 4, eval_bsseval: bool = True, eval_dir: str | None = None,
                 run_name: str | None = None, print_report: bool = True):
        if source_weights is not None and len(source_weights) != len(sources):
            raise ConfigError(f"source_weights has {len(source_weights)} values for {len(sources)} sources")
        super().__init__(host=host, host_args=dict(sources=list(sources), sample_rate=sample_rate,
                                                   channels=channels, segment=segment),
                         size=size, host_kwargs=host_kwargs, pretrained=pretrained, pretrained_repo=pretrained_repo,
                         boost=boost, backbone=backbone, backbone_seed=backbone_seed, boost_kwargs=boost_kwargs,
                         feature_cache=feature_cache, lr=lr, adapter_lr=adapter_lr, weight_decay=weight_decay,
                         betas=betas, freeze_host=freeze_host,
                         lora_rank=lora_rank, lora_alpha=lora_alpha, lora_dropout=lora_dropout, ema_decay=ema_decay,
                         eval_dir=eval_dir, run_name=run_name, print_report=print_report)
        self.register_buffer("_weights", torch.tensor(source_weights or [1.0] * len(sources)), persistent=False)
        if not eval_bsseval:  # the report declares only what is measured
            self.metrics = tuple(m for m in METRICS if m.name == "gSDR")

    # ---- kit hooks -------------------------------------------------------------------------------
    def task_meta(self) -> dict:
        h = self.hparams
        return {**inherited_inference(h.pretrained), "sources": list(h.sources), "sample_rate": int(h.sample_rate),
                "channels": int(h.channels), "segment": float(h.segment)}

    def evaluated(self) -> dict:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        return {"seconds": getattr(getattr(dm, "hparams", None), "test_seconds", None),
                "overlap": float(self.hparams.eval_overlap), "sample_rate": int(self.hparams.sample_rate),
                "bsseval": bool(self.hparams.eval_bsseval)}

    def groups(self) -> list[str]:
        return list(self.hparams.sources)

    def separator(self) -> Separator:
        """An inference wrapper around the current weights (shares the modules)."""
        return Separator(self.model, self.description(), overlap=self.hparams.eval_overlap,
                         batch_size=self.hparams.eval_batch, cache=self.feature_cache())

    # ---- losses ----------------------------------------------------------------------------------
    def default_loss(self, mix: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
        """Per-source waveform L1 ``[N]``, for hosts whose plug-in has no ``loss`` hook."""
        est = self.model(mix)
        if est.shape != sources.shape:
            raise ConfigError(f"host {self.hparams.host!r} returned {tuple(est.shape)} for sources "
                              f"{tuple(sources.shape)}; a separation host maps [B, C, S] to [B, N, C, S]")
        return (est - sources).abs().mean(dim=(2, 3)).mean(0)

    def live_features(self, mix: torch.Tensor, sample_rate: int | None = None):
        return super().live_features(mix, sample_rate or self.hparams.sample_rate)

    def fixed_features(self, mix: torch.Tensor, sample_rate: int | None = None):
        return super().fixed_features(mix, sample_rate or self.hparams.sample_rate)

    def compute_loss(self, mix: torch.Tensor, sources: torch.Tensor, features=None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(weighted loss, per-source loss [N])`` with the host's own loss."""
        if sources.dim() != 4 or sources.shape[0] != mix.shape[0] or sources.shape[-1] != mix.shape[-1]:
            raise ValueError(f"sources {tuple(sources.shape)} do not match mixture {tuple(mix.shape)}")
        with boosting.using(self.model, features):
            per = self.host_loss(mix, sources)
        w = self._weights.to(per)
        return (per * w).sum() / w.sum(), per

    # ---- Lightning hooks -------------------------------------------------------------------------
    def on_train_epoch_start(self) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        ds = getattr(dm, "_train", None)
        if ds is not None:
            ds.set_epoch(self.current_epoch)

    def training_step(self, batch, batch_idx):
        mix, sources = batch
        loss, per = self.compute_loss(mix, sources, self.live_features(mix))
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=mix.shape[0])
        return loss

    def validation_step(self, batch, batch_idx):
        from .evaluation import global_sdr
        mix, sources = batch
        sep = self.separator()   # features per chunk as in training (and test); the cache holds them
        est = torch.stack([sep.separate_tensor(m, cached=True) for m in mix])
        sdr = torch.stack([global_sdr(s, e) for s, e in zip(sources, est)]).mean(0)  # [N]
        bs = mix.shape[0]
        self.log_valid("valid/l1", (est - sources).abs().mean(), bs)
        self.log_valid("valid/nsdr", sdr.mean(), bs, prog_bar=True)
        for name, v in zip(self.hparams.sources, sdr):
            self.log_valid(f"valid/nsdr_{name}", v, bs)

    def test_step(self, index, batch_idx):
        from .evaluation import evaluate_track
        name, mix, sources = self.trainer.datamodule.load_test_track(int(index))
        est = self.separator().separate_tensor(mix.to(self.device), cached=True).cpu()
        row = evaluate_track(sources, est, list(self.hparams.sources), self.hparams.sample_rate,
                             bsseval=bool(self.hparams.eval_bsseval))
        self.add_test_item(name, row)
        self.log("test/gSDR", torch.tensor([r["gSDR"] for r in row.values()]).mean(), batch_size=1)
