"""Audio for pretraining: any folders of audio (any format soundfile reads, any rate), random crops.

Each file is decoded once to 24 kHz mono float16 in the cache directory, so random crops are a
memory-mapped slice instead of a decode + resample per step. Cache entries are keyed by the file's
content (its sha256), never by its path: audio replaced at the same path is decoded again. The hashes are
remembered in ``hashes.json`` with each file's size, ``mtime_ns`` and ``ctime_ns`` and reused while those match (see
:func:`content_hashes`); the list of decoded files (``files-<key>.json``) is keyed by the paths and their
hashes. Non-finite audio is refused when read, naming the file; nothing is cached for it.
Shapes: B batch, S samples (24 kHz).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import DataLoader, Dataset

from ...errors import AudioError, ConfigError

SAMPLE_RATE = 24_000
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif", ".opus")
DECODE_VERSION = 1          # part of every entry's key: bump when what _decode returns changes
_FLOAT16_MAX = 65504.0
_RACY_NS = 2_000_000_000    # a hash taken within 2 s of the file's mtime/ctime is not trusted next time


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


def audio_files(folders) -> list[Path]:
    """:func:`scan`, refusing a missing folder and a set of folders that holds no audio file."""
    files = scan(folders)
    if not files:
        names = [repr(str(f)) for f in folders]
        where = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "") or "(nothing)"
        raise ConfigError(f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) under {where}")
    return files


def content_hashes(files: list[Path], cache_dir: Path) -> dict[Path, str]:
    """sha256 of each file's bytes (:func:`booster.cache.file_hash`). A hash recorded in
    ``cache_dir/hashes.json`` is reused only while the file's size, ``mtime_ns`` and ``ctime_ns`` are the
    recorded ones (``ctime`` changes on every write and on ``touch -r``/``os.utime``, which can put an old
    mtime back) and the record was taken more than 2 s after them (a file rewritten within a coarse
    file-system timestamp tick is hashed again), as ``git`` trusts a file's stat."""
    from ...cache import file_hash
    from ...fsutil import write_text
    index_path = cache_dir / "hashes.json"
    try:
        index = json.loads(index_path.read_text())
        index = index if isinstance(index, dict) else {}
    except (OSError, ValueError):
        index = {}
    out, changed = {}, False
    for path in files:
        st = path.stat()
        name, sig = str(path.resolve()), [st.st_size, st.st_mtime_ns, st.st_ctime_ns]
        rec = index.get(name)
        if (isinstance(rec, list) and len(rec) == 5 and rec[:3] == sig
                and rec[3] - max(st.st_mtime_ns, st.st_ctime_ns) > _RACY_NS):
            out[path] = rec[4]
            continue
        now = time.time_ns()
        out[path] = file_hash(path)
        index[name], changed = [*sig, now, out[path]], True
    if changed:
        write_text(index_path, json.dumps(index, indent=0, sort_keys=True))
    return out


def _entry_name(sha: str) -> str:
    """The cache file of audio whose bytes hash to ``sha``, as decoded by this version of :func:`_decode`."""
    return hashlib.sha256(f"{DECODE_VERSION}|{SAMPLE_RATE}|{sha}".encode()).hexdigest()[:32] + ".npy"


def _decode(path: Path) -> np.ndarray:
    """Whole file → float16 mono 24 kHz [S]. Raises :class:`OSError`/``RuntimeError`` (soundfile) for a
    file it cannot read and :class:`AudioError` for NaN/Inf samples or samples beyond float16's range."""
    from ...audio import check_finite, resample
    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    check_finite(data, f"audio file {str(path)!r}")
    mono = torch.from_numpy(data.mean(1))
    if sr != SAMPLE_RATE:
        mono = resample(mono[None], sr, SAMPLE_RATE)[0]
    peak = float(mono.abs().max()) if mono.numel() else 0.0
    if peak > _FLOAT16_MAX:
        raise AudioError(f"audio file {str(path)!r} has samples up to {peak:.3g}, beyond the decode cache's "
                         "float16 range; normalise it (samples in [-1, 1])")
    return mono.numpy().astype(np.float16)


def _load_entry(target: Path) -> np.ndarray | None:
    """The decoded audio in ``target`` (memory-mapped), or None when it is missing or unreadable (an
    unreadable entry is removed, to be decoded again)."""
    if not target.is_file():
        return None
    try:
        return np.load(target, mmap_mode="r")
    except (OSError, ValueError):
        target.unlink(missing_ok=True)
        return None


def build_cache(folders, cache_dir, min_seconds: float = 1.0, log=print) -> list[dict]:
    """Decode every file once into ``cache_dir``; returns (and caches) the list of
    ``{"path", "cache", "seconds"}``. Files soundfile cannot read are skipped and reported; a file with
    NaN/Inf samples is an :class:`~booster.errors.AudioError` naming it (nothing is cached for it)."""
    from ...fsutil import atomic_path, write_text
    files = audio_files(folders)
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    hashes = content_hashes(files, cache_dir)
    key = hashlib.sha256(json.dumps([DECODE_VERSION, min_seconds, [[str(p), hashes[p]] for p in files]])
                         .encode()).hexdigest()[:16]
    listing = cache_dir / f"files-{key}.json"
    if listing.is_file():
        try:
            entries = json.loads(listing.read_text())
            if all(_load_entry(cache_dir / e["cache"]) is not None for e in entries):
                return entries
        except (OSError, ValueError, KeyError, TypeError):
            pass   # a damaged listing or a removed entry: made again below
    entries, skipped = [], []
    for i, path in enumerate(files):
        target = cache_dir / _entry_name(hashes[path])
        audio = _load_entry(target)
        if audio is None:
            try:
                decoded = _decode(path)
            except AudioError:   # NaN/Inf: refused, the run stops (a skipped file would go unnoticed)
                raise
            except Exception as e:  # unreadable or unsupported file: skip it, say so
                skipped.append(f"{path}: {type(e).__name__}")
                continue
            with atomic_path(target) as tmp:
                with open(tmp, "wb") as f:
                    np.save(f, decoded)
            audio = decoded
        seconds = audio.shape[0] / SAMPLE_RATE
        if seconds >= min_seconds:
            entries.append({"path": str(path), "cache": target.name, "seconds": round(seconds, 3)})
        if log and (i + 1) % 50 == 0:
            log(f"decoded {i + 1}/{len(files)} files")
    if not entries:
        why = f"; {len(skipped)} unreadable: " + "; ".join(skipped[:3]) if skipped else ""
        raise ConfigError(f"none of the {len(files)} audio file(s) is readable and at least "
                          f"{min_seconds:g} s long{why}")
    if skipped and log:
        log(f"skipped {len(skipped)} unreadable file(s): " + "; ".join(skipped[:5]))
    write_text(listing, json.dumps(entries, indent=1))
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
