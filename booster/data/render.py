"""Render the stems of a :class:`~booster.data.songs.Song` to stereo audio.

Two renderers:

* ``"fluidsynth"``: the ``fluidsynth`` command-line program with a General MIDI soundfont (realistic
  timbres). All stems of a song are rendered in **one** call: the stems are laid one after another on
  the timeline of a single MIDI file, each on its own MIDI channel and separated by a silent gap longer
  than the reverb tail, and the output is cut back into stems at exact sample offsets. This saves the
  soundfont load (about 0.3 s) per stem.
* ``"numpy"``: a small additive/subtractive synthesiser in pure numpy (:mod:`booster.data.numpy_synth`)
  for machines without FluidSynth.

``resolve_renderer("auto")`` picks FluidSynth when both the program and a soundfont exist, else numpy,
and returns the reason. Shapes: stems are ``np.ndarray`` ``[C=2, S]`` float32.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pretty_midi

from ..errors import AudioError, ConfigError
from .songs import Song

RENDERERS = ("auto", "fluidsynth", "numpy")
SOUNDFONT_CANDIDATES = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/default.sf2",
    "/usr/share/sounds/sf2/TimGM6mb.sf2",
)
GAP_SECONDS = 3.0  # silence between stems in a FluidSynth batch (longer than the reverb tail)
FLUIDSYNTH_GAIN = 0.5


@dataclass(frozen=True)
class RendererChoice:
    name: str  # "fluidsynth" | "numpy"
    soundfont: str | None
    reason: str


def check_soundfont(path: str | os.PathLike, what: str = "--soundfont") -> str:
    """``path`` if it is a complete SoundFont 2 file (RIFF ``sfbk``, SF2 or SF3); else a one-line
    :class:`ConfigError`. FluidSynth itself skips a file it cannot load and silently renders with its
    own default soundfont, so the check must happen here."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what} {str(path)!r} does not exist" if not p.exists() else
                          f"{what} {str(path)!r} is not a file")
    with open(p, "rb") as f:
        head = f.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"sfbk":
        raise ConfigError(f"{what} {str(path)!r} is not a SoundFont (.sf2/.sf3) file; FluidSynth cannot load it")
    declared = int.from_bytes(head[4:8], "little") + 8
    if p.stat().st_size < declared:
        raise ConfigError(f"{what} {str(path)!r} is truncated ({p.stat().st_size} of {declared} bytes)")
    return str(p)


def find_soundfont(soundfont: str | os.PathLike | None = None) -> str | None:
    """The soundfont to use: ``soundfont``, else ``$BOOSTER_SOUNDFONT``, else a Debian/Ubuntu default.
    A ``soundfont`` argument that is missing or not a SoundFont raises :class:`ConfigError`; a bad
    ``$BOOSTER_SOUNDFONT`` or no default gives None (the caller says why)."""
    if soundfont is not None:
        return check_soundfont(soundfont)
    env = os.environ.get("BOOSTER_SOUNDFONT")
    if env:
        try:
            return check_soundfont(env, "$BOOSTER_SOUNDFONT")
        except ConfigError:
            return None
    for cand in SOUNDFONT_CANDIDATES:
        if Path(cand).is_file():
            return cand
    return None


def resolve_renderer(renderer: str = "auto", soundfont: str | os.PathLike | None = None) -> RendererChoice:
    """Decide which renderer runs; raises :class:`ConfigError` if ``"fluidsynth"`` is asked but absent."""
    if renderer not in RENDERERS:
        raise ConfigError(f"unknown renderer {renderer!r}; choose one of {', '.join(RENDERERS)}")
    if renderer == "numpy":
        if soundfont is not None:
            raise ConfigError("--soundfont is used by the fluidsynth renderer only; drop it or use "
                              "--renderer fluidsynth")
        return RendererChoice("numpy", None, "numpy renderer requested")
    program = shutil.which("fluidsynth")
    sf2 = find_soundfont(soundfont)  # ConfigError for a named soundfont that is missing or not a SoundFont
    missing = []
    if program is None:
        missing.append("the `fluidsynth` program is not on PATH (Debian: apt install fluidsynth)")
    if sf2 is None:
        where = repr(str(soundfont)) if soundfont is not None else (
            f"$BOOSTER_SOUNDFONT={os.environ['BOOSTER_SOUNDFONT']!r}" if os.environ.get("BOOSTER_SOUNDFONT")
            else ", ".join(SOUNDFONT_CANDIDATES))
        missing.append(f"no loadable General MIDI soundfont at {where} (Debian: apt install fluid-soundfont-gm)")
    if not missing:
        return RendererChoice("fluidsynth", sf2, f"FluidSynth with soundfont {sf2}")
    if renderer == "fluidsynth":
        raise ConfigError("renderer 'fluidsynth' is unavailable: " + "; ".join(missing)
                          + ". Install it or use renderer='numpy'.")
    return RendererChoice("numpy", None, "FluidSynth unavailable (" + "; ".join(missing)
                          + "), using the numpy synthesiser")


def render_song(song: Song, choice: RendererChoice, *, frames: int, sample_rate: int,
                seed: int = 0) -> dict[str, np.ndarray]:
    """Render every stem of ``song`` to ``[2, frames]`` float32 at ``sample_rate``."""
    if choice.name == "fluidsynth":
        return render_fluidsynth(song, soundfont=choice.soundfont, frames=frames, sample_rate=sample_rate)
    from .numpy_synth import render_numpy
    return render_numpy(song, frames=frames, sample_rate=sample_rate, seed=seed)


def render_fluidsynth(song: Song, *, soundfont: str, frames: int, sample_rate: int) -> dict[str, np.ndarray]:
    """All stems of ``song`` in one FluidSynth run, cut back into ``[2, frames]`` float32 stems."""
    import soundfile as sf

    stems = list(song.parts)
    tick = 60.0 / song.tempo / 960
    slot = np.ceil((song.seconds + GAP_SECONDS) / tick) * tick  # on the tick grid
    batch = pretty_midi.PrettyMIDI(resolution=960, initial_tempo=song.tempo)
    offsets = {}
    for k, stem in enumerate(stems):
        offsets[stem] = k * slot
        for inst in song.parts[stem]:
            moved = pretty_midi.Instrument(inst.program, is_drum=inst.is_drum, name=f"{stem}:{inst.name}")
            moved.notes = [pretty_midi.Note(n.velocity, n.pitch, n.start + k * slot, n.end + k * slot)
                           for n in inst.notes]
            batch.instruments.append(moved)
    if sum(not i.is_drum for i in batch.instruments) > 15:
        raise ConfigError("too many melodic parts for one FluidSynth batch (at most 15)")
    with tempfile.TemporaryDirectory(prefix="booster-synth-") as tmp:
        mid, wav = os.path.join(tmp, "song.mid"), os.path.join(tmp, "song.wav")
        batch.write(mid)
        cmd = ["fluidsynth", "-ni", "-q", "-g", str(FLUIDSYNTH_GAIN), "-r", str(sample_rate),
               "-o", "audio.file.format=float", "-o", "synth.chorus.active=0",
               "-F", wav, soundfont, mid]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if "not a SoundFont" in proc.stdout + proc.stderr:  # FluidSynth falls back to its default
            raise AudioError(f"FluidSynth could not load the soundfont {soundfont!r}: "
                             f"{(proc.stderr or proc.stdout).strip()[-300:]}")
        if proc.returncode != 0 or not os.path.exists(wav):
            raise AudioError(f"FluidSynth failed on song {song.name!r} (exit {proc.returncode}): "
                             f"{(proc.stderr or proc.stdout).strip()[-500:]}. Try renderer='numpy'.")
        audio, sr = sf.read(wav, dtype="float32", always_2d=True)
    if sr != sample_rate:
        raise AudioError(f"FluidSynth wrote {sr} Hz instead of {sample_rate} Hz for song {song.name!r}")
    audio = audio.T
    if audio.shape[0] == 1:
        audio = np.repeat(audio, 2, axis=0)
    out = {}
    for stem in stems:
        first = int(round(offsets[stem] * sample_rate))
        piece = audio[:2, first:first + frames]
        if piece.shape[1] < frames:
            piece = np.pad(piece, ((0, 0), (0, frames - piece.shape[1])))
        out[stem] = np.ascontiguousarray(piece, dtype=np.float32)
    return out
