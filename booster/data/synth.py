"""Generate a synthetic multitrack data set in the MUSDB18-HQ layout.

For every track ``<root>/<split>/<track>/``::

    mixture.wav drums.wav bass.wav other.wav vocals.wav   float32 WAV, stereo, 44.1 kHz
    midi/<stem>.mid                                        the exact notes of each stem
    mix/mixture.wav mix/<stem>.wav mix/params.json         engineered mix (EQ, compression, gain, pan)
    meta.json                                              tempo, key, progression, programs, gains

``mixture.wav`` is the sum of the four stems (float32 rounding only) and is peak-normalised to
``PEAK`` (the gain applied to the stems is recorded); the engineered mix is normalised the same way.
The lead melody plays the ``vocals`` role on a voice-like GM program. Everything is a deterministic
function of ``(seed, split, track index)``: the same call writes byte-identical files.
"""
from __future__ import annotations

import json
import os
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from .mixing import engineered_mix, random_mix_params
from .numpy_synth import VERSION as NUMPY_SYNTH_VERSION
from .render import resolve_renderer, render_song
from .songs import STEMS, compose_song
from ..audio import save as write_wav
from ..fsutil import atomic_path, write_text

PEAK = 0.89  # about -1 dBFS
FADE_SECONDS = 0.02
LEVELS_DB = {"drums": -20.0, "bass": -22.0, "other": -24.0, "vocals": -20.0}  # stem RMS before normalising


GENERATE_KEYS = ("splits", "seconds", "seed", "renderer")


def generate_from_spec(root: str | os.PathLike, spec: Mapping, *, present: bool = False, **kwargs) -> dict | None:
    """Data made on first use from a recipe config's ``data.generate`` mapping (keys: ``splits``
    {name: tracks}, ``seconds``, ``seed``, ``renderer``); ``kwargs`` go to :func:`generate_dataset` (e.g.
    ``sample_rate``, ``mix``). ``present``: the recipe already finds its training split under ``root``.

    A finished synthetic set made with the same settings is reused (None is returned); one made with other
    settings is a :class:`ConfigError` naming both, never silently reused; an interrupted one is made again;
    a folder without ``synth_report.json`` that the recipe can read (your own data) is used as it is."""
    unknown = set(spec) - set(GENERATE_KEYS)
    if unknown:
        raise ConfigError(f"data.generate has unknown keys {sorted(unknown)}; allowed: {', '.join(GENERATE_KEYS)}")
    args = dict(split=dict(spec.get("splits", {"train": 4, "valid": 1, "test": 1})),
                seconds=float(spec.get("seconds", 8.0)), seed=int(spec.get("seed", 0)),
                renderer=spec.get("renderer", "auto"), **kwargs)
    report_path = Path(root) / "synth_report.json"
    try:
        made = json.loads(report_path.read_text())
    except (OSError, ValueError):
        made = None
    if made is None:
        return None if present else generate_dataset(root, **args)
    want = {"splits": args["split"], "seconds": args["seconds"], "seed": args["seed"],
            "sample_rate": int(args.get("sample_rate", 44100))}
    if args["renderer"] != "auto":
        want["renderer"] = args["renderer"]
    if made.get("renderer") == "numpy":  # its output changed between versions; FluidSynth's did not
        want["numpy_synth_version"] = NUMPY_SYNTH_VERSION
        made.setdefault("numpy_synth_version", 1)
    differ = {k: (made.get(k), v) for k, v in want.items() if made.get(k) != v}
    if differ:
        raise ConfigError(f"{str(root)!r} holds a synthetic set made with other settings ("
                          + "; ".join(f"{k}: {a} there, {b} asked" for k, (a, b) in differ.items())
                          + "): to train on it as it is, pass --data.generate null; to have a set made with "
                          "these settings, pass another --data.root (this folder is never replaced)")
    if made.get("complete", True) and present:
        return None
    return generate_dataset(root, **args)  # interrupted (or its training split removed): made again


def generate_dataset(root: str | os.PathLike, *, tracks: int | None = None, seconds: float = 10.0,
                     seed: int = 0, split: str | Mapping[str, int] = "train", renderer: str = "auto",
                     progress: bool = False, sample_rate: int = 44100, soundfont: str | None = None,
                     other_parts: int = 1, mix: bool = True) -> dict:
    """Write a synthetic multitrack set under ``root`` and return a report.

    ``split`` is a split name (``tracks`` songs go to ``<root>/<split>/``) or a mapping
    ``{split: count}`` (then ``tracks`` must be None). ``renderer`` is "auto" | "fluidsynth" | "numpy";
    ``other_parts`` is 1 (chords) or 2 (chords + pad) in the ``other`` stem; ``mix=False`` skips the
    engineered mix. The report (also written to ``<root>/synth_report.json``) holds the renderer used
    and why, and per track its split, name, path, tempo, key, mixture gain and mix gain.
    """
    splits = _splits(tracks, split)
    if not seconds >= 1.0:
        raise ConfigError(f"--seconds must be at least 1.0, got {seconds}")
    if sample_rate < 8000:
        raise ConfigError(f"sample_rate must be at least 8000 Hz, got {sample_rate}")
    choice = resolve_renderer(renderer, soundfont)
    root = Path(root)
    total = sum(splits.values())
    report = {"renderer": choice.name, "renderer_reason": choice.reason, "soundfont": choice.soundfont,
              "seed": int(seed), "seconds": float(seconds), "sample_rate": int(sample_rate),
              "stems": list(STEMS), "splits": dict(splits), "tracks": []}
    if choice.name == "numpy":
        report["numpy_synth_version"] = NUMPY_SYNTH_VERSION
    root.mkdir(parents=True, exist_ok=True)  # marked unfinished until the last track is written
    write_text(root / "synth_report.json", json.dumps({**report, "complete": False}, indent=2) + "\n")
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=total, desc=f"synth ({choice.name})", unit="track")
    try:
        for split_name, count in splits.items():
            for index in range(count):
                entry = write_track(root / split_name, index=index, split=split_name, seed=seed,
                                    seconds=seconds, sample_rate=sample_rate, choice=choice,
                                    other_parts=other_parts, mix=mix)
                report["tracks"].append(entry)
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    report["complete"] = True
    write_text(root / "synth_report.json", json.dumps(report, indent=2) + "\n")
    return report


def _splits(tracks: int | None, split: str | Mapping[str, int]) -> dict[str, int]:
    if isinstance(split, str):
        if tracks is None:
            raise ConfigError("give the number of tracks (tracks=N) for split " + repr(split))
        splits = {split: tracks}
    else:
        if tracks is not None:
            raise ConfigError("give either tracks=N with one split name, or a {split: count} mapping, not both")
        splits = dict(split)
    if not splits:
        raise ConfigError("no split given")
    for name, count in splits.items():
        if not name or "/" in name or name.startswith("."):
            raise ConfigError(f"invalid split name {name!r}: use a plain folder name such as 'train'")
        if not isinstance(count, (int, np.integer)) or count < 1:
            raise ConfigError(f"split {name!r} needs a positive number of tracks, got {count!r}")
    return {k: int(v) for k, v in splits.items()}


def track_seed(seed: int, split: str, index: int) -> list[int]:
    """The entropy of one track's random stream (independent of how many tracks are generated)."""
    return [int(seed), zlib.crc32(split.encode()), int(index)]


def write_track(folder: Path, *, index: int, split: str, seed: int, seconds: float, sample_rate: int,
                choice, other_parts: int = 1, mix: bool = True) -> dict:
    """Compose, render and write one track into ``folder/song_<index>``; returns its report entry."""
    entropy = track_seed(seed, split, index)
    rng = np.random.default_rng(entropy)
    name = f"song_{index:04d}"
    song = compose_song(rng, seconds=seconds, name=name, other_parts=other_parts)
    frames = int(round(seconds * sample_rate))
    stems = render_song(song, choice, frames=frames, sample_rate=sample_rate, seed=zlib.crc32(str(entropy).encode()))
    fade = np.linspace(1.0, 0.0, max(1, int(FADE_SECONDS * sample_rate)))
    levels = {}
    for stem in STEMS:
        x = stems[stem].astype(np.float64)
        x[:, -len(fade):] *= fade
        rms = float(np.sqrt(np.mean(x ** 2)))
        target = LEVELS_DB[stem] + float(rng.uniform(-3, 3))
        levels[stem] = round(target, 3)
        stems[stem] = x * (10 ** (target / 20) / rms if rms > 0 else 1.0)
    mixture = sum(stems[s] for s in STEMS)
    gain = PEAK / max(float(np.abs(mixture).max()), 1e-9)
    out = folder / name
    stems32 = {s: (stems[s] * gain).astype(np.float32) for s in STEMS}
    mixture32 = np.sum([stems32[s].astype(np.float64) for s in STEMS], axis=0).astype(np.float32)
    for s in STEMS:
        write_wav(out / f"{s}.wav", stems32[s], sample_rate)
        with atomic_path(out / "midi" / f"{s}.mid") as tmp:
            song.midi(s).write(str(tmp))
    write_wav(out / "mixture.wav", mixture32, sample_rate)
    meta = {**song.describe(), "split": split, "index": index, "seed": int(seed),
            "renderer": choice.name, "sample_rate": sample_rate, "frames": frames,
            "stem_rms_db": levels, "mixture_gain": gain}
    entry = {"split": split, "name": name, "path": f"{split}/{name}", "tempo": round(song.tempo, 4),
             "key": song.key_name, "mixture_gain": gain}
    if mix:
        mrng = np.random.default_rng(entropy + [1])
        params = random_mix_params(mrng, list(STEMS))
        processed = engineered_mix({s: stems32[s] for s in STEMS}, params, sample_rate)
        mix_sum = sum(processed[s] for s in STEMS)
        mix_gain = PEAK / max(float(np.abs(mix_sum).max()), 1e-9)
        mix32 = {s: (processed[s] * mix_gain).astype(np.float32) for s in STEMS}
        for s in STEMS:
            write_wav(out / "mix" / f"{s}.wav", mix32[s], sample_rate)
        write_wav(out / "mix" / "mixture.wav",
                   np.sum([mix32[s].astype(np.float64) for s in STEMS], axis=0).astype(np.float32), sample_rate)
        doc = {"order": ["eq", "compressor", "gain_db", "pan"], "stems": params, "output_gain": mix_gain,
               "sample_rate": sample_rate, "description": "mix/mixture.wav = sum of mix/<stem>.wav = "
               "output_gain * sum(pan(gain(compress(eq(<stem>.wav)))))"}
        write_text(out / "mix" / "params.json", json.dumps(doc, indent=2) + "\n")
        meta["mix_gain"] = entry["mix_gain"] = mix_gain
    write_text(out / "meta.json", json.dumps(meta, indent=2) + "\n")
    return entry

