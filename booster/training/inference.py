"""Whole-track inference for any task whose model output has a time axis.

Shape glossary: C channels, S samples, T output frames, L layers, D feature dim, K chunks in a batch.

:class:`ChunkedInference` wraps a plain or boosted model with what inference needs: input sample rate and
channels, chunk length, overlap, output hop, batch of chunks. Chunks run in batches of ``batch_size``.
Tensors come back on the device they were given; the model runs where its parameters are.

**Train = inference (the context policy).** A boosted model's backbone features are computed the way
training computed them, in every task: from the host chunk's own audio at the host's sample rate and
channels, through the backbone's own ``extract(wav, host_rate)`` (:func:`booster.backbone.backbone_features`,
called by :class:`booster.injection.Boosted`'s live path), with the chunk length defaulting to the training crop
(``meta["segment"]``, see :func:`inference_segment`). This is ``context="chunk"``, the default. It was chosen
from a measurement (``benchmarks/context_policy.py``, a 40-s synthetic song): features of a training crop
computed alone differ from the same frames sliced from whole-track features (MuQ's 30-s windows) by a
relative L2 of 0.08-0.27 per layer for a 2-s crop with muq-mini (0.12-0.31 at 1 s, 0.04-0.17 at 6 s;
debug MuQ: 0.13-0.23 at 2 s), and the transcriber's old band limit gap (16 kHz vs 44.1 kHz input) is 0.22-0.49
-- adapters trained on one saw something else at inference. With ``context="chunk"`` no whole-track
feature tensor exists; with ``cached=True`` and a feature cache each chunk's features go through the
cache (keyed by the chunk's audio), so a fixed validation/test set is extracted once.

``context="track"`` keeps the old path for callers that want it (or pass ``features=``): the backbone runs
once per track at the host's rate, the features are kept in host memory (``feature_dtype`` "float32" or
"float16") and each chunk batch gets its slice, moved to the device.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from torch import nn

from booster.backbone import backbone_features, extract_file
from booster.errors import AudioError, ConfigError
from booster.features import Features

from . import boosting
from .chunking import CHUNKING_MODES, chunk_features, chunked_apply, msst_apply, msst_step, tensor_reader

CONTEXTS = ("chunk", "track")
FEATURE_DTYPES = {"float32": torch.float32, "float16": torch.float16}


def inference_segment(model: nn.Module, meta: dict, host_default: float) -> float:
    """Default chunk length in seconds: for a boosted model the training crop (``meta["segment"]``), so
    the backbone sees at inference the context it had in training; else ``host_default`` (the host
    plug-in's ``chunk_seconds``). ``meta["eval_segment"]`` (what ``booster test`` used, when set) wins."""
    if meta.get("eval_segment"):
        return float(meta["eval_segment"])
    if boosting.is_boosted(model) and meta.get("segment"):
        return float(meta["segment"])
    return float(host_default)


def model_device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


class ChunkedInference:
    """``infer(x [C, S]) -> [..., T]`` over a whole input, chunk by chunk.

    ``segment``: chunk length in seconds (rounded to a multiple of ``hop``). ``hop``: input samples per
    output frame (1: the output is a waveform at ``sample_rate``). ``out_frames(num_samples)``: output
    length for an input (default ``ceil(S / hop)``). ``forward(model, chunks [K, C, segment]) -> [K, ..., T_chunk]``
    (default ``model(chunks)``). ``cache``: a ``booster.cache.FeatureCache`` used with ``cached=True``.
    ``context``: "chunk" (features per chunk, as in training) or "track" (once per track, sliced); see the
    module docstring. ``feature_dtype``: storage of track features in host memory ("float32", "float16").
    ``chunking``: "kit" (triangle cross-fade, :func:`booster.training.chunking.chunked_apply`) or "msst"
    (MSST's ``demix``, :func:`booster.training.chunking.msst_apply`; waveform outputs, ``hop`` 1) with
    ``num_overlap`` (step ``segment // num_overlap``) unless ``overlap`` is given
    (:func:`booster.training.chunking.msst_step`).
    """

    def __init__(self, model: nn.Module, *, sample_rate: int, channels: int, segment: float,
                 overlap: float = 0.25, hop: int = 1, batch_size: int = 4,
                 out_frames: Callable[[int], int] | None = None,
                 forward: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None, cache=None,
                 context: str = "chunk", feature_dtype: str = "float32", chunking: str = "kit",
                 num_overlap: int | None = None):
        if context not in CONTEXTS:
            raise ConfigError(f"context must be one of {CONTEXTS}, got {context!r}")
        if feature_dtype not in FEATURE_DTYPES:
            raise ConfigError(f"feature_dtype must be one of {tuple(FEATURE_DTYPES)}, got {feature_dtype!r}")
        self.model = model
        self.sample_rate, self.channels = int(sample_rate), int(channels)
        self.hop = int(hop)
        self.segment = max(self.hop, int(round(segment * self.sample_rate / self.hop)) * self.hop)
        self.overlap, self.batch_size, self.cache = float(overlap), int(batch_size), cache
        self.out_frames = out_frames or (lambda n: -(-n // self.hop))
        self.forward = forward or (lambda m, x: m(x))
        self.context, self.feature_dtype = context, FEATURE_DTYPES[feature_dtype]
        if chunking not in CHUNKING_MODES:
            raise ConfigError(f"chunking must be one of {CHUNKING_MODES}, got {chunking!r}")
        self.chunking, self.step = chunking, None
        if chunking == "msst":
            if self.hop != 1:
                raise ConfigError(f"MSST chunking is for waveform outputs (hop 1), got hop {self.hop}")
            self.step = msst_step(self.segment, num_overlap=num_overlap,
                                  overlap=None if num_overlap is not None else self.overlap)
            self.overlap = 1 - self.step / self.segment

    def _apply(self, read, length: int, run, **kw):
        """The chunking mode's ``chunked_apply`` / ``msst_apply`` over a ``length``-sample input."""
        if self.chunking == "msst":
            return msst_apply(read, length, self.segment, run, step=self.step, batch_size=self.batch_size, **kw)
        return chunked_apply(read, length, self.segment, run, overlap=self.overlap, hop=self.hop,
                             out_frames=self.out_frames(length), batch_size=self.batch_size, **kw)

    @property
    def boosted(self) -> bool:
        return boosting.is_boosted(self.model)

    @property
    def backbone(self):
        return boosting.backbone_of(self.model)

    # ---- features --------------------------------------------------------------------------------
    def track_features(self, x: torch.Tensor | str | Path, *, cached: bool = False):
        """Backbone features of a whole track (``[C, S]`` at ``sample_rate``, or a file path read at
        ``sample_rate``), once, in host memory (``hidden`` ``[1, L, T, D]`` on the CPU). None for a plain
        model or with ``context="chunk"`` (each chunk's features are then computed from the chunk)."""
        if not self.boosted or self.context != "track":
            return None
        layers = boosting.feature_layers(self.model)
        keep = {"out_device": "cpu", "out_dtype": self.feature_dtype}
        if isinstance(x, (str, Path)):
            return extract_file(self.backbone, x, layers, self.sample_rate, **keep)
        if cached and self.cache is not None:
            return self.cache.get_or_compute(self.backbone, x, self.sample_rate, layers).to(
                "cpu", self.feature_dtype)
        return backbone_features(self.backbone, x, self.sample_rate, layers, **keep)

    def chunk_features(self, chunks: torch.Tensor) -> Features:
        """Features of a batch of chunks ``[K, C, segment]`` through the feature cache, one chunk at a
        time: the audio the boosted model's live path would give the backbone (its ``input_fn``), so the
        result equals the live path's (``hidden`` ``[K, L, T, D]`` on the chunks' device)."""
        wav, sr = self.model.input_fn(chunks)
        batched = wav.reshape(1, 1, -1) if wav.dim() == 1 else wav[:, None] if wav.dim() == 2 else wav
        layers = boosting.feature_layers(self.model)
        items = [self.cache.get_or_compute(self.backbone, w, sr, layers) for w in batched]
        hidden = torch.cat([f.hidden.to(chunks.device, torch.float32) for f in items])
        return Features(hidden, items[0].layers, items[0].frame_rate, items[0].start)

    def runner(self, features, *, cached: bool = False) -> Callable[[torch.Tensor, list[int]], torch.Tensor]:
        """``run(chunks [K, C, segment], starts) -> [K, ..., T_chunk]`` with each chunk's features: sliced
        from ``features`` (track features in host memory) when given, else the chunk's own (the boosted
        model's live path, or the feature cache with ``cached=True``)."""
        sr, dur = self.sample_rate, self.segment / self.sample_rate
        per_chunk_cache = cached and self.cache is not None and self.boosted

        def run(chunks: torch.Tensor, starts: list[int]) -> torch.Tensor:
            feats, t0 = None, 0.0
            if features is not None:    # sliced on the host, moved per chunk batch
                feats, t0 = chunk_features(features, [s / sr for s in starts], dur)
                feats = feats.to(chunks.device, torch.float32)
            elif per_chunk_cache:
                feats = self.chunk_features(chunks)
            with torch.inference_mode(), boosting.using(self.model, feats, t0):
                return self.forward(self.model, chunks)
        return run

    # ---- inference -------------------------------------------------------------------------------
    def check_input(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[0] != self.channels:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise AudioError(f"expected an input [{self.channels}, S] at {self.sample_rate} Hz, got {shape}; "
                             "convert with booster.audio.convert_channels/resample")

    def __call__(self, x: torch.Tensor, *, features=None, cached: bool = False,
                 progress: bool = False) -> torch.Tensor:
        """``x`` ``[C, S]`` → ``[..., T]`` on ``x``'s device. ``features``: precomputed track features
        (else per chunk, or once here with ``context="track"``; through the cache with ``cached=True``)."""
        self.check_input(x)
        dev = model_device(self.model)
        was = self.model.training
        self.model.eval()
        try:
            xs = x.to(dev)
            if features is None:
                features = self.track_features(xs, cached=cached)
            out = self._apply(tensor_reader(xs), x.shape[-1], self.runner(features, cached=cached),
                              progress=progress, sample_rate=self.sample_rate)
        finally:
            self.model.train(was)
        return out.to(x.device)

    def stream(self, read: Callable[[int, int], torch.Tensor], length: int, emit: Callable[[torch.Tensor], None],
               *, features=None, progress: bool = False, desc: str = "processing") -> None:
        """Like ``__call__`` for a reader (e.g. ``booster.audio.FileReader``): finished output blocks go to
        ``emit`` in order, so memory stays bounded whatever the length."""
        dev = model_device(self.model)
        was = self.model.training
        self.model.eval()
        try:
            self._apply(lambda a, n: read(a, n).to(dev), length, self.runner(features), emit=emit,
                        progress=progress, sample_rate=self.sample_rate, desc=desc)
        finally:
            self.model.train(was)
