"""Audio for pretraining: any folders of audio (any format soundfile reads, any rate), random crops.

The first use of a set of folders scans them once and writes a file list (``files.json``) into the
cache directory; each file is decoded once to 24 kHz mono float16 (``<sha>.npy``), so random crops are a
memory-mapped slice instead of a decode + resample per step. Shapes: B batch, S samples (24 kHz).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import DataLoader, Dataset

from ...errors import ConfigError

SAMPLE_RATE = 24_000
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif", ".opus")


def scan(folders, extensions=AUDIO_EXTENSIONS) -> list[Path]:
    """Every audio file under ``folders`` (sorted), by extension."""
    out = []
    for folder in folders:
        folder = Path(folder).expanduser()
        if folder.is_file():
            out.append(folder)
            continue
        if not folder.is_dir():
            raise ConfigError(f"audio folder {str(folder)!r} does not exist")
        out += [p for p in folder.rglob("*") if p.suffix.lower() in extensions and p.is_file()]
    return sorted(set(out))


def _decode(path: Path) -> np.ndarray:
    """Whole file → float32 mono 24 kHz [S]."""
    from ...audio import resample
    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    mono = torch.from_numpy(data.mean(1))
    if sr != SAMPLE_RATE:
        mono = resample(mono[None], sr, SAMPLE_RATE)[0]
    return mono.numpy()


def build_cache(folders, cache_dir, min_seconds: float = 1.0, log=print) -> list[dict]:
    """Decode every file once into ``cache_dir``; returns (and caches) the list of
    ``{"path", "cache", "seconds"}``. Files soundfile cannot read are skipped and reported."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    files = scan(folders)
    key = hashlib.sha256("\n".join(map(str, files)).encode()).hexdigest()[:16]
    listing = cache_dir / f"files-{key}.json"
    if listing.is_file():
        return json.loads(listing.read_text())
    entries, skipped = [], []
    for i, path in enumerate(files):
        name = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:20] + ".npy"
        target = cache_dir / name
        if not target.is_file():
            try:
                audio = _decode(path)
            except Exception as e:  # unreadable or unsupported file: skip it, say so
                skipped.append(f"{path}: {type(e).__name__}")
                continue
            tmp = target.with_suffix(".tmp.npy")
            np.save(tmp, audio.astype(np.float16))
            os.replace(tmp, target)
        seconds = np.load(target, mmap_mode="r").shape[0] / SAMPLE_RATE
        if seconds >= min_seconds:
            entries.append({"path": str(path), "cache": name, "seconds": round(seconds, 3)})
        if log and (i + 1) % 50 == 0:
            log(f"decoded {i + 1}/{len(files)} files")
    if not entries:
        raise ConfigError(f"no readable audio of at least {min_seconds}s under {list(map(str, folders))}")
    if skipped and log:
        log(f"skipped {len(skipped)} unreadable file(s): " + "; ".join(skipped[:5]))
    listing.write_text(json.dumps(entries, indent=1))
    return entries


class CropDataset(Dataset):
    """Random crops of ``seconds`` from the cached files, chosen in proportion to file duration.

    ``split`` holds back every ``holdout``-th file (by list order) for validation; validation crops
    are deterministic (the same crops every epoch). Training crop ``i`` of epoch ``e`` is a pure function of
    ``(seed, e, i)``, so a resumed run sees the same crops again; ``e`` is the epoch of the
    :class:`~booster.data.resumable.ResumableLoader` that :func:`crop_loader` binds as ``sampler`` (it is
    set before each epoch's items are drawn, also in worker processes; unbound: epoch 0)."""

    def __init__(self, entries, cache_dir, seconds: float = 8.0, length: int = 10_000, split: str = "train",
                 holdout: int = 10, seed: int = 0):
        keep = [e for i, e in enumerate(entries) if (i % holdout == holdout - 1) == (split == "val")]
        if not keep:
            keep = list(entries)
        self.entries, self.cache_dir = keep, Path(cache_dir)
        self.samples = int(seconds * SAMPLE_RATE)
        self.length, self.split, self.seed = length, split, seed
        w = np.array([e["seconds"] for e in keep], dtype=np.float64)
        self.weights = w / w.sum()
        self._arrays: dict[str, np.ndarray] = {}
        self.sampler = None   # the training loader's sampler: its ``epoch``

    @property
    def hours(self) -> float:
        return float(sum(e["seconds"] for e in self.entries) / 3600)

    def __len__(self) -> int:
        return self.length

    def _array(self, name: str) -> np.ndarray:
        if name not in self._arrays:
            self._arrays[name] = np.load(self.cache_dir / name, mmap_mode="r")
        return self._arrays[name]

    def _rng(self, index: int) -> np.random.Generator:
        """The generator that picks crop ``index`` (file and start)."""
        if self.split == "val":
            return np.random.default_rng(self.seed * 1_000_003 + index)
        epoch = 0 if self.sampler is None else int(self.sampler.epoch)
        return np.random.default_rng([int(self.seed), epoch, int(index)])

    def __getitem__(self, index: int) -> torch.Tensor:
        """→ ``[S]`` float32 (zero-padded if the file is shorter than the crop)."""
        rng = self._rng(index)
        entry = self.entries[rng.choice(len(self.entries), p=self.weights)]
        audio = self._array(entry["cache"])
        n = audio.shape[0]
        start = int(rng.integers(0, max(1, n - self.samples + 1)))
        crop = np.zeros(self.samples, dtype=np.float32)
        piece = np.asarray(audio[start:start + self.samples], dtype=np.float32)
        crop[:len(piece)] = piece
        return torch.from_numpy(crop)


def crop_loader(dataset: CropDataset, batch_size: int, seed: int = 0, num_workers: int = 0):
    """A :class:`~booster.data.resumable.ResumableLoader` of training crops (batches ``[B, S]``), bound to
    ``dataset`` for its epoch: a checkpoint stores its position, so a resumed run continues with the same crops."""
    from ...data.resumable import ResumableLoader
    loader = ResumableLoader(dataset, batch_size=batch_size, seed=seed, num_workers=num_workers,
                             persistent_workers=False)
    dataset.sampler = loader.sampler
    return loader


def loaders(folders, cache_dir, seconds: float, batch_size: int, steps_per_epoch: int = 1000,
            val_crops: int = 16, workers: int = 0, seed: int = 0):
    """(train :func:`crop_loader` (crops of ``seed``), val DataLoader, hours of training audio, hours held
    back)."""
    entries = build_cache(folders, cache_dir)
    train = CropDataset(entries, cache_dir, seconds, steps_per_epoch * batch_size, "train", seed=seed)
    val = CropDataset(entries, cache_dir, seconds, val_crops, "val")
    val_loader = DataLoader(val, batch_size=batch_size, num_workers=workers, persistent_workers=workers > 0)
    return crop_loader(train, batch_size, seed, workers), val_loader, train.hours, val.hours
