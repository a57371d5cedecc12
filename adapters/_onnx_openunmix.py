"""Open-Unmix (:class:`~booster.adapters.openunmix.TrainableSeparator`) as an ONNX graph (``booster export``).

Shape glossary: B batch, C channels, F frequency bins, T frames, S samples, N sources; a trailing 2 holds
(real, imaginary).

The graph holds the target models: ``spec`` ``[B, C, F, T, 2]`` (the mix's STFT, as Open-Unmix's own
``torch.stft``: centred, reflect padding, periodic Hann, not normalised) -> magnitudes -> each target's
network -> ``mag`` ``[B, N, C, F, T]``, with B = 1 (the graph's batch is fixed, see ``batch``). A boosted graph also takes the chunk's audio ``mix`` ``[B, C, S]``
(what MuQ hears). The runner then gives each estimate the mixture's phase (Open-Unmix's ``wiener`` with
``niter=0, softmask=False``) and inverts the STFT to the chunk length. Separators with ``niter > 0`` (EM
Wiener filtering), ``softmask`` or ``residual`` cannot be exported (the runner implements the default
filter only): one-line error.
"""
from __future__ import annotations

import contextlib

import torch

from booster.errors import ConfigError


def onnx_form(model, chunk: int, *, boosted: bool = False) -> dict:
    kw = getattr(model, "init_kwargs", {})
    if kw.get("niter", 0) or kw.get("softmask") or kw.get("residual"):
        raise ConfigError("this Open-Unmix separator cannot be exported to ONNX: niter > 0, softmask or residual "
                          "filter complex spectrograms after the networks, which the runner does not implement; "
                          "export a model with niter=0, softmask=False, residual=False (the defaults)")
    n_fft, hop = int(model.stft.n_fft), int(model.stft.n_hop)
    if not model.stft.center or not torch.equal(model.stft.window.detach().cpu(), torch.hann_window(n_fft)):
        raise ConfigError("this Open-Unmix separator uses a non-default STFT (not centred or not a Hann window), "
                          "which the export does not describe")
    c, n, bins, frames = int(model.audio_channels), len(model.target_models), n_fft // 2 + 1, 1 + chunk // hop
    stft = dict(n_fft=n_fft, hop=hop, win_length=n_fft, window="hann", center=True, normalized=False)
    pre = [dict(op="stft", **{"in": "mix"}, out="spec", center_pad_mode="reflect", **stft,
                meaning="Open-Unmix's STFT of the mix")]
    post = [dict(op="phase", **{"in": ["mag", "spec"]}, out="zout",
                 meaning="each magnitude with the mixture's phase (Open-Unmix's wiener, niter=0)"),
            dict(op="istft", **{"in": "zout"}, out="stems", length=chunk, **stft, meaning="Open-Unmix's iSTFT")]
    spec = dict(name="spec", shape=[1, c, bins, frames, 2], meaning="the STFT of `pre` (real, imag)")
    inputs = ([dict(name="mix", shape=[1, c, chunk], meaning="the chunk's audio (for MuQ)")] if boosted else [])
    return {"inputs": inputs + [spec],
            "outputs": [dict(name="mag", shape=[1, n, c, bins, frames],
                             meaning="magnitude estimate of each source, in the order of `sources`")],
            "pre": pre, "post": post, "output": "stems", "patch": lambda: _patched(model),
            # Open-Unmix reshapes by ``x.data.shape``, which TorchScript tracing freezes to the example's batch:
            # a graph of batch 1 (the runner calls it per chunk); dynamo traces a free batch but takes 30-40 s
            # for the debug model's LSTM where TorchScript takes 2 s (and exports ONNX's own LSTM op)
            "batch": 1}


@contextlib.contextmanager
def _patched(model):
    """``model([mix,] spec) -> mag`` inside the block (an instance attribute, removed on exit)."""
    def forward(*inputs):
        spec = inputs[-1]
        x = torch.sqrt(spec[..., 0] ** 2 + spec[..., 1] ** 2)       # |STFT| [B, C, F, T] (ComplexNorm)
        return torch.stack([m(x) for m in model.target_models.values()], dim=1)

    object.__setattr__(model, "forward", forward)
    try:
        yield model
    finally:
        model.__dict__.pop("forward", None)
