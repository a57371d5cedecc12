"""Audio I/O and basic transforms.

File I/O uses soundfile (libsndfile); resampling uses torchaudio. Shape glossary: B batch, C channels,
S samples. Waveforms are float32 in [-1, 1] (integer PCM is scaled on load).
"""
from __future__ import annotations

import contextlib
import math
import os
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import AudioError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".aiff", ".aif", ".mp3", ".opus")
_STRICT = [os.environ.get("BOOSTER_STRICT_AUDIO", "") not in ("", "0")]


class TruncatedAudioWarning(UserWarning):
    """A file holds fewer sample frames than its header declares (an interrupted copy or download)."""


def set_strict(strict: bool) -> None:
    """Default for ``strict=None`` in :func:`info`, :func:`load` and :class:`FileReader`: when true, a
    truncated file raises :class:`AudioError` instead of a :class:`TruncatedAudioWarning`. The
    commands' ``--strict`` flag sets it; so does ``BOOSTER_STRICT_AUDIO=1``."""
    _STRICT[0] = bool(strict)


@contextlib.contextmanager
def strict_audio(strict: bool = True):
    """``with strict_audio(): ...``: :func:`set_strict` for the duration of the block."""
    old = _STRICT[0]
    _STRICT[0] = bool(strict)
    try:
        yield
    finally:
        _STRICT[0] = old


@dataclass(frozen=True)
class AudioInfo:
    path: str
    sample_rate: int
    channels: int
    frames: int

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def info(path: str | os.PathLike, strict: bool | None = None) -> AudioInfo:
    """Header information of an audio file, without reading the samples.

    A WAV file whose data chunk holds fewer frames than its header declares gives a
    :class:`TruncatedAudioWarning` (the frames present are used), or an :class:`AudioError` when
    ``strict`` (default: :func:`set_strict`)."""
    import soundfile as sf

    path = str(path)
    _check_file(path)
    try:
        i = sf.info(path)
    except Exception as e:  # soundfile raises RuntimeError / LibsndfileError
        raise AudioError(f"cannot read audio file {path!r}: {e}. Is it a supported audio format "
                         f"({', '.join(AUDIO_EXTENSIONS)})?") from None
    meta = AudioInfo(path, int(i.samplerate), int(i.channels), int(i.frames))
    declared = wav_declared_frames(path)
    if declared is not None and declared > meta.frames:
        msg = (f"audio file {path!r} is truncated: its header declares {declared} frames "
               f"({declared / meta.sample_rate:.2f} s) but only {meta.frames} "
               f"({meta.duration:.2f} s) are present")
        if _STRICT[0] if strict is None else strict:
            raise AudioError(msg + "; re-copy or re-export the file")
        warnings.warn(msg + "; using the frames present (--strict makes this an error)",
                      TruncatedAudioWarning, stacklevel=2)
    return meta


def wav_declared_frames(path: str) -> int | None:
    """Frames a RIFF/WAVE header declares for its data chunk (None: not a WAV file, or a streamed
    header with an unknown size)."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
                return None
            order = "<" if head[:4] == b"RIFF" else ">"
            block_align = None
            for _ in range(64):  # chunks before "data": fmt, LIST, fact, PEAK, ...
                chunk = f.read(8)
                if len(chunk) < 8:
                    return None
                cid, size = chunk[:4], struct.unpack(order + "I", chunk[4:])[0]
                if cid == b"fmt ":
                    fmt = f.read(size)
                    if len(fmt) < 14:
                        return None
                    block_align = struct.unpack(order + "H", fmt[12:14])[0]
                    if size % 2:
                        f.seek(1, 1)
                elif cid == b"data":
                    if not block_align or size in (0, 0xFFFFFFFF, 0x7FFFFFFF):
                        return None  # streamed writers leave the size open
                    return size // block_align
                else:
                    f.seek(size + (size % 2), 1)
    except (OSError, struct.error):
        return None
    return None


def _check_file(path: str) -> None:
    if not os.path.exists(path):
        raise AudioError(f"audio file {path!r} does not exist")
    if os.path.isdir(path):
        raise AudioError(f"{path!r} is a directory, expected an audio file")
    if os.path.getsize(path) == 0:
        raise AudioError(f"audio file {path!r} is empty (0 bytes)")


def load(path: str | os.PathLike, sample_rate: int | None = None, mono: bool = False,
         start: float = 0.0, duration: float | None = None,
         strict: bool | None = None) -> tuple[torch.Tensor, int]:
    """Read an audio file as float32 ``[C, S]``.

    ``sample_rate`` resamples (None keeps the file's rate); ``mono`` averages channels to ``[1, S]``;
    ``start``/``duration`` (seconds) read a segment without loading the whole file; ``strict``: see
    :func:`info`. Returns ``(wav, sample_rate)``. Raises :class:`AudioError` for unreadable, empty or
    non-finite audio.
    """
    import soundfile as sf

    path = str(path)
    meta = info(path, strict)
    first = int(round(start * meta.sample_rate))
    count = -1 if duration is None else int(round(duration * meta.sample_rate))
    try:
        data, sr = sf.read(path, start=first, frames=count, dtype="float32", always_2d=True)
    except Exception as e:
        raise AudioError(f"cannot decode audio file {path!r}: {e}") from None
    if data.shape[0] == 0:
        raise AudioError(f"audio file {path!r} contains no samples"
                         + (f" after {start:.3f} s" if first else ""))
    wav = torch.from_numpy(np.ascontiguousarray(data.T))
    check_finite(wav, f"audio file {path!r}")
    if mono:
        wav = wav.mean(0, keepdim=True)
    if sample_rate is not None and sample_rate != sr:
        wav = resample(wav, sr, sample_rate)
        sr = sample_rate
    return wav, int(sr)


def save(path: str | os.PathLike, wav: torch.Tensor | np.ndarray, sample_rate: int,
         subtype: str = "FLOAT") -> Path:
    """Write ``wav`` ``[C, S]`` (or ``[S]``) to ``path`` atomically (:func:`booster.fsutil.atomic_path`).

    ``subtype`` is a soundfile subtype: "FLOAT" (default, lossless for float32), "PCM_16", "PCM_24".
    Files are a pure function of their samples: libsndfile's float-WAV ``PEAK`` chunk carries the time
    of writing, which is zeroed.
    """
    import soundfile as sf

    if isinstance(wav, torch.Tensor):
        wav = wav.detach().cpu().float().numpy()
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim == 1:
        wav = wav[None]
    if wav.ndim != 2:
        raise AudioError(f"save expects [C, S] or [S] audio, got shape {tuple(wav.shape)}")
    if not np.isfinite(wav).all():
        raise AudioError(f"refusing to write non-finite samples to {str(path)!r}")
    from .fsutil import atomic_path

    path = Path(path)
    fmt = (path.suffix.lstrip(".") or "wav").upper()
    if fmt == "AIF":
        fmt = "AIFF"
    if not sf.check_format(fmt, subtype):
        raise AudioError(f"cannot write {str(path)!r} as {fmt} with sample format {subtype}; "
                         f"{fmt} supports {', '.join(sorted(sf.available_subtypes(fmt)))}")
    with atomic_path(path) as tmp:
        sf.write(str(tmp), wav.T, int(sample_rate), subtype=subtype, format=fmt)
        if fmt == "WAV":
            _zero_peak_timestamp(tmp)
    return path


def output_format(*, flac: bool = False, int24: bool = False, int16: bool = False) -> tuple[str, str]:
    """``(extension, soundfile subtype)`` for the output options of the task commands (demucs' spelling):
    float32 WAV by default (10.6 MB per stereo minute at 44.1 kHz), ``int24`` / ``int16`` PCM WAV,
    ``flac`` (24-bit unless ``int16``; ~2-3x smaller than float WAV)."""
    if int24 and int16:
        from .errors import ConfigError
        raise ConfigError("--int24 and --int16 exclude each other")
    if flac:
        return ".flac", "PCM_16" if int16 else "PCM_24"
    return ".wav", "PCM_24" if int24 else "PCM_16" if int16 else "FLOAT"


def _zero_peak_timestamp(path: Path) -> None:
    with open(path, "r+b") as f:
        head = f.read(512)
        at = head.find(b"PEAK", 12)
        if at >= 0:  # chunk id (4), size (4), version (4), timestamp (4)
            f.seek(at + 12)
            f.write(b"\0\0\0\0")


def check_finite(wav: torch.Tensor | np.ndarray, what: str = "audio") -> None:
    """Raise :class:`AudioError` if ``wav`` holds NaN or Inf.

    CPU tensors and arrays (files are read on the CPU) are checked in place, without a copy. A tensor on
    another device is checked there without waiting for it (no device→host copy or sync per step): a
    non-finite value fails asynchronously, at the device's next synchronisation, with ``what`` in the
    message."""
    if isinstance(wav, torch.Tensor):
        if wav.device.type != "cpu" or _is_fake(wav):
            torch._assert_async(torch.isfinite(wav).all(), f"{what} contains NaN/Inf samples")
            return
        wav = wav.detach()
        if wav.dtype not in (torch.float32, torch.float64):  # numpy has no bfloat16: check in torch
            if not bool(torch.isfinite(wav).all()):
                bad = int((~torch.isfinite(wav)).sum())
                raise AudioError(f"{what} contains {bad} NaN/Inf sample(s); clean or re-export the audio")
            return
        wav = wav.resolve_conj().resolve_neg()
    arr = wav.numpy() if isinstance(wav, torch.Tensor) else np.asarray(wav)  # a view: no copy
    if not np.isfinite(arr).all():  # numpy: no thread-pool start-up cost on small arrays
        bad = int((~np.isfinite(arr)).sum())
        raise AudioError(f"{what} contains {bad} NaN/Inf sample(s); clean or re-export the audio")


def _is_fake(t: torch.Tensor) -> bool:
    """A FakeTensor (``torch._subclasses.fake_tensor``, device checks without data) holds no values."""
    return type(t) is not torch.Tensor and type(t).__name__ == "FakeTensor"


def resample(wav: torch.Tensor, orig_sr: int, new_sr: int) -> torch.Tensor:
    """Resample along the last axis (any leading shape) with torchaudio's sinc interpolation."""
    if orig_sr <= 0 or new_sr <= 0:
        raise AudioError(f"sample rates must be positive, got {orig_sr} -> {new_sr}")
    if orig_sr == new_sr:
        return wav
    import torchaudio.functional as AF

    g = math.gcd(int(orig_sr), int(new_sr))
    return AF.resample(wav, int(orig_sr) // g, int(new_sr) // g)


def to_mono(wav: torch.Tensor) -> torch.Tensor:
    """``[C, S]`` → ``[S]`` and ``[B, C, S]`` → ``[B, S]`` by averaging channels; ``[S]`` unchanged."""
    if wav.dim() == 1:
        return wav
    if wav.dim() == 2:
        return wav.mean(0)
    if wav.dim() == 3:
        return wav.mean(1)
    raise AudioError(f"expected audio of shape [S], [C, S] or [B, C, S], got {tuple(wav.shape)}")


def convert_channels(wav: torch.Tensor, channels: int) -> torch.Tensor:
    """Convert ``[..., C, S]`` to ``channels`` channels: average to mono, repeat mono, or drop extras
    after downmixing (C > channels > 1 keeps the mean in every channel)."""
    c = wav.shape[-2]
    if c == channels:
        return wav
    if channels == 1:
        return wav.mean(-2, keepdim=True)
    if c == 1:
        return wav.expand(*wav.shape[:-2], channels, wav.shape[-1]).contiguous()
    mean = wav.mean(-2, keepdim=True)
    return mean.expand(*wav.shape[:-2], channels, wav.shape[-1]).contiguous()


def list_audio_files(inputs: list[str | os.PathLike]) -> list[Path]:
    """Expand files and folders (walked recursively, sorted) into a list of audio files."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in AUDIO_EXTENSIONS)
            if not found:
                raise AudioError(f"folder {str(p)!r} contains no audio files ({', '.join(AUDIO_EXTENSIONS)})")
            out.extend(found)
        elif p.exists():
            out.append(p)
        else:
            raise AudioError(f"input {str(p)!r} does not exist")
    return out


class FileReader:
    """Random access to an audio file at ``sample_rate`` Hz with ``channels`` channels.

    ``reader(first, count) -> [channels, count]`` reads only the native samples a request needs plus a
    resampler margin, starting on the resampler's grid, so the result equals the same span of the whole
    file resampled at once (up to float rounding) and a long file is never loaded whole. ``length`` is the
    number of samples at ``sample_rate`` (torchaudio's resampled length). Channels are averaged before
    resampling when the file has more channels than asked (as :func:`to_mono` then :func:`resample`).
    Past the end of the file the output is zero-padded. ``strict``: see :func:`info`.
    """

    def __init__(self, path: str | Path, sample_rate: int, channels: int, strict: bool | None = None):
        self.path = str(path)
        self.meta = info(self.path, strict)  # AudioError: missing / empty / unreadable (/ truncated)
        if self.meta.frames == 0:
            raise AudioError(f"audio file {self.path!r} contains no samples")
        self.sample_rate, self.channels = int(sample_rate), int(channels)
        self.length = resampled_length(self.meta.frames, self.meta.sample_rate, self.sample_rate)

    def __call__(self, first: int, count: int) -> torch.Tensor:
        out = resampled_span(self._read_native, self.meta.frames, self.meta.sample_rate, self.sample_rate,
                             first, count)
        return torch.zeros(self.channels, count) if out is None else convert_channels(out, self.channels)

    def _read_native(self, lo: int, hi: int) -> torch.Tensor:
        """Native samples ``lo .. hi`` ``[C', hi - lo]``, checked finite, downmixed first when the file has
        more channels than asked (fewer channels to resample)."""
        import soundfile as sf
        try:
            data, _ = sf.read(self.path, start=lo, stop=hi, dtype="float32", always_2d=True)
        except Exception as e:
            raise AudioError(f"cannot decode {self.path!r} at {lo / self.meta.sample_rate:.2f} s: {e}; "
                             "the file may be truncated or corrupt") from None
        seg = torch.from_numpy(np.ascontiguousarray(data.T))
        check_finite(seg, f"audio file {self.path!r} (between {lo / self.meta.sample_rate:.2f} s and "
                          f"{hi / self.meta.sample_rate:.2f} s)")
        return convert_channels(seg, self.channels) if seg.shape[0] > self.channels else seg


def resampled_length(length: int, rate: int, new_rate: int) -> int:
    """Samples at ``new_rate`` of ``length`` samples at ``rate`` (torchaudio's resampled length)."""
    g = math.gcd(int(rate), int(new_rate))
    return math.ceil(length * (int(new_rate) // g) / (int(rate) // g))


def resampled_span(read, length: int, rate: int, new_rate: int, first: int, count: int) -> torch.Tensor | None:
    """Samples ``first .. first + count`` at ``new_rate`` ``[C, count]`` of a signal of ``length`` samples at
    ``rate`` that ``read(lo, hi) -> [C, hi - lo]`` gives in pieces: reads only what the span needs plus a
    resampler margin, from a point on the resampler's grid, so the result equals the same span of the whole
    signal resampled at once (up to float rounding); zeros before the start and past the end. None when the
    span lies wholly past the end (nothing to read)."""
    g = math.gcd(int(rate), int(new_rate))
    up, down = int(new_rate) // g, int(rate) // g
    margin = 0 if up == down else 64 * down
    a = (first // up) * down - margin
    lo, hi = max(0, a), min(length, -(-(first + count) * down // up) + margin)
    if hi <= lo:
        return None
    seg = read(lo, hi)
    if lo > a:  # before the start: zeros, as the whole-signal resampler sees
        seg = torch.nn.functional.pad(seg, (lo - a, 0))
    if up != down:
        seg = resample(seg, rate, new_rate)[:, first - (a // down) * up:]
    seg = seg[:, :count]
    return torch.nn.functional.pad(seg, (0, count - seg.shape[-1])) if seg.shape[-1] < count else seg
