"""Multitrack + reference mix: stems and the mix an engineer made from them (mixing recipes).

The synthetic generator writes the reference mix to ``<track>/mix/mixture.wav`` and its parameters
to ``<track>/mix/params.json``; any data set with stems plus a mix file per track folder works.
Shapes: stems ``[N, C, S]``, mix ``[C, S]`` float32 tensors.
"""
from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import DatasetError
from .stems import MAX_LISTED, MUSDB_SOURCES, SKIP_HINT, SegmentDataset, Track, _fit, _read, list_tracks, segment
from ..audio import convert_channels, resample


@dataclass(frozen=True)
class MixTrack:
    """A validated stems track with its reference mix (``params``: the mix's JSON, if any)."""

    track: Track
    mix_path: Path
    params: dict | None = field(default=None, compare=False)

    @property
    def name(self) -> str:
        return self.track.name

    def load(self, start: float = 0.0, duration: float | None = None, *, sample_rate: int | None = None,
             channels: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(stems [N, C, S], mix [C, S])``; see :meth:`Track.load` for the arguments."""
        sr = sample_rate or self.track.sample_rate
        ch = channels or self.track.channels
        _, stems = segment(self.track, start, duration, sample_rate=sr, channels=ch, mixture=False)
        return stems, self._mix(start, duration, sr, ch, stems.shape[-1])

    def _mix(self, start: float, duration: float | None, sr: int, ch: int, n: int) -> torch.Tensor:
        t = self.track
        first = int(round(start * t.sample_rate))
        count = t.frames - first if duration is None else int(round(duration * t.sample_rate)) + 16
        mix = _read(t, self.mix_path, first, max(count, 0))
        if sr != t.sample_rate:
            mix = resample(mix, t.sample_rate, sr)
        return _fit(convert_channels(mix, ch), n)


def list_mix_tracks(root: str | os.PathLike, split: str | None = None,
                    sources: tuple[str, ...] | list[str] = MUSDB_SOURCES, *, mix: str = "mix/mixture.wav",
                    params: str | None = "mix/params.json", skip_invalid: bool = False) -> list[MixTrack]:
    """Tracks of :func:`list_tracks` that also hold a reference mix at ``<track>/<mix>`` with the same
    sample rate and length as the stems. Problems are raised together as :class:`DatasetError`
    (or skipped with a warning when ``skip_invalid``)."""
    import soundfile as sf

    out, bad = [], []
    tracks = list_tracks(root, split, sources, skip_invalid=skip_invalid)
    for t in tracks:
        path = t.path / mix
        if not path.is_file():
            bad.append(f"{t.name}: missing reference mix {mix}")
            continue
        try:
            i = sf.info(str(path))
        except Exception as e:
            bad.append(f"{t.name}: unreadable reference mix {mix} ({str(e).strip()[:120]})")
            continue
        if i.samplerate != t.sample_rate:
            bad.append(f"{t.name}: sample-rate mismatch, {mix} is {i.samplerate} Hz, stems are {t.sample_rate} Hz")
            continue
        if i.frames != t.frames:
            bad.append(f"{t.name}: length mismatch, {mix} has {i.frames} samples, stems have {t.frames}")
            continue
        doc = None
        if params and (t.path / params).is_file():
            try:
                doc = json.loads((t.path / params).read_text())
            except (OSError, ValueError) as e:
                bad.append(f"{t.name}: unreadable mix parameters {params} ({e})")
                continue
        out.append(MixTrack(t, path, doc))
    if bad:
        msg = f"{len(bad)} track(s) have no usable reference mix:\n  " + "\n  ".join(bad[:MAX_LISTED])
        if not skip_invalid or not out:
            raise DatasetError(msg + "\nFix these folders (or move them out of the split)"
                               + ("" if skip_invalid else SKIP_HINT) + ".")
        warnings.warn(msg + "\nThese tracks are skipped.", stacklevel=2)
    return out


class MixDataset(SegmentDataset):
    """Fixed segments of multitrack + mix tracks: ``__getitem__(i) -> (stems [N, C, S], mix [C, S])``.

    Same segmentation as :class:`~booster.data.stems.SegmentDataset` (``segment`` None: whole tracks).
    """

    def __init__(self, tracks: list[MixTrack], segment: float | None, sample_rate: int = 44100,
                 channels: int = 2, stride: float | None = None):
        if not tracks:
            raise DatasetError("MixDataset got no tracks; check the data set path and split")
        self.mix_tracks = list(tracks)
        super().__init__([m.track for m in self.mix_tracks], segment, sample_rate, channels, stride)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        t, start = self._index[i]
        return self.mix_tracks[t].load(start, self.segment, sample_rate=self.sample_rate,
                                       channels=self.channels)
