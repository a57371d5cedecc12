"""The pretraining recipe on the kit: ``booster fit --config pretraining/<name>`` (LightningCLI).

One ``fit`` runs both stages: if the tokenizer file does not exist yet, stage 1 (mel statistics + Mel-RVQ)
runs first on batches of the same data module, on rank 0 and its device (other ranks wait and load it;
the mel statistics, a few batches, stay on the CPU), and is written
next to the run; then stage 2 (masked token prediction) trains the encoder. The encoder is exported in the
official layout to ``export_dir`` at every checkpoint and at the end of training.
Batches: audio crops ``[B, S]`` mono 24 kHz.
"""
from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import torch

from ...errors import ConfigError
from ...fsutil import write_text
from ...training.data import BoosterDataModule
from .data import CropDataset, build_cache, crop_loader
from .masked import MaskedPredictor
from .module import PretrainModule, export, init_encoder, mel_frontend, mel_statistics
from .tokenizer import MelRVQ, TokenizerConfig, stack_frames


class PretrainingData(BoosterDataModule):
    """Random crops of any folders of audio (+ optional synthetic renders).

    Args:
        folders: folders (or files) of audio in any format soundfile reads, at any sample rate.
        cache_dir: decoded 24 kHz copies and the cached file list.
        seconds: crop length. samples_per_epoch: crops per training epoch. val_crops: fixed held-back crops.
        holdout: every ``holdout``-th file is held back for validation.
        synth: optional ``{"root": DIR, "tracks": N, "seconds": S, "seed": 0}``: songs rendered with
            ``booster.data.synth.generate_dataset`` on first use (once per node); their mixtures are used.
        seed: the training crops (:class:`.data.CropDataset`); a resumed run continues the same stream.
    """

    def __init__(self, folders: list[str] | None = None, cache_dir: str = "data/pretraining_cache",
                 seconds: float = 8.0, batch_size: int = 8, samples_per_epoch: int = 8000, val_crops: int = 16,
                 holdout: int = 10, num_workers: int = 0, synth: dict | None = None, seed: int = 0):
        super().__init__(batch_size=batch_size, num_workers=num_workers, seed=seed)
        self.save_hyperparameters()
        self.entries = None

    def _sources(self) -> list[str]:
        sources = list(self.hparams.folders or [])
        synth = self.hparams.synth
        if synth:
            sources += sorted(str(p) for p in Path(synth["root"]).rglob("mixture.wav"))
        if not sources:
            raise ConfigError("pretraining data: give data.folders (folders of audio) and/or data.synth")
        return sources

    def prepare_data(self):
        synth = self.hparams.synth
        if synth:
            from ...data.synth import generate_from_spec
            generate_from_spec(synth["root"], {"splits": {"train": int(synth.get("tracks", 8))},
                                               "seconds": float(synth.get("seconds", 20.0)),
                                               "seed": int(synth.get("seed", 0))},
                               present=any(Path(synth["root"]).rglob("mixture.wav")))
        build_cache(self._sources(), self.hparams.cache_dir)

    def setup(self, stage=None):
        if self.entries is None:
            self.entries = build_cache(self._sources(), self.hparams.cache_dir, log=None)
        h = self.hparams
        self.train_set = CropDataset(self.entries, h.cache_dir, h.seconds, h.samples_per_epoch, "train", h.holdout,
                                     seed=h.seed)
        self.val_set = CropDataset(self.entries, h.cache_dir, h.seconds, h.val_crops, "val", h.holdout)

    def train_dataloader(self):
        return crop_loader(self.train_set, self.batch_size, self.seed, self.num_workers)

    def val_dataloader(self):
        return self.loader(self.val_set)


def teacher_frames(teacher, layer: int):
    """``frames(wav [B, S]) -> [B, T, D]``: hidden state ``layer`` of a frozen ``teacher`` (an iteration
    tokenizer's input), computed on the teacher's device."""
    def frames(wav):
        with torch.no_grad():
            return teacher.encode(wav, upto=layer, keep=[layer])[layer]
    return frames


def fit_tokenizer(batches, stat: dict, steps: int, config: TokenizerConfig, lr: float = 2e-3,
                  frames=None, log=print, device="cpu") -> tuple[MelRVQ, dict]:
    """Stage 1 as a plain loop on ``device`` (the trainer's): ``batches`` yields ``[B, S]`` audio (on any
    device; each batch is moved to ``device``); ``frames(wav) -> [B, T, D_in]`` (default: the stacked
    normalised mel of an encoder with ``stat``, on ``device``; a teacher's frames must run there too,
    see :func:`teacher_frames`). Returns the tokenizer (on ``device``) and metrics."""
    device = torch.device(device)
    if frames is None:
        front = mel_frontend(stat).to(device)

        def frames(wav):
            with torch.no_grad():
                return stack_frames(front(wav), 4)

    with device:   # built there (on CUDA the first step's codebook draws use its generator anyway)
        rvq = MelRVQ(config).train()
    opt = torch.optim.Adam(rvq.parameters(), lr=lr)
    out = {}
    for step in range(steps):
        out = rvq.fit_step(frames(next(batches).to(device, non_blocking=True)), first=step == 0)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        if log and (step % 20 == 0 or step == steps - 1):
            log(f"tokenizer step {step}: loss {out['loss'].item():.4f} "
                f"relative error {out['relative_error'].item():.4f}")
    metrics = {"steps": steps, "relative_error": round(float(out["relative_error"]), 4),
               "usage_min": round(float(rvq.usage_fraction().min()), 4),
               "perplexity_mean": round(float(rvq.perplexity().mean()), 2)}
    return rvq.eval(), metrics


class PretrainingModule(PretrainModule):
    """Both stages in one ``fit`` (see the module docstring). Arguments as :class:`PretrainModule`, plus:

    Args:
        tokenizer: tokenizer file; default ``<default_root_dir>/tokenizer.safetensors``, made by stage 1
            when missing. tokenizer_steps / levels / codebook_size / code_dim / tokenizer_lr: stage 1.
        stat_batches: batches used for the mel statistics (from scratch only; ``init`` keeps its own).
        export_dir: where the encoder is written in the official layout (default ``<root>/export``).
    """

    def __init__(self, size: str = "mini", init: str | None = None, tokenizer: str | None = None,
                 tokenizer_steps: int = 200, levels: int = 8, codebook_size: int = 1024, code_dim: int = 16,
                 tokenizer_lr: float = 2e-3, stat_batches: int = 8, mask_prob: float | None = None,
                 mask_hop: float | None = None, cqt_weight: float = 0.0, teacher: str | None = None,
                 teacher_layer: int | None = None, lr: float = 5e-4, weight_decay: float = 0.01,
                 warmup_steps: int = 100, seed: int = 0, export_dir: str | None = None):
        L.LightningModule.__init__(self)
        self.save_hyperparameters()
        self.model = None

    def _root(self) -> Path:
        return Path(self.trainer.default_root_dir if self._trainer is not None else ".")

    def setup(self, stage=None):
        if self.model is not None:
            return
        h = self.hparams
        root = self._root()
        tok_path = Path(h.tokenizer) if h.tokenizer else root / "tokenizer.safetensors"
        stat_path = tok_path.with_name(tok_path.stem + "_stat.json")
        if not tok_path.is_file():
            if self.trainer.is_global_zero:
                self._stage1(tok_path, stat_path)
            self.trainer.strategy.barrier("pretraining-tokenizer")
        elif not h.tokenizer:   # made by an earlier fit in this folder: only if it has these settings
            self._check_reused_tokenizer(tok_path)
        stat = json.loads(stat_path.read_text()) if (h.init is None and stat_path.is_file()) else None
        teacher = None
        if h.teacher is not None:
            from ...muq import load_backbone
            teacher = load_backbone(h.teacher)
        self.model = MaskedPredictor(init_encoder(h.init, h.size, stat, h.seed), MelRVQ.load(tok_path),
                                     mask_prob=h.mask_prob, mask_hop=h.mask_hop, cqt_weight=h.cqt_weight,
                                     teacher=teacher, teacher_layer=h.teacher_layer)

    # made from the run's data by stage 1 in <default_root_dir>; `booster fit --overwrite` removes them
    run_files = ("tokenizer.safetensors", "tokenizer_stat.json", "tokenizer_metrics.json", "export")

    def _check_reused_tokenizer(self, tok_path: Path) -> None:
        """A tokenizer an earlier fit left in the run folder is reused only when it was made with this run's
        stage-1 settings (else: one line naming them; a re-run never trusts mismatched files)."""
        h = self.hparams
        have = MelRVQ.load(tok_path).config
        want = {"num_levels": h.levels, "codebook_size": h.codebook_size, "code_dim": h.code_dim,
                "source": "mel" if h.teacher is None else f"layer:{h.teacher_layer}", "teacher": h.teacher}
        diff = [f"{k}: {getattr(have, k)!r} -> {v!r}" for k, v in want.items() if getattr(have, k) != v]
        if diff:
            raise ConfigError(f"{str(tok_path)!r} was made by an earlier fit with other stage-1 settings "
                              f"({'; '.join(diff)}); start again with --overwrite, train into another "
                              "--trainer.default_root_dir, or name a tokenizer with --model.tokenizer FILE")

    def _stage1(self, tok_path: Path, stat_path: Path) -> None:
        h = self.hparams
        dm = self.trainer.datamodule
        dm.setup("fit")

        def batches():
            loader = dm.train_dataloader()   # one loader: its epochs give new crops
            while True:
                yield from loader

        it = batches()
        stat = None
        if h.init is None:
            stat = mel_statistics(next(it) for _ in range(h.stat_batches))
            write_text(stat_path, json.dumps(stat, indent=2))
        device = self.trainer.strategy.root_device   # this rank's device: stage 1 runs there, not on the CPU
        frames, input_dim = None, 512
        if h.teacher is not None or h.init is not None:
            from ...muq import load_backbone
            source = load_backbone(h.teacher or h.init)
            if stat is None:
                stat = source.config.stat
            if h.teacher is not None:
                input_dim = source.hidden_size
                frames = teacher_frames(source.to(device), h.teacher_layer)
        cfg = TokenizerConfig(input_dim=input_dim, num_levels=h.levels, codebook_size=h.codebook_size,
                              code_dim=h.code_dim, source="mel" if h.teacher is None else f"layer:{h.teacher_layer}",
                              teacher=h.teacher)
        rvq, metrics = fit_tokenizer(it, stat, h.tokenizer_steps, cfg, h.tokenizer_lr, frames, device=device)
        rvq.save(tok_path)
        write_text(tok_path.with_name(tok_path.stem + "_metrics.json"), json.dumps(metrics, indent=2))

    def configure_optimizers(self):
        # the schedule's length is the trainer's; not a hyper-parameter of this class (checkpoints must not
        # carry it: `--ckpt_path` re-applies their hyper-parameters as options)
        self.hparams.max_steps = max(2, int(self.trainer.max_steps)) if self.trainer.max_steps > 0 else 10_000
        try:
            return super().configure_optimizers()
        finally:
            del self.hparams["max_steps"]

    def _export(self):
        if self.trainer.is_global_zero:
            export(self, self.hparams.export_dir or self._root() / "export")

    def on_save_checkpoint(self, checkpoint):
        from ...training.checkpoint import FORMAT, FORMAT_VERSION
        # what `booster fit|validate|test --ckpt_path` checks before Lightning reads the file
        checkpoint["booster"] = {"format": FORMAT, "format_version": FORMAT_VERSION, "task": "pretraining",
                                 "size": self.hparams.size, "init": self.hparams.init}
        self._export()

    def on_fit_end(self):
        self._export()
