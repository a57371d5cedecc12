"""LightningModule of the separation recipe: a host separator, plain (baseline) or boosted with MuQ.

Losses follow each host's own training: waveform L1 for HTDemucs (demucs' solver), magnitude
spectrogram MSE per target for Open-Unmix (open-unmix's train script). AdamW; gradient clipping is the
Trainer's ``gradient_clip_val``; optional EMA of the trainable weights (used for validation, test and
export when enabled). Live MuQ features for training (random remixes), cached features where the
mixture is fixed (validation, test). Checkpoints hold host + adapters and a JSON description
(``checkpoint["booster"]``), never the frozen backbone and never pickled classes.

Shapes: mixture ``[B, C, S]``, sources ``[B, N, C, S]``, spectrograms ``[B, C, F, T]``.
"""
from __future__ import annotations

import time
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F

from booster.errors import CheckpointError, ConfigError

from . import boosting
from .hosts import build_host, host_spec, is_openunmix, spectrogram, spectrogram_output
from .inference import FORMAT_VERSION, Separator

DEFAULT_SOURCES = ["drums", "bass", "other", "vocals"]


class SeparationModule(L.LightningModule):
    """Train / validate / test a separator.

    Args:
        host: "htdemucs" | "openunmix".  size: "full" | "debug".  host_kwargs: architecture overrides.
        pretrained / pretrained_repo: start from published host weights (see ``hosts.build_host``).
        boost: inject MuQ through ``booster.adapters.<host>.boost(host, backbone, **boost_kwargs)``.
        backbone: MuQ checkpoint, a directory, a hub id or "debug" (``backbone_seed`` for debug).
        feature_cache: folder of the on-disk feature cache for validation / test mixtures (None: off).
        lr / adapter_lr: AdamW learning rates of host and adapter parameters. freeze_host: train only
        the adapters. ema_decay: 0 disables EMA. source_weights: loss weight per source.
        eval_overlap: chunk overlap of full-track inference. eval_dir: where ``test`` writes results
        (default ``<default_root_dir>/eval``); run_name names the run in them; print_report prints the table.
    """

    def __init__(self, host: str = "htdemucs", sources: list[str] = DEFAULT_SOURCES, sample_rate: int = 44100,
                 channels: int = 2, segment: float = 6.0, size: str = "full", host_kwargs: dict | None = None,
                 pretrained: str | None = None, pretrained_repo: str | None = None, boost: bool = False,
                 backbone: str = "debug", backbone_seed: int = 0, boost_kwargs: dict | None = None,
                 feature_cache: str | None = None, lr: float = 3e-4, adapter_lr: float | None = None,
                 weight_decay: float = 0.0, betas: tuple[float, float] = (0.9, 0.999), freeze_host: bool = False,
                 ema_decay: float = 0.0, source_weights: list[float] | None = None, eval_overlap: float = 0.25,
                 eval_dir: str | None = None, run_name: str | None = None, print_report: bool = True):
        super().__init__()
        self.save_hyperparameters()
        if source_weights is not None and len(source_weights) != len(sources):
            raise ConfigError(f"source_weights has {len(source_weights)} values for {len(sources)} sources")
        if not 0 <= ema_decay < 1:
            raise ConfigError(f"ema_decay must be in [0, 1), got {ema_decay}")
        model = build_host(host, sources=list(sources), sample_rate=sample_rate, channels=channels,
                           segment=segment, size=size, kwargs=host_kwargs, pretrained=pretrained,
                           pretrained_repo=pretrained_repo)
        self.host_spec = host_spec(model)
        if freeze_host and not boost:
            raise ConfigError("freeze_host=True needs boost=True (nothing else would train)")
        if boost:
            kw = {"train_host": not freeze_host, **(boost_kwargs or {})}
            model = boosting.boost_host(host, model, boosting.load_backbone(backbone, backbone_seed), **kw)
        self.model = model
        self.register_buffer("_weights", torch.tensor(source_weights or [1.0] * len(sources)), persistent=False)
        self._ema: dict[str, torch.Tensor] = {}
        self._cache = None
        self._test_rows: dict = {}
        self.timing = {"features": 0.0, "steps": 0}

    # ---- helpers -------------------------------------------------------------------------------
    @property
    def boosted(self) -> bool:
        return boosting.is_boosted(self.model)

    @property
    def host(self):
        return boosting.host_of(self.model)

    def separator(self) -> Separator:
        """An inference wrapper around the current weights (shares the modules)."""
        return Separator(self.model, self.description(), backbone=boosting.backbone_of(self.model),
                         overlap=self.hparams.eval_overlap, cache=self._feature_cache())

    def description(self) -> dict:
        h = self.hparams
        meta = {"format_version": FORMAT_VERSION, "host": self.host_spec, "sources": list(h.sources),
                "sample_rate": h.sample_rate, "channels": h.channels, "segment": float(h.segment),
                "boost": bool(self.boosted)}
        if self.boosted:
            bb = boosting.backbone_of(self.model)
            meta.update(backbone=h.backbone, backbone_seed=h.backbone_seed, boost_kwargs=h.boost_kwargs or {},
                        backbone_identity=bb.identity if bb is not None else None)
        return meta

    def _feature_cache(self):
        if self._cache is None and self.hparams.feature_cache and self.boosted:
            from booster.cache import FeatureCache
            self._cache = FeatureCache(self.hparams.feature_cache)
        return self._cache

    def live_features(self, mix: torch.Tensor):
        """MuQ features of a training batch ``[B, C, S]`` (None for the baseline)."""
        if not self.boosted:
            return None
        t = time.perf_counter()
        bb = boosting.backbone_of(self.model)
        feats = bb.extract(mix, self.hparams.sample_rate, boosting.feature_layers(self.model))
        self.timing["features"] += time.perf_counter() - t
        return feats

    def fixed_features(self, mix: torch.Tensor):
        """Features of fixed mixtures ``[B, C, S]`` through the cache when one is configured."""
        if not self.boosted:
            return None
        cache = self._feature_cache()
        if cache is None:
            return self.live_features(mix)
        from booster.features import Features
        bb, layers = boosting.backbone_of(self.model), boosting.feature_layers(self.model)
        items = [cache.get_or_compute(bb, m, self.hparams.sample_rate, layers).to(mix.device) for m in mix]
        return Features(torch.cat([f.hidden for f in items]), items[0].layers, items[0].frame_rate)

    # ---- losses --------------------------------------------------------------------------------
    def compute_loss(self, mix: torch.Tensor, sources: torch.Tensor, features=None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(weighted loss, per-source loss [N])``."""
        if sources.dim() != 4 or sources.shape[0] != mix.shape[0] or sources.shape[-1] != mix.shape[-1]:
            raise ValueError(f"sources {tuple(sources.shape)} do not match mixture {tuple(mix.shape)}")
        with boosting.using(self.model, features):
            if is_openunmix(self.host):
                per = self._openunmix_loss(mix, sources)
            else:
                est = self.model(mix)
                assert est.shape == sources.shape, (est.shape, sources.shape)
                per = F.l1_loss(est, sources, reduction="none").mean(dim=(2, 3)).mean(0)
        w = self._weights.to(per)
        return (per * w).sum() / w.sum(), per

    def _openunmix_loss(self, mix: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
        Y = spectrogram(self.host, sources)                 # [B, N, C, F, T]
        with spectrogram_output(self.host):
            Y_hat = self.model(mix)                         # [B, N, C, F, T], adapters active
        assert Y_hat.shape == Y.shape, (Y_hat.shape, Y.shape)
        return ((Y_hat - Y) ** 2).mean(dim=(2, 3, 4)).mean(0)

    # ---- Lightning hooks -----------------------------------------------------------------------
    def configure_optimizers(self):
        h = self.hparams
        adapter = list(self.model.adapter_parameters()) if self.boosted else []
        ids = {id(p) for p in adapter}
        host = [p for p in self.model.parameters() if p.requires_grad and id(p) not in ids]
        groups = [g for g in ({"params": host, "lr": h.lr},
                              {"params": adapter, "lr": h.adapter_lr or h.lr}) if g["params"]]
        if not groups:
            raise ConfigError("nothing to train: every parameter is frozen")
        return torch.optim.AdamW(groups, lr=h.lr, betas=tuple(h.betas), weight_decay=h.weight_decay)

    def on_train_epoch_start(self) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        ds = getattr(dm, "_train", None)
        if ds is not None:
            ds.set_epoch(self.current_epoch)

    def training_step(self, batch, batch_idx):
        mix, sources = batch
        loss, per = self.compute_loss(mix, sources, self.live_features(mix))
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=mix.shape[0])
        self.timing["steps"] += 1
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        d = self.hparams.ema_decay
        if d <= 0:
            return
        with torch.no_grad():
            for k, v in self._trainable_state().items():
                if k not in self._ema:
                    self._ema[k] = v.detach().clone()
                elif v.dtype.is_floating_point:
                    self._ema[k].mul_(d).add_(v.detach(), alpha=1 - d)
                else:
                    self._ema[k].copy_(v)

    def _trainable_state(self) -> dict[str, torch.Tensor]:
        return boosting.adapter_state(self.model)

    def _swap_ema(self) -> dict | None:
        if not self._ema:
            return None
        saved = {k: v.detach().clone() for k, v in self._trainable_state().items()}
        boosting.load_trainable_state(self.model, self._ema)
        return saved

    def on_validation_epoch_start(self) -> None:
        self._saved = self._swap_ema()

    def on_validation_epoch_end(self) -> None:
        if getattr(self, "_saved", None) is not None:
            boosting.load_trainable_state(self.model, self._saved)
            self._saved = None

    on_test_epoch_start = on_validation_epoch_start

    def validation_step(self, batch, batch_idx):
        mix, sources = batch
        feats = self.fixed_features(mix)
        sep = self.separator()
        est = torch.stack([sep.separate_tensor(m, features=None if feats is None else _item(feats, i))
                           for i, m in enumerate(mix)])
        from .evaluation import global_sdr
        sdr = torch.stack([global_sdr(s, e) for s, e in zip(sources, est)]).mean(0)  # [N]
        l1 = (est - sources).abs().mean()
        bs = mix.shape[0]
        self.log("valid/l1", l1, batch_size=bs)
        self.log("valid/nsdr", sdr.mean(), prog_bar=True, batch_size=bs)
        for name, v in zip(self.hparams.sources, sdr):
            self.log(f"valid/nsdr_{name}", v, batch_size=bs)

    def test_step(self, index, batch_idx):
        from .evaluation import evaluate_track
        dm = self.trainer.datamodule
        name, mix, sources = dm.load_test_track(int(index))
        est = self.separator().separate_tensor(mix.to(self.device), cached=True).cpu()
        row = evaluate_track(sources, est, list(self.hparams.sources), self.hparams.sample_rate)
        self._test_rows[name] = row
        self.log("test/gSDR", torch.tensor([r["gSDR"] for r in row.values()]).mean(), batch_size=1)

    def on_test_epoch_end(self) -> None:
        from .evaluation import format_table, write_report
        if getattr(self, "_saved", None) is not None:
            boosting.load_trainable_state(self.model, self._saved)
            self._saved = None
        out = self.hparams.eval_dir or (Path(self.trainer.default_root_dir) / "eval")
        name = self.hparams.run_name or ("boosted" if self.boosted else "baseline") + f"-{self.hparams.host}"
        report = write_report(out, self._test_rows, list(self.hparams.sources),
                              meta={"name": name, **self.description()})
        if self.hparams.print_report:
            print(format_table(report["summary"], title=f"{name} ({len(self._test_rows)} tracks) -> {out}"))
        self._test_rows = {}

    # ---- checkpoints ---------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint["state_dict"]
        keep = {"model." + k for k in self._trainable_state()}
        for k in [k for k in state if k.startswith("model.") and k not in keep]:
            del state[k]  # the frozen backbone is rebuilt from the config, never saved
        checkpoint["booster"] = self.description()
        if self._ema:
            checkpoint["booster_ema"] = {k: v.clone() for k, v in self._ema.items()}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        meta = checkpoint.get("booster")
        if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
            got = meta.get("format_version") if isinstance(meta, dict) else None
            raise CheckpointError(f"checkpoint format version {got!r} is not supported (this muq-booster "
                                  f"reads {FORMAT_VERSION}); it was not written by this recipe version")
        bb = boosting.backbone_of(self.model)
        want = meta.get("backbone_identity")
        if bb is not None and want and want.get("fingerprint") != bb.identity.get("fingerprint"):
            raise CheckpointError(f"checkpoint was trained with backbone {want.get('name')!r} "
                                  f"(fingerprint {want.get('fingerprint')}) but the config loads "
                                  f"{bb.identity.get('name')!r} ({bb.identity.get('fingerprint')})")
        state = checkpoint["state_dict"]
        trainable = {"model." + k for k in self._trainable_state()}
        missing = sorted(trainable - set(state))
        if missing:
            raise CheckpointError(f"checkpoint lacks {len(missing)} weight(s) of this model, e.g. {missing[:4]}; "
                                  "was it trained with another host, size or boost setting?")
        for k, v in self.state_dict().items():
            if k not in trainable and k not in state:
                state[k] = v  # frozen backbone: rebuilt from the config
        self._ema = dict(checkpoint.get("booster_ema", {}))


def _item(features, i: int):
    from booster.features import Features
    return Features(features.hidden[i:i + 1], features.layers, features.frame_rate, features.start)
