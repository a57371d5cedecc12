"""Transcribing audio with a trained transcriber, on the kit's chunked inference over frames.

Shape glossary: C channels (1: the transcriber hears mono), S samples, T frames, P pitches, K chunks.

:class:`Transcriber` is a :class:`booster.training.ChunkedInference` whose output is the stack of the
four heads, ``[4, P, T]`` (``HEADS`` order; time last, one frame per ``hop_length`` samples, cross-faded
between overlapping chunks). A boosted transcriber's backbone features come from each chunk's own audio at
the transcriber's rate (16 kHz: the band limit training had), as in training (the kit's context policy,
:mod:`booster.training.inference`); chunks default to the training segment (``meta["segment"]``) or to what
``booster test`` used (``meta["eval_segment"]``). Files are read chunk by chunk at the model's rate; the
rolls kept for decoding are float16
(about 60 MB per hour of audio for 88 keys), so memory stays bounded on long files.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pretty_midi
import torch

from booster.audio import FileReader
from booster.errors import AudioError
from booster.training import boosting
from booster.training.checkpoint import load_model, save_model
from booster.training.hosts import chunk_seconds
from booster.training.inference import ChunkedInference, inference_segment

from .decoding import decode_notes, plot_piano_roll, write_midi, write_notes_csv

TASK = "transcription"
HEADS = ("onset", "offset", "frame", "velocity")


def stack_heads(model: torch.nn.Module, chunks: torch.Tensor) -> torch.Tensor:
    """``model(chunks [K, C, S])`` as one tensor ``[K, 4, P, T]``."""
    out = model(chunks)
    return torch.stack([out[k] for k in HEADS], 1).transpose(-1, -2)


class Transcriber(ChunkedInference):
    """Chunked full-file inference + decoding for a (plain or boosted) transcriber and its description.

    ``segment``: chunk length in seconds (default: the host plug-in's ``chunk_seconds``); ``overlap``:
    fraction of a chunk shared with the next; ``onset_threshold`` / ``frame_threshold``: decoding."""

    def __init__(self, model: torch.nn.Module, meta: dict, *, segment: float | None = None, overlap: float = 0.25,
                 batch_size: int = 4, onset_threshold: float = 0.5, frame_threshold: float = 0.5, cache=None,
                 **options):
        self.meta = meta
        host = boosting.host_of(model)
        self.pitch_range = tuple(host.pitch_range)
        self.frame_rate = host.frame_rate
        segment = segment or inference_segment(model, meta, chunk_seconds(meta["host"]["name"], host, 20.0))
        super().__init__(model, sample_rate=host.sample_rate, channels=1, segment=segment, overlap=overlap,
                         hop=host.hop_length, batch_size=batch_size, out_frames=host.num_frames,
                         forward=stack_heads, cache=cache, **options)
        self.onset_threshold, self.frame_threshold = float(onset_threshold), float(frame_threshold)
        self.max_segment = self.segment

    def _fit_segment(self, length: int) -> None:
        """Chunks no longer than the input (rounded up to the hop): a short file is not padded to a whole
        chunk (the recurrent layers take any length)."""
        self.segment = min(self.max_segment, max(self.hop, -(-int(length) // self.hop) * self.hop))

    # ---- tensors ---------------------------------------------------------------------------------
    def predict(self, audio: torch.Tensor, *, features=None, cached: bool = False,
                progress: bool = False) -> dict[str, torch.Tensor]:
        """``audio`` ``[1, S]`` at ``sample_rate`` → ``{head: [T, P]}`` (logits; velocity raw),
        ``T = S // hop + 1``, on ``audio``'s device."""
        self._fit_segment(audio.shape[-1])
        out = self(audio, features=features, cached=cached, progress=progress)      # [4, P, T]
        return {k: out[i].transpose(0, 1) for i, k in enumerate(HEADS)}

    def decode(self, outputs: dict[str, torch.Tensor | np.ndarray]) -> list[pretty_midi.Note]:
        """Notes from :meth:`predict`'s logits (or float16 rolls of probabilities from :meth:`file_rolls`)."""
        if isinstance(outputs["onset"], torch.Tensor):
            rolls = {k: torch.sigmoid(outputs[k].float()) for k in ("onset", "frame")}
            rolls["velocity"] = outputs["velocity"].float().clamp(0, 1)
        else:
            rolls = outputs
        return decode_notes(rolls["onset"], rolls["frame"], rolls["velocity"], frame_rate=self.frame_rate,
                            pitch_low=self.pitch_range[0], onset_threshold=self.onset_threshold,
                            frame_threshold=self.frame_threshold)

    def transcribe_tensor(self, audio: torch.Tensor, **kwargs) -> list[pretty_midi.Note]:
        return self.decode(self.predict(audio, **kwargs))

    # ---- files -----------------------------------------------------------------------------------
    def file_rolls(self, path: str | Path, *, progress: bool = False) -> tuple[dict[str, np.ndarray], float]:
        """Onset / frame probabilities and velocity ``[T, P]`` (float16) of an audio file of any rate and
        channel count, read and processed chunk by chunk; and its duration in seconds."""
        reader = FileReader(path, self.sample_rate, 1)
        if reader.length < self.hop:          # not one frame: an empty MIDI would look like silence
            raise AudioError(f"{str(path)!r} is {1000 * reader.length / self.sample_rate:.1f} ms long, shorter "
                             f"than one frame of the transcriber ({self.hop} samples at {self.sample_rate} Hz = "
                             f"{1000 * self.hop / self.sample_rate:.0f} ms): nothing to transcribe")
        self._fit_segment(reader.length)
        features = self.track_features(path)
        blocks = []

        def emit(block: torch.Tensor) -> None:                  # [4, P, k]
            b = block.float()
            blocks.append(torch.stack([torch.sigmoid(b[0]), torch.sigmoid(b[2]), b[3].clamp(0, 1)])
                          .transpose(1, 2).cpu().numpy().astype(np.float16))          # [3, k, P]
        self.stream(reader, reader.length, emit, features=features, progress=progress, desc=Path(path).name)
        rolls = np.concatenate(blocks, 1)
        return {"onset": rolls[0], "frame": rolls[1], "velocity": rolls[2]}, reader.length / self.sample_rate

    def transcribe_file(self, path: str | Path, out_dir: str | Path, *, name: str | None = None,
                        save_notes: bool = False, plot: bool = False, progress: bool = False) -> dict[str, Path]:
        """Write ``out_dir/<name>.mid`` (and ``<name>.csv`` / ``<name>.png``); returns ``{kind: path}``
        and the notes under ``"notes"``."""
        rolls, duration = self.file_rolls(path, progress=progress)
        notes = self.decode(rolls)
        stem = name or Path(path).stem
        out = Path(out_dir)
        paths = {"midi": write_midi(notes, out / f"{stem}.mid")}
        if save_notes:
            paths["notes_csv"] = write_notes_csv(notes, out / f"{stem}.csv")
        if plot:
            paths["plot"] = plot_piano_roll(notes, out / f"{stem}.png", title=f"{stem}: {len(notes)} notes",
                                            duration=duration)
        paths["notes"] = notes
        return paths

    # ---- persistence -----------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write host + adapter weights and the description to one ``.safetensors`` file."""
        return save_model(path, self.model, self.meta)

    @classmethod
    def load(cls, src: str | Path, *, device="cpu", **kwargs) -> "Transcriber":
        """From a recipe ``.ckpt`` or a ``.safetensors`` transcriber file."""
        model, meta = load_model(src, task=TASK, device=device)
        return cls(model, meta, **kwargs)
