"""Audio + MIDI pairs for transcription (MAESTRO-like ``x.wav`` next to ``x.mid``/``x.midi``).

:func:`list_pairs` finds pairs in a folder tree (or through a MAESTRO ``maestro-v*.csv`` when a split
is asked and the CSV is present); :func:`list_stem_pairs` pairs the stems of a stems data set with
their ``midi/<stem>.mid`` (the synthetic generator's layout). :func:`frame_targets` turns notes into
onset / frame / offset / velocity rolls. Shapes: audio ``[C, S]``; rolls ``[T, P]`` (T frames,
P pitches of ``pitch_range``).
"""
from __future__ import annotations

import csv
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pretty_midi
import torch

from ..audio import AUDIO_EXTENSIONS, convert_channels, resample, wav_declared_frames
from ..errors import ConfigError, DatasetError
from .stems import MAX_LISTED, SKIP_HINT, _fit

MIDI_EXTENSIONS = (".mid", ".midi")
PIANO_RANGE = (21, 108)  # A0..C8 inclusive


@dataclass(frozen=True)
class Pair:
    """One audio file with the MIDI file(s) of its notes."""

    name: str
    audio_path: Path
    midi_paths: tuple[Path, ...]
    sample_rate: int
    frames: int
    channels: int

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate

    def notes(self, include_drums: bool = False) -> list[pretty_midi.Note]:
        """All notes (drum notes only if ``include_drums``), sorted by (start, pitch)."""
        out = []
        for p in self.midi_paths:
            out.extend(read_notes(p, self.name, include_drums=include_drums))
        return sorted(out, key=lambda n: (n.start, n.pitch, n.end))

    def load(self, start: float = 0.0, duration: float | None = None, *, sample_rate: int | None = None,
             channels: int | None = None) -> torch.Tensor:
        """Audio ``[C, S]`` from ``start`` for ``duration`` seconds (zero-padded past the end)."""
        import soundfile as sf

        sr_out = sample_rate or self.sample_rate
        first = int(round(start * self.sample_rate))
        count = self.frames - first if duration is None else int(math.ceil(duration * self.sample_rate)) + 16
        n = int(round((duration if duration is not None else count / self.sample_rate) * sr_out))
        try:
            data, _ = sf.read(str(self.audio_path), start=first, frames=max(count, 0), dtype="float32",
                              always_2d=True)
        except Exception as e:
            raise DatasetError(f"pair {self.name!r}: cannot read {self.audio_path.name} ({e})") from None
        wav = torch.from_numpy(np.ascontiguousarray(data.T))
        if sr_out != self.sample_rate:
            wav = resample(wav, self.sample_rate, sr_out)
        return _fit(convert_channels(wav, channels or self.channels), n)

    def targets(self, start: float = 0.0, duration: float | None = None, *, frame_rate: float = 100.0,
                pitch_range: tuple[int, int] = PIANO_RANGE, include_drums: bool = False) -> dict[str, torch.Tensor]:
        """:func:`frame_targets` of this pair's notes over ``[start, start + duration)``."""
        duration = self.duration - start if duration is None else duration
        return frame_targets(self.notes(include_drums), frame_rate=frame_rate,
                             n_frames=int(round(duration * frame_rate)), start=start, pitch_range=pitch_range)


def read_notes(path: Path, name: str, include_drums: bool = False) -> list[pretty_midi.Note]:
    """Notes of a MIDI file; :class:`DatasetError` if it is unreadable or holds no notes."""
    try:
        pm = pretty_midi.PrettyMIDI(str(path))
    except Exception as e:
        raise DatasetError(f"pair {name!r}: cannot read MIDI file {path.name} ({str(e)[:120]})") from None
    notes = [n for inst in pm.instruments if include_drums or not inst.is_drum for n in inst.notes]
    if not notes:
        what = "no notes" if include_drums else "no pitched notes (drum tracks are ignored)"
        raise DatasetError(f"pair {name!r}: MIDI file {path.name} is empty ({what})")
    return notes


def frame_targets(notes: list[pretty_midi.Note], *, frame_rate: float, n_frames: int, start: float = 0.0,
                  pitch_range: tuple[int, int] = PIANO_RANGE) -> dict[str, torch.Tensor]:
    """Onset, frame, offset and velocity rolls ``[T=n_frames, P]`` float32 for notes seen from ``start``.

    Frame ``k`` covers time ``start + k / frame_rate``. A note with start ``s`` and end ``e`` sets
    ``onset`` at frame ``round((s - start) * frame_rate)``, ``frame`` from there to
    ``round((e - start) * frame_rate)`` (at least one frame), ``offset`` at that end frame and
    ``velocity`` (``velocity / 127``) at the onset frame. Parts outside the window are cut; pitches
    outside ``pitch_range`` (inclusive) are ignored.
    """
    low, high = pitch_range
    if not (0 <= low <= high <= 127):
        raise ConfigError(f"pitch_range must satisfy 0 <= low <= high <= 127, got {pitch_range}")
    if frame_rate <= 0 or n_frames < 0:
        raise ConfigError(f"frame_rate must be positive and n_frames >= 0, got {frame_rate}, {n_frames}")
    shape = (n_frames, high - low + 1)
    onset, frame, offset, velocity = (np.zeros(shape, np.float32) for _ in range(4))
    for n in notes:
        if not low <= n.pitch <= high:
            continue
        p = n.pitch - low
        a = int(round((n.start - start) * frame_rate))
        b = max(int(round((n.end - start) * frame_rate)), a + 1)
        if b <= 0 or a >= n_frames:
            continue
        frame[max(a, 0):min(b, n_frames), p] = 1.0
        if 0 <= a < n_frames:
            onset[a, p] = 1.0
            velocity[a, p] = max(velocity[a, p], n.velocity / 127.0)
        if 0 <= b < n_frames:
            offset[b, p] = 1.0
    return {k: torch.from_numpy(v) for k, v in
            (("onset", onset), ("frame", frame), ("offset", offset), ("velocity", velocity))}


def _inspect(name: str, audio: Path, midis: tuple[Path, ...], include_drums: bool) -> tuple[Pair | None, list[str]]:
    import soundfile as sf

    problems = []
    try:
        i = sf.info(str(audio))
        declared = wav_declared_frames(str(audio))
        if i.frames == 0:
            problems.append(f"empty audio file {audio.name}")
        elif declared is not None and declared > i.frames:
            problems.append(f"truncated audio file {audio.name} (header declares {declared} samples, "
                            f"{i.frames} present)")
    except Exception as e:
        problems.append(f"unreadable audio file {audio.name} ({str(e).strip()[:120]})")
        i = None
    end = 0.0
    for m in midis:
        try:
            end = max(end, max(n.end for n in read_notes(m, name, include_drums)))
        except DatasetError as e:
            problems.append(str(e).split(": ", 1)[1])
    if i is not None and not problems and end > i.frames / i.samplerate + 1.0:
        problems.append(f"MIDI notes end at {end:.2f} s but the audio lasts {i.frames / i.samplerate:.2f} s")
    if problems:
        return None, problems
    return Pair(name, audio, midis, int(i.samplerate), int(i.frames), int(i.channels)), []


def _finish(found: list[tuple[str, Path, tuple[Path, ...]]], bad: list[str], where: str, skip_invalid: bool,
            include_drums: bool) -> list[Pair]:
    pairs = []
    for name, audio, midis in found:
        pair, problems = _inspect(name, audio, midis, include_drums)
        if pair is None:
            bad.append(f"{name}: " + "; ".join(problems))
        else:
            pairs.append(pair)
    if bad:
        msg = f"{len(bad)} invalid audio/MIDI pair(s) in {where}:\n  " + "\n  ".join(bad[:MAX_LISTED]) + (
            f"\n  ... and {len(bad) - MAX_LISTED} more" if len(bad) > MAX_LISTED else "")
        if not skip_invalid or not pairs:
            raise DatasetError(msg + "\nFix these files (or move them out of the split)"
                               + ("" if skip_invalid else SKIP_HINT) + ".")
        warnings.warn(msg + "\nThese pairs are skipped.", stacklevel=3)
    if not pairs:
        raise DatasetError(f"no audio/MIDI pairs found in {where}: expected x.wav next to x.mid or x.midi")
    return pairs


def list_pairs(root: str | os.PathLike, split: str | None = None, *, skip_invalid: bool = False,
               include_drums: bool = False) -> list[Pair]:
    """Audio/MIDI pairs under ``root`` (recursive), sorted by relative path.

    With ``split`` and a ``maestro-v*.csv`` in ``root``, the CSV's rows of that split are used
    (MAESTRO layout); otherwise ``<root>/<split>/`` is searched. Every audio file must have a MIDI file
    of the same name and vice versa; unreadable, empty or too-long MIDI files are reported.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"data set folder {str(root)!r} does not exist")
    found, bad = [], []
    csvs = sorted(root.glob("maestro-v*.csv"))
    if split and csvs:
        with open(csvs[-1], newline="") as f:
            rows = [r for r in csv.DictReader(f) if r.get("split") == split]
        if not rows:
            raise DatasetError(f"{csvs[-1].name} has no rows with split {split!r} (MAESTRO uses train/validation/test)")
        for r in rows:
            audio, midi = root / r["audio_filename"], root / r["midi_filename"]
            name = str(Path(r["audio_filename"]).with_suffix(""))
            missing = [p.name for p in (audio, midi) if not p.is_file()]
            if missing:
                bad.append(f"{name}: missing file(s) {', '.join(missing)}")
            else:
                found.append((name, audio, (midi,)))
        return _finish(found, bad, str(csvs[-1]), skip_invalid, include_drums)
    folder = root / split if split else root
    if not folder.is_dir():
        raise DatasetError(f"split folder {str(folder)!r} does not exist")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    audio = {p.with_suffix(""): p for p in files if p.suffix.lower() in AUDIO_EXTENSIONS}
    midi = {p.with_suffix(""): p for p in files if p.suffix.lower() in MIDI_EXTENSIONS}
    for key in sorted(set(audio) | set(midi)):
        name = str(key.relative_to(folder))
        if key not in midi:
            bad.append(f"{name}: audio file {audio[key].name} has no MIDI file ({key.name}.mid or .midi)")
        elif key not in audio:
            bad.append(f"{name}: MIDI file {midi[key].name} has no audio file ({key.name}.wav)")
        else:
            found.append((name, audio[key], (midi[key],)))
    return _finish(found, bad, repr(str(folder)), skip_invalid, include_drums)


def list_stem_pairs(root: str | os.PathLike, split: str | None = None, stems: tuple[str, ...] = ("bass",), *,
                    audio: str = "stem", skip_invalid: bool = False, include_drums: bool = False) -> list[Pair]:
    """Pairs from a stems data set with ``<track>/midi/<stem>.mid`` files (the synthetic layout).

    ``audio="stem"``: one pair per track and stem, ``<track>/<stem>.wav`` with its MIDI (name
    ``track/stem``); ``audio="mixture"``: one pair per track, ``mixture.wav`` with the notes of all
    ``stems`` merged.
    """
    from .stems import list_tracks

    if audio not in ("stem", "mixture"):
        raise ConfigError(f"audio must be 'stem' or 'mixture', got {audio!r}")
    tracks = list_tracks(root, split, tuple(stems), skip_invalid=skip_invalid)
    found, bad = [], []
    for t in tracks:
        midis = tuple(t.path / "midi" / f"{s}.mid" for s in stems)
        missing = [f"midi/{m.name}" for m in midis if not m.is_file()]
        if missing:
            bad.append(f"{t.name}: missing {', '.join(missing)}")
        elif audio == "mixture":
            if t.mixture_path is None:
                bad.append(f"{t.name}: missing mixture.wav")
            else:
                found.append((t.name, t.mixture_path, midis))
        else:
            found.extend((f"{t.name}/{s}", p, (m,)) for s, p, m in zip(stems, t.source_paths, midis))
    where = repr(str(Path(root) / split if split else Path(root)))
    return _finish(found, bad, where, skip_invalid, include_drums)


class PairDataset(torch.utils.data.Dataset):
    """Fixed segments of audio/MIDI pairs with frame targets.

    ``__getitem__(i)`` returns ``{"audio": [C, S], "onset"|"frame"|"offset"|"velocity": [T, P],
    "name": str, "start": float}``, with ``S = round(segment * sample_rate)`` and
    ``T = round(segment * frame_rate)``; segments start every ``stride`` seconds (default ``segment``).
    """

    def __init__(self, pairs: list[Pair], segment: float, sample_rate: int = 16000, frame_rate: float = 100.0,
                 channels: int = 1, stride: float | None = None, pitch_range: tuple[int, int] = PIANO_RANGE,
                 include_drums: bool = False):
        if not pairs:
            raise DatasetError("PairDataset got no pairs; check the data set path and split")
        if not segment > 0:
            raise ConfigError(f"segment must be positive seconds, got {segment}")
        stride = segment if stride is None else stride
        if not stride > 0:
            raise ConfigError(f"stride must be positive seconds, got {stride}")
        self.pairs, self.segment, self.sample_rate, self.frame_rate = list(pairs), segment, sample_rate, frame_rate
        self.channels, self.pitch_range, self.include_drums = channels, pitch_range, include_drums
        self.items: list[tuple[int, float]] = []
        for k, p in enumerate(self.pairs):
            n = 1 if p.duration <= segment else math.ceil((p.duration - segment) / stride - 1e-9) + 1
            self.items.extend((k, j * stride) for j in range(n))
        self._notes: dict[int, list[pretty_midi.Note]] = {}

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        k, start = self.items[i]
        pair = self.pairs[k]
        if k not in self._notes:
            self._notes[k] = pair.notes(self.include_drums)
        out = {"audio": pair.load(start, self.segment, sample_rate=self.sample_rate, channels=self.channels)}
        out.update(frame_targets(self._notes[k], frame_rate=self.frame_rate, start=start,
                                 n_frames=int(round(self.segment * self.frame_rate)), pitch_range=self.pitch_range))
        out.update(name=pair.name, start=start)
        return out
