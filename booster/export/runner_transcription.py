"""The transcriber in the torch-free runner: chunked heads, note decoding, a standard MIDI file writer.

Shape glossary: K chunks in a batch, C channels (1), S samples, T frames, P pitches.

numpy, soundfile (through :func:`booster.export.runner.read_audio`) and onnxruntime only. For one file:

1. the audio (mono, at the manifest's ``sample_rate``) is cut into chunks and run through the graph, and
   the four heads ``[K, P, T_chunk]`` are cross-faded on the frame grid (:func:`booster.export.runner.chunked`
   with ``out_hop = frame_hop``; ``T = S // frame_hop + 1``). A plain graph takes any length: a file shorter
   than one chunk runs as one chunk of its own length rounded up to whole frames, as ``booster transcribe``;
2. onset / frame logits → sigmoid, velocity → clamp to [0, 1], all rounded to float16 (:func:`rolls`);
3. :func:`decode_notes`: the manifest's ``decoding`` rule, the same notes as
   ``booster/recipes/transcription/decoding.py: decode_notes``;
4. :func:`write_midi`: a standard MIDI file (format 1: a tempo track and one piano track).

Notes are tuples ``(start_s, end_s, pitch, velocity)`` (MIDI pitch, velocity 1..127).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from booster.errors import AudioError, CheckpointError
from booster.fsutil import atomic_path

from .manifest import stride
from .runner import chunked, read_audio

HEADS = ("onset", "offset", "frame", "velocity")
TICKS_PER_BEAT, TEMPO = 960, 500_000            # 120 bpm: one tick is 1/1920 s


def fitted(manifest: dict, length: int) -> dict:
    """The manifest to chunk ``length`` samples by: a plain (dynamic-length) graph's chunk shortened to the
    input rounded up to whole frames, as ``Transcriber._fit_segment``; else the manifest itself."""
    hop, chunk = int(manifest["frame_hop"]), int(manifest["chunk"])
    if not manifest.get("dynamic_length"):
        return manifest
    short = min(chunk, max(hop, -(-int(length) // hop) * hop))
    if short == chunk:
        return manifest
    return dict(manifest, chunk=short, hop=stride(short, float(manifest["overlap"]), hop))


def heads(manifest: dict, sessions: dict, x: np.ndarray, *, batch_size: int = 1,
          what: str = "the audio") -> dict[str, np.ndarray]:
    """``x`` ``[1, S]`` → ``{head: [T, P]}``: the cross-faded logits (velocity raw), ``T = S // frame_hop + 1``.
    Audio shorter than one frame (``what``: how the error names it) is an :class:`AudioError`."""
    hop, length = int(manifest["frame_hop"]), x.shape[-1]
    if length < hop:
        rate = int(manifest["sample_rate"])
        raise AudioError(f"{what} is {1000 * length / rate:.1f} ms long, shorter than one frame of the "
                         f"transcriber ({hop} samples at {rate} Hz): nothing to transcribe")
    graph = manifest["graphs"][0]
    sess = sessions[graph["file"]]
    names = [manifest["heads"][h]["output"] for h in HEADS]

    def run(chunks: np.ndarray) -> np.ndarray:                              # [K, 1, chunk] -> [K, 4, P, T]
        return np.stack(sess.run(names, {graph["inputs"][0]["name"]: chunks}), 1)
    out = chunked(x, fitted(manifest, length), run, out_hop=hop, out_frames=length // hop + 1,
                  batch_size=batch_size)                                    # [4, P, T]
    return {h: np.ascontiguousarray(out[i].T) for i, h in enumerate(HEADS)}


def rolls(logits: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Onset / frame probabilities and velocity in [0, 1], ``[T, P]`` float16 (what booster transcribe keeps)."""
    def sigmoid(v):
        return 1.0 / (1.0 + np.exp(-v.astype(np.float32)))
    return {"onset": sigmoid(logits["onset"]).astype(np.float16), "frame": sigmoid(logits["frame"]).astype(np.float16),
            "velocity": np.clip(logits["velocity"].astype(np.float32), 0, 1).astype(np.float16)}


def decode_notes(onset: np.ndarray, frame: np.ndarray, velocity: np.ndarray | None = None, *, frame_rate: float,
                 pitch_low: int, onset_threshold: float = 0.5, frame_threshold: float = 0.5) -> list[tuple]:
    """Notes ``(start_s, end_s, pitch, velocity)`` from probability rolls ``[T, P]`` (velocity in [0, 1];
    None: 64), sorted by (start, pitch, end): a note starts at the first frame of a run of
    ``onset >= onset_threshold``, lasts through that run and then while ``frame >= frame_threshold``, until
    the next onset start of its pitch; its velocity is the mean over the onset run, times 127."""
    onset, frame = np.asarray(onset, np.float32), np.asarray(frame, np.float32)
    vel = None if velocity is None else np.asarray(velocity, np.float32)
    if onset.ndim != 2 or onset.shape != frame.shape or (vel is not None and vel.shape != onset.shape):
        raise AudioError(f"decode_notes expects rolls of one shape [T, P], got {onset.shape}, {frame.shape}")
    on, fr = onset >= onset_threshold, frame >= frame_threshold
    starts = on.copy()
    starts[1:] &= ~on[:-1]
    n = on.shape[0]
    notes = []
    for t, p in zip(*np.nonzero(starts)):
        run = t + 1
        while run < n and on[run, p] and not starts[run, p]:
            run += 1
        end = run
        while end < n and fr[end, p] and not starts[end, p]:
            end += 1
        v = 64 if vel is None else int(np.clip(np.rint(float(np.clip(vel[t:run, p], 0, 1).mean()) * 127), 1, 127))
        notes.append((float(t / frame_rate), float(end / frame_rate), int(pitch_low + p), v))
    notes.sort(key=lambda note: (note[0], note[2], note[1]))
    return notes


def _vlq(n: int) -> bytes:
    """A MIDI variable-length quantity."""
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def _track(events: list[tuple[int, bytes]]) -> bytes:
    """An ``MTrk`` chunk of ``(absolute tick, event bytes)`` (in order), closed by End of Track."""
    body, last = bytearray(), 0
    for tick, data in events + [(events[-1][0] if events else 0, b"\xff\x2f\x00")]:
        body += _vlq(tick - last) + data
        last = tick
    return b"MTrk" + len(body).to_bytes(4, "big") + bytes(body)


def midi_bytes(notes: list[tuple], *, program: int = 0, name: str = "transcription") -> bytes:
    """A standard MIDI file (format 1, 960 ticks per beat at 120 bpm) holding ``notes`` on channel 0 with
    GM ``program`` (0: acoustic grand piano); note-offs sort before note-ons at the same tick."""
    scale = TICKS_PER_BEAT * 1e6 / TEMPO                                # ticks per second
    tempo = [(0, b"\xff\x51\x03" + TEMPO.to_bytes(3, "big")), (0, b"\xff\x58\x04\x04\x02\x18\x08")]
    label = name.encode("utf-8")[:127]
    head = [(0, b"\xff\x03" + _vlq(len(label)) + label), (0, bytes([0xC0, int(program) & 0x7F]))]
    timed = []
    for start, end, pitch, velocity in notes:
        if not 0 <= int(pitch) <= 127 or not 1 <= int(velocity) <= 127 or end < start:
            raise AudioError(f"not a MIDI note: pitch {pitch}, velocity {velocity}, {start}..{end} s")
        on, off = int(round(start * scale)), int(round(end * scale))
        timed.append((on, 1, int(pitch), bytes([0x90, int(pitch), int(velocity)])))
        timed.append((max(off, on), 0, int(pitch), bytes([0x80, int(pitch), 0])))
    timed.sort(key=lambda e: e[:3])
    header = b"MThd" + (6).to_bytes(4, "big") + (1).to_bytes(2, "big") + (2).to_bytes(2, "big") \
        + TICKS_PER_BEAT.to_bytes(2, "big")
    return header + _track(tempo) + _track(head + [(tick, data) for tick, _, _, data in timed])


def write_midi(notes: list[tuple], path: str | os.PathLike, **kwargs) -> Path:
    """Write ``notes`` as a MIDI file (atomically: a failed write leaves no partial file)."""
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(midi_bytes(notes, **kwargs))
    return Path(path)


def transcribe(manifest: dict, sessions: dict, x: np.ndarray, *, batch_size: int = 1,
               onset_threshold: float | None = None, frame_threshold: float | None = None,
               what: str = "the audio") -> list[tuple]:
    """The notes of ``x`` ``[1, S]`` at the manifest's rate (thresholds: the manifest's unless given)."""
    if manifest.get("task") != "transcription":
        raise CheckpointError(f"this is a {manifest.get('task')!r} model, not a transcriber")
    dec = manifest["decoding"]
    r = rolls(heads(manifest, sessions, x, batch_size=batch_size, what=what))
    return decode_notes(r["onset"], r["frame"], r["velocity"], frame_rate=float(manifest["frame_rate"]),
                        pitch_low=int(manifest["pitch_range"][0]),
                        onset_threshold=dec["onset_threshold"] if onset_threshold is None else onset_threshold,
                        frame_threshold=dec["frame_threshold"] if frame_threshold is None else frame_threshold)


def process_file(manifest: dict, sessions: dict, path: str | os.PathLike, out_dir: str | os.PathLike, *,
                 batch_size: int = 1, name: str | None = None, **options) -> dict[str, Path]:
    """Transcribe one audio file at the manifest's rate to ``out_dir/<name>.mid`` (default: the file's stem)."""
    notes = transcribe(manifest, sessions, read_audio(path, manifest), batch_size=batch_size,
                       what=repr(str(path)), **options)
    return {"midi": write_midi(notes, Path(out_dir) / f"{name or Path(path).stem}.mid")}
