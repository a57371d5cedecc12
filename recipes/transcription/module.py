"""LightningModule of the transcription recipe: an Onsets-and-Frames transcriber, baseline / probe / boosted.

Everything generic (host plug-in, boost, optimiser groups, EMA, checkpoint metadata, reports) is
:class:`booster.training.BoosterModule`. This file holds what is transcription: the loss (the plug-in's:
BCE on onset / offset / frame, velocity error at onsets), whole-file validation and test through chunked
inference (MuQ once per file), decoding to notes and the mir_eval metrics.

Variants (configs): ``baseline`` (``backend: onsets_frames``, ``boost: false``), ``boosted`` (same host,
``boost: true``: adapters at the acoustic models' outputs, identical to the baseline at step 0) and
``probe`` (``backend: shallow``, ``boost: true``: MuQ features enter the shallow back end's input
projection next to the spectrogram frames).
Shapes: audio ``[B, 1, S]``, rolls ``[B, T, P]``.
"""
from __future__ import annotations

import torch

from booster.training.module import BoosterModule
from booster.training.report import Metric

from .inference import Transcriber
from .metrics import METRICS, evaluate_notes

PIANO_RANGE = (21, 108)


class TranscriptionModule(BoosterModule):
    """Train / validate / test a transcriber.

    Args (transcription): backend ("onsets_frames" or "shallow"), frontend ("mel" or "cqt"),
    frontend_kwargs (e.g. ``{trainable: true}`` for learnable CQT kernels), sample_rate, hop_length,
    pitch_range, segment (the training crop in seconds; set these four under ``data:``, they are linked
    here), onset_threshold / frame_threshold (decoding), eval_segment (chunk seconds of whole-file
    inference, recorded in the model description so ``booster transcribe`` uses it too; None: the training
    segment for a boosted model, so MuQ sees the context it was trained with, else the host's),
    eval_overlap, eval_batch (chunks per batch). The other arguments are the kit's
    (:class:`booster.training.BoosterModule`).
    """

    task = "transcription"
    metrics = (Metric("precision"), Metric("recall"), Metric("f1"))
    report_label = "metric"
    mean_row = False

    def __init__(self, host: str = "onsets_frames", backend: str = "onsets_frames", frontend: str = "mel",
                 frontend_kwargs: dict | None = None, sample_rate: int = 16000, hop_length: int = 512,
                 pitch_range: tuple[int, int] = PIANO_RANGE, segment: float = 5.0, size: str = "full",
                 host_kwargs: dict | None = None,
                 pretrained: str | None = None, pretrained_repo: str | None = None, boost: bool = False,
                 backbone: str = "debug", backbone_seed: int = 0, boost_kwargs: dict | None = None,
                 feature_cache: str | None = None, lr: float = 6e-4, adapter_lr: float | None = None,
                 weight_decay: float = 0.0, betas: tuple[float, float] = (0.9, 0.999), freeze_host: bool = False,
                 lora_rank: int = 0, lora_alpha: float | None = None, lora_dropout: float = 0.0,
                 ema_decay: float = 0.0, onset_threshold: float = 0.5, frame_threshold: float = 0.5,
                 eval_segment: float | None = None, eval_overlap: float = 0.25, eval_batch: int = 4,
                 eval_dir: str | None = None, run_name: str | None = None, print_report: bool = True):
        host_args = dict(backend=backend, frontend=frontend, frontend_kwargs=frontend_kwargs,
                         sample_rate=int(sample_rate), hop_length=int(hop_length), pitch_range=list(pitch_range))
        super().__init__(host=host, host_args=host_args, size=size, host_kwargs=host_kwargs, pretrained=pretrained,
                         pretrained_repo=pretrained_repo, boost=boost, backbone=backbone,
                         backbone_seed=backbone_seed, boost_kwargs=boost_kwargs, feature_cache=feature_cache, lr=lr,
                         adapter_lr=adapter_lr, weight_decay=weight_decay, betas=betas, freeze_host=freeze_host,
                         lora_rank=lora_rank, lora_alpha=lora_alpha, lora_dropout=lora_dropout,
                         ema_decay=ema_decay, eval_dir=eval_dir, run_name=run_name, print_report=print_report)

    # ---- kit hooks -------------------------------------------------------------------------------
    def task_meta(self) -> dict:
        h = self.hparams
        return {"sample_rate": int(h.sample_rate), "hop_length": int(h.hop_length),
                "pitch_range": [int(p) for p in h.pitch_range], "segment": float(h.segment),
                "eval_segment": None if h.eval_segment is None else float(h.eval_segment)}

    def evaluated(self) -> dict:
        h = self.hparams
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        return {"seconds": getattr(getattr(dm, "hparams", None), "test_seconds", None),
                "frame_rate": h.sample_rate / h.hop_length, "pitch_range": [int(p) for p in h.pitch_range],
                "onset_threshold": float(h.onset_threshold), "frame_threshold": float(h.frame_threshold)}

    def groups(self) -> list[str]:
        return list(METRICS)

    def transcriber(self) -> Transcriber:
        """An inference wrapper around the current weights (shares the modules)."""
        h = self.hparams
        return Transcriber(self.model, self.description(), segment=h.eval_segment, overlap=h.eval_overlap,
                           batch_size=h.eval_batch, onset_threshold=h.onset_threshold,
                           frame_threshold=h.frame_threshold, cache=self.feature_cache())

    # ---- Lightning hooks -------------------------------------------------------------------------
    def on_train_epoch_start(self) -> None:
        ds = getattr(getattr(self.trainer, "datamodule", None), "_train", None)
        if ds is not None:
            ds.set_epoch(self.current_epoch)

    def training_step(self, batch, batch_idx):
        from booster.adapters.onsets_frames import transcription_loss
        audio = batch["audio"]
        targets = {k: batch[k] for k in ("onset", "offset", "frame", "velocity")}
        loss, parts = transcription_loss(self.model(audio), targets)
        bs = audio.shape[0]
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=bs)
        for k, v in parts.items():
            self.log(f"train/{k}", v, on_step=True, on_epoch=False, batch_size=bs)
        return loss

    def _whole_file(self, split: str, index: int):
        """``(name, outputs {head: [T, P]}, reference notes, estimated notes, duration)`` of one file."""
        name, audio, ref, duration = self.trainer.datamodule.load_item(split, int(index))
        tr = self.transcriber()
        outputs = tr.predict(audio.to(self.device), cached=True)
        return name, outputs, ref, tr.decode(outputs), duration, audio.shape[-1]

    def validation_step(self, index, batch_idx):
        from booster.adapters.onsets_frames import transcription_loss
        from booster.data.pairs import frame_targets
        h = self.hparams
        name, outputs, ref, est, duration, samples = self._whole_file("valid", index)
        t = samples // h.hop_length
        targets = frame_targets(ref, frame_rate=h.sample_rate / h.hop_length, n_frames=t,
                                pitch_range=tuple(h.pitch_range))
        loss, _ = transcription_loss({k: v[None] for k, v in outputs.items()},
                                     {k: v[None].to(self.device) for k, v in targets.items()})
        scores = evaluate_notes(ref, est, frame_rate=h.sample_rate / h.hop_length, pitch_range=tuple(h.pitch_range),
                                duration=duration)
        self.log_valid("valid/loss", loss)
        self.log_valid("valid/note_f1", scores["note"]["f1"], prog_bar=True)
        self.log_valid("valid/frame_f1", scores["frame"]["f1"])

    def test_step(self, index, batch_idx):
        h = self.hparams
        name, _, ref, est, duration, _ = self._whole_file("test", index)
        scores = evaluate_notes(ref, est, frame_rate=h.sample_rate / h.hop_length, pitch_range=tuple(h.pitch_range),
                                duration=duration)
        self.add_test_item(name, scores)
        self.log("test/note_f1", torch.tensor(scores["note"]["f1"]), batch_size=1)
