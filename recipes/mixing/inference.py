"""Mixing whole tracks with a trained mixer, on the kit's chunked inference.

:class:`Mixer` is a :class:`booster.training.ChunkedInference` whose input is a stack of stems
``[N, C, S]`` and whose output is the stereo mix ``[2, S]`` (``hop=1``). A boosted mixer's backbone features
come from each chunk's own stems (their sum at the model's rate, the host's ``input_fn``), as in training
(the kit's context policy, :mod:`booster.training.inference`); chunks default to the training segment.
Stem files are read chunk by chunk (any rate / channel count, resampled to the model's rate) and the mix
is written chunk by chunk, so memory is bounded by one batch of chunks.
"""
from __future__ import annotations

from pathlib import Path

import torch

from booster.errors import AudioError
from booster.training import boosting
from booster.training.checkpoint import load_model, save_model
from booster.training.chunking import chunked_apply, tensor_reader
from booster.training.hosts import chunk_seconds
from booster.training.inference import ChunkedInference, inference_segment, model_device

from .layout import Multitrack, MultitrackReader, SlotMap, scan_track

TASK = "mixing"
FEATURE_BLOCK = 60.0  # seconds of stems summed at a time for the backbone's input


class Mixer(ChunkedInference):
    """``mixer.mix_tensor(stems [N, C, S]) -> [2, S]``; ``mixer.mix_folder(folder, out_dir)`` writes a wav."""

    def __init__(self, model: torch.nn.Module, meta: dict, *, overlap: float = 0.25, batch_size: int = 4,
                 cache=None, segment: float | None = None, **options):
        self.meta = meta
        self.stems = list(meta["stems"])
        host = boosting.host_of(model)
        seconds = segment or inference_segment(model, meta, chunk_seconds(meta["host"]["name"], host, 10.0))
        super().__init__(model, sample_rate=int(meta["sample_rate"]), channels=int(meta["channels"]),
                         segment=seconds, overlap=overlap, batch_size=batch_size, cache=cache, **options)
        self.out_channels = int(getattr(host, "out_channels", 2))

    def slot_map(self, aliases: dict | None = None, unknown: str = "error") -> SlotMap:
        return SlotMap(tuple(self.stems), dict(aliases or {}), unknown)

    def check_stems(self, stems: torch.Tensor) -> None:
        n, c = len(self.stems), self.channels
        if not isinstance(stems, torch.Tensor) or stems.dim() != 3 or stems.shape[:2] != (n, c):
            shape = tuple(stems.shape) if isinstance(stems, torch.Tensor) else type(stems).__name__
            raise AudioError(f"expected stems [{n}, {c}, S] (slots {', '.join(self.stems)}) at {self.sample_rate} Hz, "
                             f"got {shape}")

    def mix_tensor(self, stems: torch.Tensor, *, features=None, cached: bool = False,
                   progress: bool = False) -> torch.Tensor:
        """``stems`` ``[N, C, S]`` at ``sample_rate`` → mix ``[out_channels, S]`` on ``stems``' device.
        ``features``: precomputed features of the stems' sum (else each chunk's own; through the
        feature cache with ``cached``)."""
        self.check_stems(stems)
        dev = model_device(self.model)
        was = self.model.training
        self.model.eval()
        try:
            xs = stems.to(dev)
            if features is None:
                features = self.track_features(xs.sum(0), cached=cached)
            out = chunked_apply(tensor_reader(xs), xs.shape[-1], self.segment, self.runner(features, cached=cached),
                                overlap=self.overlap, hop=1, out_frames=xs.shape[-1], batch_size=self.batch_size,
                                progress=progress, sample_rate=self.sample_rate, desc="mixing")
        finally:
            self.model.train(was)
        return out.to(stems.device)

    def folder_features(self, track: Multitrack):
        """Track features of a folder's stems (``context="track"`` only, else None): their sum read at the
        model's rate and channels, as the host's ``input_fn`` gives it in training, kept in host memory."""
        if not self.boosted or self.context != "track":
            return None
        reader = MultitrackReader(track, self.sample_rate, self.channels)
        block = int(FEATURE_BLOCK * self.sample_rate)
        total = torch.cat([reader.stems(a, min(block, reader.length - a)).sum(0)
                           for a in range(0, reader.length, block)], -1)             # [C, S]
        return self.track_features(total)

    def mix_folder(self, folder: str | Path, out_dir: str | Path, *, aliases: dict | None = None,
                   unknown: str = "error", name: str | None = None, progress: bool = False,
                   subtype: str = "FLOAT") -> Path:
        """Mix the stem files of ``folder`` (see :mod:`.layout`) into ``out_dir/<name>.wav`` (default name:
        the folder's) at the model's rate, as long as the longest stem; returns the path."""
        import soundfile as sf

        from booster.fsutil import atomic_path

        track = scan_track(folder, self.slot_map(aliases, unknown), mix=None, require_mix=False,
                           ignore=("mixture", "mix"))
        reader = MultitrackReader(track, self.sample_rate, self.channels)
        features = self.folder_features(track)
        path = Path(out_dir) / f"{name or track.name}.wav"
        with atomic_path(path) as tmp:
            with sf.SoundFile(str(tmp), "w", self.sample_rate, self.out_channels, subtype=subtype,
                              format="WAV") as f:
                self.stream(reader.stems, reader.length, lambda block: f.write(block.cpu().numpy().T),
                            features=features, progress=progress, desc=track.name)
        return path

    # ---- persistence -----------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Host + adapter weights and the description in one ``.safetensors`` file."""
        return save_model(path, self.model, self.meta)

    @classmethod
    def load(cls, src: str | Path, *, overlap: float = 0.25, device="cpu", batch_size: int = 4,
             **options) -> "Mixer":
        """From a recipe ``.ckpt`` or a ``.safetensors`` mixer file; ``options``: ``segment``, ``context``,
        ``feature_dtype``."""
        model, meta = load_model(Path(src).expanduser(), task=TASK, device=device)
        return cls(model, meta, overlap=overlap, batch_size=batch_size, **options)
