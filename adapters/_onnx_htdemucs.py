"""HTDemucs as an ONNX graph (``booster export``): the STFT and iSTFT move to the runner, as in demucs.onnx.

Shape glossary: B batch, C channels, F frequency bins, T frames, S samples, N sources; a trailing 2 holds
(real, imaginary).

Graph inputs: ``mix`` ``[B, C, chunk]`` and ``spec`` ``[B, C, F, T, 2]``, the mix's spectrogram exactly as
``HTDemucs._spec`` makes it (the mix zero-padded to the training segment when the chunk is shorter, reflect
padding of ``3 hop / 2`` + up to a whole hop, a normalised centred STFT with a periodic Hann window, the
Nyquist bin dropped, frames ``2 .. 2 + ceil(L / hop)``). Graph outputs: ``wave`` ``[B, N, C, chunk]``, the
time branch, and ``zout`` ``[B, N, C, F, T, 2]``, the frequency branch's complex spectrogram (demucs'
complex-as-channels mode, ``cac``). The runner adds ``istft(zout)`` (``HTDemucs._ispec``'s framing) to
``wave``. Inside the graph everything else runs as in ``HTDemucs.forward`` (normalisation, both branches,
the cross-transformer with the adapters' hooks): the export patches the host's ``_spec`` / ``_magnitude``
/ ``_mask`` / ``_ispec`` on the instance for the duration of the export and calls its own forward.
HTDemucs with ``cac=False`` (magnitude + Wiener filtering on complex tensors) cannot be exported.
"""
from __future__ import annotations

import contextlib
import math
from fractions import Fraction

import torch

from booster.errors import ConfigError


def onnx_form(model, chunk: int, *, boosted: bool = False) -> dict:
    if not getattr(model, "cac", False):
        raise ConfigError("this HTDemucs cannot be exported to ONNX: with cac=False it filters complex "
                          "spectrograms (Wiener) inside its forward; only cac=True models export")
    hl, nfft = int(model.hop_length), int(model.nfft)
    training = int(Fraction(model.segment) * model.samplerate) if model.use_train_segment else chunk
    length = max(chunk, training)                        # what HTDemucs pads the mix to (eval)
    le = math.ceil(length / hl)
    pad = hl // 2 * 3
    c, n = int(model.audio_channels), len(model.sources)
    stft = dict(n_fft=nfft, hop=hl, win_length=nfft, window="hann", center=True, center_pad_mode="reflect",
                normalized=True)
    pre = [dict(op="stft", **{"in": "mix"}, out="spec", **stft,
                pads=[[0, length - chunk, "constant"], [pad, pad + le * hl - length, "reflect"]],
                bins=[0, nfft // 2], frames=[2, 2 + le],
                meaning="HTDemucs._spec of the mix (zero-padded to the training segment first)")]
    post = [dict(op="istft", **{"in": "zout"}, out="zwave", **stft, pad_bins=[0, 1], pad_frames=[2, 2],
                 length=hl * le + 2 * pad, crop=[pad, pad + length], fit=chunk,
                 meaning="HTDemucs._ispec of the frequency branch"),
            dict(op="add", **{"in": ["wave", "zwave"]}, out="stems", meaning="time branch + frequency branch")]
    bins = nfft // 2
    return {"inputs": [dict(name="mix", shape=["B", c, chunk], meaning="the chunk's audio"),
                       dict(name="spec", shape=["B", c, bins, le, 2], meaning="the STFT of `pre` (real, imag)")],
            "outputs": [dict(name="wave", shape=["B", n, c, chunk], meaning="time-branch estimate of each source"),
                        dict(name="zout", shape=["B", n, c, bins, le, 2],
                             meaning="frequency-branch spectrogram of each source (real, imag)")],
            "pre": pre, "post": post, "output": "stems", "patch": lambda: _patched(model, length)}


@contextlib.contextmanager
def _patched(model, length: int):
    """``model(mix, spec) -> (wave, zout)`` inside the block (instance attributes, removed on exit)."""
    state = {}

    def spec_fn(x):                       # the graph input stands for _spec(mix)
        return state["spec"]

    def magnitude(z):                     # [B, C, F, T, 2] -> [B, 2C, F, T], as _magnitude's cac layout
        b, c, f, t, _ = z.shape
        return z.permute(0, 1, 4, 2, 3).reshape(b, c * 2, f, t)

    def mask(z, m):                       # [B, N, 2C, F, T] -> [B, N, C, F, T, 2]
        b, s, _, f, t = m.shape
        state["zout"] = m.view(b, s, -1, 2, f, t).permute(0, 1, 2, 4, 5, 3)
        return state["zout"]

    def ispec(z, length=None, scale=0):   # the runner's istft; the graph adds nothing here
        return torch.zeros(z.shape[0], z.shape[1], z.shape[2], length, dtype=z.dtype, device=z.device)

    cls_forward = type(model).forward

    def forward(mix, spec):
        state["spec"] = spec
        wave = cls_forward(model, mix)
        return wave, state.pop("zout")

    names = {"_spec": spec_fn, "_magnitude": magnitude, "_mask": mask, "_ispec": ispec, "forward": forward}
    for k, v in names.items():
        object.__setattr__(model, k, v)
    try:
        yield model
    finally:
        for k in names:
            model.__dict__.pop(k, None)
