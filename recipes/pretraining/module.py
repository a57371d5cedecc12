"""Lightning modules of the two pretraining stages (tokenizer, masked prediction) and their builders.

Both take typed keyword arguments (YAML / command line live in :mod:`.train`). The encoder is a plain
:class:`booster.MuQ`; :func:`export` writes it in the official layout (config.json + model.safetensors)
and the training-only parts (heads) next to it in ``training_parts.safetensors``.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import lightning as L
import torch

from ...errors import ConfigError
from ...fsutil import atomic_path, write_text
from ...muq import MuQ, MuQConfig
from ...training.ranks import ItemMeans, world
from .masked import MaskedPredictor
from .tokenizer import MelRVQ, TokenizerConfig, stack_frames

SIZES = {
    # name: (conv_dim, encoder_dim, depth, heads, ffn, kernel)
    "debug": (8, 32, 2, 4, 64, 7),
    "mini": (32, 256, 4, 4, 512, 15),
    "small": (64, 384, 6, 6, 1536, 31),
}


def encoder_config(size: str = "mini", stat: dict | None = None) -> MuQConfig:
    """A :class:`MuQConfig` of a named size (``debug``, ``mini``, ``small``, ``large``)."""
    if size == "large":
        cfg = MuQConfig.large()
    elif size in SIZES:
        conv, dim, depth, heads, ffn, kernel = SIZES[size]
        w2v2 = dict(MuQConfig().w2v2_config, num_attention_heads=heads, intermediate_size=ffn,
                    conv_depthwise_kernel_size=kernel)
        cfg = MuQConfig(conv_dim=conv, encoder_dim=dim, encoder_depth=depth, w2v2_config=w2v2)
    else:
        raise ConfigError(f"unknown encoder size {size!r}; choose from {sorted(SIZES) + ['large']}")
    if stat is not None:
        cfg.stat = dict(stat)
    return cfg.validate()


@torch.no_grad()
def mel_frontend(stat: dict | None):
    """The backbone's mel front end normalised with ``stat``: stage 1's input, as the encoder sees it."""
    return MuQ(encoder_config("debug", stat)).frontend


def mel_statistics(batches, hop_length: int = 240, n_mels: int = 128) -> dict:
    """dB-mel mean and std over audio batches ``[B, S]`` (the ``stat`` of the encoder's config)."""
    cfg = MuQConfig(hop_length=hop_length, n_mels=n_mels, stat={"melspec_2048_mean": 0.0,
                                                                "melspec_2048_std": 1.0})
    front = MuQ(encoder_config("debug", cfg.stat)).frontend
    total, sq, count = 0.0, 0.0, 0
    for wav in batches:
        x = front(wav).double()
        total, sq, count = total + x.sum().item(), sq + x.pow(2).sum().item(), count + x.numel()
    mean = total / count
    return {"melspec_2048_cnt": count, "melspec_2048_mean": mean,
            "melspec_2048_std": math.sqrt(max(sq / count - mean * mean, 1e-8))}


def init_encoder(init: str | None, size: str, stat: dict | None, seed: int = 0) -> MuQ:
    """A trainable encoder: from scratch (``size``, ``stat``) or from a checkpoint (``init``)."""
    if init:
        from ...muq import load_backbone
        enc = load_backbone(init, seed)
    else:
        torch.manual_seed(seed)
        enc = MuQ(encoder_config(size, stat))
    enc.requires_grad_(True)
    return enc.train()


class TokenizerModule(L.LightningModule):
    """Stage 1: fit a :class:`MelRVQ` to the (mel or teacher-layer) frames of random crops."""

    def __init__(self, tokenizer: dict | None = None, stat: dict | None = None, teacher: str | None = None,
                 teacher_layer: int | None = None, lr: float = 2e-3, teacher_model=None):
        super().__init__()
        self.save_hyperparameters(ignore=["teacher_model"])   # ``teacher_model``: ``teacher`` already loaded
        self.front = mel_frontend(stat) if teacher is None else None
        self.teacher = None
        if teacher is not None:
            from ...muq import load_backbone
            model = teacher_model if teacher_model is not None else load_backbone(teacher)
            object.__setattr__(self, "teacher", model.eval())
        self.rvq = MelRVQ(TokenizerConfig(**(tokenizer or {})))
        self._initialised = False

    @torch.no_grad()
    def frames(self, wav: torch.Tensor) -> torch.Tensor:
        """``wav`` [B, S] → frames [B, T, D_in]."""
        if self.teacher is not None:
            self.teacher.to(wav.device)
            return self.teacher.encode(wav, upto=self.hparams.teacher_layer,
                                       keep=[self.hparams.teacher_layer])[self.hparams.teacher_layer].float()
        return stack_frames(self.front(wav), 4)

    def training_step(self, wav, batch_idx):
        out = self.rvq.fit_step(self.frames(wav), first=not self._initialised and self.global_step == 0)
        self._initialised = True
        self.log_dict({"train/loss": out["loss"].detach(), "train/rel_error": out["relative_error"],
                       "train/commit": out["commitment_loss"]}, prog_bar=True)
        return out["loss"]

    def on_validation_epoch_start(self):
        c = self.rvq.config
        self.val_usage = torch.zeros(c.num_levels, c.codebook_size, device=self.device)
        self._valid_means = ItemMeans()   # each DDP rank validates its own shard: reduced once per epoch

    def validation_step(self, wav, batch_idx):
        out = self.rvq(self.frames(wav))
        for level in range(self.rvq.config.num_levels):
            self.val_usage[level] += torch.bincount(out["codes"][..., level].flatten(),
                                                    minlength=self.rvq.config.codebook_size)
        for key, value in (("val/rel_error", out["relative_error"]), ("val/recon", out["recon_loss"])):
            self._valid_means.add(key, value, wav.shape[0])

    def on_validation_epoch_end(self):
        if world()[1] > 1:
            torch.distributed.all_reduce(self.val_usage)   # codes used by any rank's shard
        logs = {k: v for k, (v, _) in self._valid_means.reduce().items()}
        used = (self.val_usage > 0).float().mean(-1)  # [N]
        logs.update({"val/usage_min": used.min(), "val/usage_mean": used.mean()})
        self.log_dict(logs, sync_dist=True, reduce_fx="max")   # already over every rank: equal values

    def configure_optimizers(self):
        return torch.optim.Adam(self.rvq.parameters(), lr=self.hparams.lr)


class PretrainModule(L.LightningModule):
    """Stage 2: masked token prediction. ``tokenizer``: path of a saved :class:`MelRVQ`."""

    def __init__(self, tokenizer: str, size: str = "mini", stat: dict | None = None, init: str | None = None,
                 mask_prob: float | None = None, mask_hop: float | None = None, cqt_weight: float = 0.0,
                 teacher: str | None = None, teacher_layer: int | None = None, lr: float = 5e-4,
                 weight_decay: float = 0.01, warmup_steps: int = 200, max_steps: int = 10_000, seed: int = 0):
        super().__init__()
        self.save_hyperparameters()
        encoder = init_encoder(init, size, stat, seed)
        rvq = MelRVQ.load(tokenizer)
        teacher_model = None
        if teacher is not None:
            from ...muq import load_backbone
            teacher_model = load_backbone(teacher)
        self.model = MaskedPredictor(encoder, rvq, mask_prob=mask_prob, mask_hop=mask_hop, cqt_weight=cqt_weight,
                                     teacher=teacher_model, teacher_layer=teacher_layer)

    @property
    def encoder(self) -> MuQ:
        return self.model.encoder

    def training_step(self, wav, batch_idx):
        out = self.model(wav)
        logs = {"train/loss": out["loss"].detach(), "train/acc0": out["acc"][0]}
        if "cqt_loss" in out:
            logs["train/cqt"] = out["cqt_loss"]
        self.log_dict(logs, prog_bar=True)
        return out["loss"]

    def validation_step(self, wav, batch_idx):
        gen = torch.Generator().manual_seed(batch_idx)  # the same masks at every validation
        out = self.model(wav, generator=gen)
        logs = {"val/ce": out["ce"]}
        logs.update({f"val/acc{i}": a for i, a in enumerate(out["acc"])})
        for key, value in logs.items():
            self._valid_means.add(key, value, wav.shape[0])

    def on_validation_epoch_start(self):
        self._valid_means = ItemMeans()   # each DDP rank validates its own shard: reduced once per epoch

    def on_validation_epoch_end(self):
        logs = {k: v for k, (v, _) in self._valid_means.reduce().items()}
        self.log_dict(logs, prog_bar=False, sync_dist=True, reduce_fx="max")   # already over every rank

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay,
                                betas=(0.9, 0.98))
        warm, total = max(1, self.hparams.warmup_steps), max(2, self.hparams.max_steps)

        def schedule(step):
            if step < warm:
                return (step + 1) / warm
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm)))) * 0.95 + 0.05

        return {"optimizer": opt, "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.LambdaLR(opt, schedule),
                                                   "interval": "step"}}


def export(module: PretrainModule, directory: str | Path, name: str = "muq-pretrained",
           extra: dict | None = None, step: int | None = None) -> Path:
    """Write the encoder in the official layout plus ``training_parts.safetensors`` and
    ``training.json`` (hyperparameters, step) next to it; returns ``directory``."""
    from safetensors.torch import save_file
    directory = Path(directory)
    enc = module.encoder
    was_training = enc.training
    enc.eval()
    enc.save_pretrained(directory)
    enc.train(was_training)
    parts = {k: v.detach().contiguous().cpu() for k, v in module.model.training_parts().items()}
    with atomic_path(directory / "training_parts.safetensors") as tmp:
        save_file(parts, str(tmp))
    meta = {"name": name, "global_step": int(module.global_step if step is None else step),
            "hparams": {k: v for k, v in dict(module.hparams).items() if _jsonable(v)}}
    meta.update(extra or {})
    write_text(directory / "training.json", json.dumps(meta, indent=2, sort_keys=True))
    return directory


def _jsonable(v) -> bool:
    try:
        json.dumps(v)
        return True
    except TypeError:
        return False


__all__ = ["TokenizerModule", "PretrainModule", "encoder_config", "mel_frontend", "mel_statistics", "export",
           "init_encoder"]
