"""Whole-track inference for any task whose model output has a time axis.

Shape glossary: C channels, S samples, T output frames, K chunks in a batch.

:class:`ChunkedInference` wraps a plain or boosted model with what inference needs: input sample rate and
channels, chunk length, overlap, output hop, batch of chunks. The backbone runs **once per track** (on the
whole track, in its own bounded windows, or from the feature cache); every chunk gets its slice of those
features; chunks run in batches of ``batch_size``. Tensors come back on the device they were given; the
model runs where its parameters are.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from torch import nn

from booster.backbone import extract_file
from booster.errors import AudioError

from . import boosting
from .chunking import chunk_features, chunked_apply, tensor_reader


def model_device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


class ChunkedInference:
    """``infer(x [C, S]) -> [..., T]`` over a whole input, chunk by chunk.

    ``segment``: chunk length in seconds (rounded to a multiple of ``hop``). ``hop``: input samples per
    output frame (1: the output is a waveform at ``sample_rate``). ``out_frames(num_samples)``: output
    length for an input (default ``ceil(S / hop)``). ``forward(model, chunks [K, C, segment]) -> [K, ..., T_chunk]``
    (default ``model(chunks)``). ``cache``: a ``booster.cache.FeatureCache`` used with ``cached=True``.
    """

    def __init__(self, model: nn.Module, *, sample_rate: int, channels: int, segment: float,
                 overlap: float = 0.25, hop: int = 1, batch_size: int = 4,
                 out_frames: Callable[[int], int] | None = None,
                 forward: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None, cache=None):
        self.model = model
        self.sample_rate, self.channels = int(sample_rate), int(channels)
        self.hop = int(hop)
        self.segment = max(self.hop, int(round(segment * self.sample_rate / self.hop)) * self.hop)
        self.overlap, self.batch_size, self.cache = float(overlap), int(batch_size), cache
        self.out_frames = out_frames or (lambda n: -(-n // self.hop))
        self.forward = forward or (lambda m, x: m(x))

    @property
    def boosted(self) -> bool:
        return boosting.is_boosted(self.model)

    @property
    def backbone(self):
        return boosting.backbone_of(self.model)

    # ---- features --------------------------------------------------------------------------------
    def track_features(self, x: torch.Tensor | str | Path, *, cached: bool = False):
        """Backbone features of a whole track (``[C, S]`` at ``sample_rate``, or a file path), once."""
        if not self.boosted:
            return None
        layers = boosting.feature_layers(self.model)
        if isinstance(x, (str, Path)):
            return extract_file(self.backbone, x, layers)
        with torch.no_grad():
            if cached and self.cache is not None:
                return self.cache.get_or_compute(self.backbone, x, self.sample_rate, layers)
            return self.backbone.extract(x, self.sample_rate, layers)

    def runner(self, features) -> Callable[[torch.Tensor, list[int]], torch.Tensor]:
        """``run(chunks [K, C, segment], starts) -> [K, ..., T_chunk]`` with each chunk's features."""
        sr, dur = self.sample_rate, self.segment / self.sample_rate

        def run(chunks: torch.Tensor, starts: list[int]) -> torch.Tensor:
            feats, t0 = None, 0.0
            if features is not None:
                feats, t0 = chunk_features(features, [s / sr for s in starts], dur)
                feats = feats.to(chunks.device)
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
        (else the backbone runs once here; through the cache with ``cached=True``)."""
        self.check_input(x)
        dev = model_device(self.model)
        was = self.model.training
        self.model.eval()
        try:
            xs = x.to(dev)
            if features is None:
                features = self.track_features(xs, cached=cached)
            out = chunked_apply(tensor_reader(xs), x.shape[-1], self.segment, self.runner(features),
                                overlap=self.overlap, hop=self.hop, out_frames=self.out_frames(x.shape[-1]),
                                batch_size=self.batch_size, progress=progress, sample_rate=self.sample_rate)
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
            chunked_apply(lambda a, n: read(a, n).to(dev), length, self.segment, self.runner(features),
                          overlap=self.overlap, hop=self.hop, out_frames=self.out_frames(length),
                          batch_size=self.batch_size, emit=emit, progress=progress,
                          sample_rate=self.sample_rate, desc=desc)
        finally:
            self.model.train(was)
