"""The base LightningModule of every recipe: host by plug-in, optional boost, optimiser groups, EMA,
checkpoint metadata, live or cached backbone features, test reports.

A recipe subclasses :class:`BoosterModule`, sets ``task`` and ``metrics``, lists its own arguments plus
the common ones in its ``__init__`` (LightningCLI reads that signature) and calls
``super().__init__(host=..., host_args={task keyword arguments for the plug-in's build}, **common)``.
It implements ``training_step`` / ``validation_step`` / ``test_step`` with the helpers here and
``task_meta()`` (the task fields stored in checkpoints).
"""
from __future__ import annotations

from pathlib import Path

import lightning as L
import torch

from booster.backbone import backbone_features, load_backbone, resolve_layers
from booster.errors import CheckpointError, ConfigError
from booster.lora import add_lora, lora_config, plugin_targets

from . import boosting
from .checkpoint import CKPT_KEY, EMA_KEY, check_meta, describe
from .hosts import boost_host, build_host, host_loss
from .ranks import ItemMeans, gather_objects
from .report import Metric, format_table, write_report

COMMON_ARGS = ("host", "size", "host_kwargs", "pretrained", "pretrained_repo", "boost", "backbone",
               "backbone_seed", "boost_kwargs", "feature_cache", "lr", "adapter_lr", "weight_decay", "betas",
               "freeze_host", "lora_rank", "lora_alpha", "lora_dropout", "ema_decay", "eval_dir", "run_name",
               "print_report")


class BoosterModule(L.LightningModule):
    """Base of recipe modules.

    Args (common to every recipe):
        host: plug-in name (``booster.adapters.<host>``). size: "full" | "debug". host_kwargs: architecture
        overrides. pretrained / pretrained_repo: published host weights (the plug-in says what it accepts).
        boost: inject backbone features through the plug-in's ``boost``. backbone: "debug", a registered
        name, a directory or a hub id (``backbone_seed`` for debug). boost_kwargs: options of the plug-in's
        ``boost`` (layers, sites, fusion...). feature_cache: folder of the on-disk cache for fixed inputs
        (validation / test). lr / adapter_lr: AdamW learning rates of host and adapter parameters (separate
        groups). freeze_host: train only the adapters. lora_rank: > 0 puts LoRA of this rank on the host's
        projections (the plug-in's ``lora_targets``, else every nn.Linear / MultiheadAttention; see
        :mod:`booster.lora`) and freezes the host's own weights: LoRA trains at ``lr``, the adapters (when
        boosted) at ``adapter_lr``; ``boost=False`` with LoRA is plain LoRA fine-tuning of the host. lora_alpha:
        LoRA scale numerator (default: the rank). lora_dropout: dropout on the LoRA branch's input features.
        ema_decay: 0 disables EMA (else used for validation,
        test and export). eval_dir: where ``test`` writes results (default ``<default_root_dir>/eval``).
        run_name: the run's name in reports. print_report: print the results table after ``test``.
    """

    task: str = ""
    metrics: tuple[Metric, ...] = ()
    report_label: str = "group"
    mean_row: bool | None = None   # a "mean" row over groups in the results table (default: several groups)

    def __init__(self, *, host: str, host_args: dict | None = None, size: str = "full",
                 host_kwargs: dict | None = None, pretrained: str | None = None, pretrained_repo: str | None = None,
                 boost: bool = False, backbone: str = "debug", backbone_seed: int = 0,
                 boost_kwargs: dict | None = None, feature_cache: str | None = None, lr: float = 3e-4,
                 adapter_lr: float | None = None, weight_decay: float = 0.0,
                 betas: tuple[float, float] = (0.9, 0.999), freeze_host: bool = False, lora_rank: int = 0,
                 lora_alpha: float | None = None, lora_dropout: float = 0.0, ema_decay: float = 0.0,
                 eval_dir: str | None = None, run_name: str | None = None, print_report: bool = True):
        super().__init__()
        self.save_hyperparameters(ignore=["host_args"])
        if not self.task:
            raise ConfigError(f"{type(self).__name__} must set the class attribute `task`")
        if not 0 <= ema_decay < 1:
            raise ConfigError(f"ema_decay must be in [0, 1), got {ema_decay}")
        if freeze_host and not boost:
            raise ConfigError("freeze_host=True needs boost=True (nothing else would train)")
        model, self.host_spec = build_host(host, size=size, pretrained=pretrained, pretrained_repo=pretrained_repo,
                                           overrides=host_kwargs, **(host_args or {}))
        if boost:
            options = {"train_host": not (freeze_host or lora_rank), **(boost_kwargs or {})}
            model = boost_host(host, model, load_backbone(backbone, backbone_seed), **options)
        if lora_rank:   # after boosting (boost sets the host's requires_grad); freezes the host's own weights
            add_lora(model, lora_rank, lora_alpha, lora_dropout, plugin_targets(host, boosting.host_of(model)),
                     host_name=host)
        self.model = model
        self._ema: dict[str, torch.Tensor] = {}
        self._saved_weights = None
        self._cache = None
        self._test_items: dict = {}
        self._valid_means = ItemMeans()

    # ---- what recipes override -----------------------------------------------------------------
    def task_meta(self) -> dict:
        """Task fields stored in checkpoints and model files (e.g. sources, sample rate)."""
        return {}

    def evaluated(self) -> dict:
        """What ``test`` evaluated, beyond the item names (lengths, overlap...): compare checks it."""
        return {}

    def default_loss(self, inputs, targets) -> torch.Tensor:
        raise ConfigError(f"host {self.hparams.host!r} has no loss hook and {type(self).__name__} no default_loss")

    # ---- model access ----------------------------------------------------------------------------
    @property
    def boosted(self) -> bool:
        return boosting.is_boosted(self.model)

    @property
    def host(self) -> torch.nn.Module:
        return boosting.host_of(self.model)

    @property
    def backbone(self):
        return boosting.backbone_of(self.model)

    def description(self) -> dict:
        h = self.hparams
        return describe(self.task, self.host_spec, self.model, backbone=h.backbone, backbone_seed=h.backbone_seed,
                        boost_kwargs=h.boost_kwargs, **self.task_meta())

    def host_loss(self, inputs, targets) -> torch.Tensor:
        """The host plug-in's ``loss(model, inputs, targets)`` (adapters active), else ``default_loss``."""
        fn = host_loss(self.host_spec.name)
        return fn(self.model, inputs, targets) if fn is not None else self.default_loss(inputs, targets)

    # ---- features --------------------------------------------------------------------------------
    def feature_cache(self):
        if self._cache is None and self.hparams.feature_cache and self.boosted:
            from booster.cache import FeatureCache
            self._cache = FeatureCache(self.hparams.feature_cache)
        return self._cache

    def live_features(self, wav: torch.Tensor, sample_rate: int):
        """Backbone features of a batch ``[B, C, S]`` (None for a baseline), computed now."""
        if not self.boosted:
            return None
        feats = backbone_features(self.backbone, wav, sample_rate, boosting.feature_layers(self.model))
        return feats

    def fixed_features(self, wav: torch.Tensor, sample_rate: int):
        """Features of fixed inputs ``[B, C, S]`` (validation/test) through the cache when configured."""
        cache = self.feature_cache()
        if not self.boosted or cache is None:
            return self.live_features(wav, sample_rate)
        from booster.features import Features
        bb, layers = self.backbone, resolve_layers(self.backbone, boosting.feature_layers(self.model))
        items = [cache.get_or_compute(bb, w, sample_rate, layers).to(wav.device) for w in wav]
        return Features(torch.cat([f.hidden for f in items]), items[0].layers, items[0].frame_rate)

    # ---- optimiser, EMA --------------------------------------------------------------------------
    def configure_optimizers(self):
        h = self.hparams
        adapter = list(self.model.adapter_parameters()) if self.boosted else []
        ids = {id(p) for p in adapter}
        host = [p for p in self.model.parameters() if p.requires_grad and id(p) not in ids]
        groups = [g for g in ({"params": host, "lr": h.lr, "name": "lora" if h.lora_rank else "host"},
                              {"params": adapter, "lr": h.adapter_lr or h.lr, "name": "adapters"}) if g["params"]]
        if not groups:
            raise ConfigError("nothing to train: every parameter is frozen")
        return torch.optim.AdamW(groups, lr=h.lr, betas=tuple(h.betas), weight_decay=h.weight_decay)

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        d = self.hparams.ema_decay
        if d <= 0:
            return
        with torch.no_grad():
            state = boosting.trainable_state(self.model)
            self._ema_to_weights(state)
            for k, v in state.items():
                if k not in self._ema:
                    self._ema[k] = v.detach().clone()
                elif v.dtype.is_floating_point:
                    self._ema[k].mul_(d).add_(v.detach(), alpha=1 - d)
                else:
                    self._ema[k].copy_(v)

    def _ema_to_weights(self, state: dict | None = None) -> None:
        """EMA tensors on their weights' devices: a checkpoint restores them on the CPU (Lightning restores
        before it moves the module to its device), and ``.to()`` moves the module, not this dict."""
        state = boosting.trainable_state(self.model) if state is None else state
        for k, e in self._ema.items():
            if k in state and e.device != state[k].device:
                self._ema[k] = e.to(state[k].device)

    def use_ema_weights(self) -> None:
        """Swap the EMA weights in (no-op without EMA); :meth:`restore_weights` swaps them back."""
        if self._ema and self._saved_weights is None:
            self._ema_to_weights()
            self._saved_weights = {k: v.detach().clone() for k, v in boosting.trainable_state(self.model).items()}
            boosting.load_trainable_state(self.model, self._ema)

    def restore_weights(self) -> None:
        if self._saved_weights is not None:
            boosting.load_trainable_state(self.model, self._saved_weights)
            self._saved_weights = None

    def on_validation_epoch_start(self) -> None:
        self._valid_means.clear()
        self.use_ema_weights()

    def on_validation_epoch_end(self) -> None:
        self.restore_weights()
        for name, (value, prog_bar) in self._valid_means.reduce().items():
            # already the mean over every rank's items: the max "sync" of equal values only says so to Lightning
            self.log(name, value, prog_bar=prog_bar, sync_dist=True, reduce_fx="max")

    # ---- validation metrics ----------------------------------------------------------------------
    def log_valid(self, name: str, value, items: int = 1, prog_bar: bool = False) -> None:
        """Log a validation metric, ``value`` being its mean over ``items`` items of this step: at the end of
        the epoch it is the mean over every item of every DDP rank (each validates its own shard)."""
        self._valid_means.add(name, value, items, prog_bar)

    def on_test_epoch_start(self) -> None:
        self._test_items = {}
        self.use_ema_weights()

    # ---- test reports ----------------------------------------------------------------------------
    def add_test_item(self, name: str, row: dict) -> None:
        """Record the metrics of one evaluated item: ``{group: {metric: value}}``."""
        self._test_items[str(name)] = row

    def groups(self) -> list[str]:
        """Rows of the results table (default: the groups found in the items)."""
        seen = []
        for row in self._test_items.values():
            seen += [g for g in row if g not in seen]
        return seen

    def on_test_epoch_end(self) -> None:
        self.restore_weights()
        items = _gather(self._test_items)
        self._test_items = items
        if self.trainer.global_rank != 0 or not items:
            return
        out = self.hparams.eval_dir or (Path(self.trainer.default_root_dir) / "eval")
        name = self.hparams.run_name or ("boosted" if self.boosted else "baseline") + f"-{self.hparams.host}"
        report = write_report(out, items, self.groups(), list(self.metrics), task=self.task,
                              evaluated=self.evaluated(), meta={"name": name, **self.description()},
                              label=self.report_label, mean_row=self.mean_row)
        if self.hparams.print_report:
            print(format_table(report["summary"], list(self.metrics), f"{name} ({len(items)} items) -> {out}",
                               self.report_label))

    # ---- checkpoints -----------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint["state_dict"]
        keep = {"model." + k for k in boosting.trainable_state(self.model)}
        for k in [k for k in state if k.startswith("model.") and k not in keep]:
            del state[k]  # never the frozen backbone
        checkpoint[CKPT_KEY] = self.description()
        if self._ema:
            checkpoint[EMA_KEY] = {k: v.clone() for k, v in self._ema.items()}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        from booster.backbone import check_identity
        meta = check_meta(checkpoint.get(CKPT_KEY), what="the checkpoint", task=self.task)
        if self.backbone is not None:
            check_identity(meta.get("backbone_identity"), self.backbone, what="the checkpoint")
        _check_lora(meta.get("lora"), lora_config(self.model))
        state = checkpoint["state_dict"]
        trainable = {"model." + k for k in boosting.trainable_state(self.model)}
        missing = sorted(trainable - set(state))
        if missing:
            raise CheckpointError(f"checkpoint lacks {len(missing)} weight(s) of this model, e.g. {missing[:4]}; "
                                  "was it trained with another host, size, boost or LoRA setting?")
        self._ema = dict(checkpoint.get(EMA_KEY, {}))


def _check_lora(recorded: dict | None, mine: dict | None) -> None:
    """The checkpoint's LoRA (rank, alpha, targets) must be this model's: else one line (dropout may differ)."""
    def show(cfg):
        return "none" if cfg is None else f"rank {cfg['rank']}, alpha {cfg['alpha']:g}, {len(cfg['targets'])} targets"
    keys = ("rank", "alpha", "targets")
    if (recorded is None) != (mine is None) or (mine and any(recorded.get(k) != mine[k] for k in keys)):
        raise CheckpointError(f"the checkpoint's LoRA ({show(recorded)}) is not this model's ({show(mine)}); "
                              "leave out --model.lora_* to use the checkpoint's")


def _gather(items: dict) -> dict:
    """Merge per-rank test items (DDP); the items themselves on a single process."""
    parts = gather_objects(items)
    if len(parts) == 1:
        return items
    merged = {}
    for p in parts:
        merged.update(p or {})
    return merged
