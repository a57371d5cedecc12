"""Bring your own backbone: any frozen torch module that maps audio to hidden states, as a backbone.

Shape glossary: B batch, C channels, S samples, L layers, T frames, D feature dim.

:class:`TorchBackbone` wraps a module (a model trained with this toolkit, a teacher, a local torch.hub
model) in the backbone contract of :mod:`booster.backbone`, so that injection, the feature cache,
adapter files and checkpoints treat it exactly as they treat MuQ: its ``identity`` carries a weight
fingerprint (:mod:`booster.fingerprint`, hashed once per set of weights), ``extract`` takes any shape and
sample rate (mono mix and resampling by :func:`booster.extraction.as_batch_mono`, the path MuQ takes too).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .errors import BoosterError, ConfigError
from .features import Features, resolve_layers
from .fingerprint import Fingerprint
from .extraction import PRECISIONS, as_batch_mono, autocast_for, output_placement

PROBE_SECONDS = (1.0, 3.0)   # two probe lengths: the frame-count slope between them is the frame rate


class TorchBackbone(nn.Module):
    """A frozen torch ``module`` as a backbone.

    ``module(wav)`` (or ``forward(module, wav)`` when given) takes ``wav`` ``[B, S]`` mono at
    ``sample_rate`` and returns the hidden states ``0..num_layers``: a tuple/list of ``num_layers + 1``
    tensors ``[B, T, D]``, one tensor ``[B, num_layers + 1, T, D]``, or an object / dict holding such a
    tuple as ``hidden_states`` (the Hugging Face convention). ``D`` = ``hidden_size``; frame ``t`` is
    taken to be centred at ``t / frame_rate`` seconds. ``name`` names the backbone in identities and
    messages.

    At construction the module runs once on 1 s and once on 3 s of noise (``probe=True``): what it returns
    is validated and its frame rate measured (frames per second of audio between the two lengths); a
    declared ``frame_rate`` that disagrees is a :class:`ConfigError` that says what was measured.
    """

    def __init__(self, module: nn.Module, *, sample_rate: int, frame_rate: float, num_layers: int,
                 hidden_size: int, name: str, forward: Callable | None = None, probe: bool = True):
        super().__init__()
        if not isinstance(module, nn.Module):
            raise ConfigError(f"TorchBackbone wraps a torch.nn.Module, got {type(module).__name__}")
        for what, value, kind in (("sample_rate", sample_rate, int), ("num_layers", num_layers, int),
                                  ("hidden_size", hidden_size, int), ("frame_rate", frame_rate, (int, float))):
            low = 0 if what == "num_layers" else 1e-12   # num_layers=0: one hidden state (a single output)
            if isinstance(value, bool) or not isinstance(value, kind) or value < low:
                raise ConfigError(f"TorchBackbone {what} must be a {'non-negative' if low == 0 else 'positive'} "
                                  f"number, got {value!r}")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"TorchBackbone name must be a non-empty string, got {name!r}")
        if forward is not None and not callable(forward):
            raise ConfigError(f"TorchBackbone forward must be callable (module, wav) -> hidden states, got "
                              f"{type(forward).__name__}")
        self.module = module
        self.sample_rate = int(sample_rate)
        self.frame_rate = float(frame_rate)
        self.num_layers = int(num_layers)
        self.hidden_size = int(hidden_size)
        self.name = name
        self.forward_fn = forward
        self._fingerprint = Fingerprint()
        self.eval()
        if probe:
            self.check_frame_rate()

    # ---- the backbone contract --------------------------------------------------------------
    @property
    def architecture(self) -> dict:
        """JSON-safe description of what produces the features (class, rates, shape, forward function)."""
        cls = type(self.module)
        fwd = self.forward_fn
        return {"class": f"{cls.__module__}.{cls.__qualname__}", "sample_rate": self.sample_rate,
                "frame_rate": self.frame_rate, "num_layers": self.num_layers, "hidden_size": self.hidden_size,
                "forward": None if fwd is None else f"{getattr(fwd, '__module__', '?')}."
                                                    f"{getattr(fwd, '__qualname__', type(fwd).__name__)}"}

    @property
    def fingerprint(self) -> str:
        """sha256 (16 hex digits) of the module's weights and :attr:`architecture`, hashed once per set of
        weights (again only when a parameter or buffer changed; not on ``train()`` / ``eval()``)."""
        return self._fingerprint(self.module, tuple(sorted(self.architecture.items())))

    @property
    def identity(self) -> dict:
        return {"name": self.name, "architecture": self.architecture, "fingerprint": self.fingerprint}

    @property
    def device(self) -> torch.device:
        t = next(self.module.parameters(), None)
        if t is None:
            t = next(self.module.buffers(), None)
        return t.device if t is not None else torch.device("cpu")

    def extract(self, wav, sample_rate: int | None = None, layers=None, *, precision: str = "fp32",
                out_device=None, out_dtype=None, window: float | None = None,
                overlap: float | None = None) -> Features:
        """``wav`` ``[S]``, ``[C, S]`` or ``[B, C, S]`` at ``sample_rate`` (default: the backbone's) →
        :class:`Features` with ``hidden`` ``[B, L, T, D]`` for ``layers`` (default all, ``0..num_layers``),
        on ``out_device`` (default the module's device) as ``out_dtype`` (default float32).

        Channels are averaged and the audio resampled to :attr:`sample_rate` as for MuQ; the module runs
        in eval mode under ``inference_mode`` on the whole input in one pass (``window`` / ``overlap``,
        MuQ's options for long inputs, are accepted and not used). ``precision="bf16"``: bfloat16 autocast;
        ``"fp32"`` disables autocast, also inside an outer one."""
        if precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        layers = resolve_layers(self, layers)
        device = self.device
        out_device, out_dtype = output_placement(self, out_device or device, out_dtype)
        x = as_batch_mono(wav, self.sample_rate if sample_rate is None else sample_rate,
                          self.sample_rate).to(device)
        if self.training:
            self.eval()   # the booster's freezing policy: features come from the module in eval mode
        with torch.inference_mode(), autocast_for(precision, device):
            states = self.hidden_states(self._run(x), x.shape[0])
            hidden = torch.stack([states[i].float() for i in layers], dim=1)
        return Features(hidden.to(out_device, out_dtype), layers, self.frame_rate)

    # ---- the module's output -----------------------------------------------------------------
    def _run(self, x: torch.Tensor):
        return self.module(x) if self.forward_fn is None else self.forward_fn(self.module, x)

    def hidden_states(self, out, batch: int) -> list[torch.Tensor]:
        """The ``num_layers + 1`` tensors ``[B, T, D]`` in what the module returned, validated; anything
        else is one :class:`ConfigError` line naming what was returned and what is expected."""
        if not isinstance(out, (torch.Tensor, tuple, list)):
            held = out.get("hidden_states") if isinstance(out, dict) else getattr(out, "hidden_states", None)
            out = held if held is not None else out
        if isinstance(out, torch.Tensor) and out.dim() == 4:
            states = list(out.unbind(1))
        elif isinstance(out, (tuple, list)) and out and all(isinstance(t, torch.Tensor) and t.dim() == 3
                                                            for t in out):
            states = list(out)
        else:
            raise self._bad_output(out, "")
        want = (batch, states[0].shape[1], self.hidden_size)
        if len(states) != self.num_layers + 1:
            raise self._bad_output(out, f": {len(states)} hidden states, but num_layers={self.num_layers} "
                                        f"needs {self.num_layers + 1} (indices 0..{self.num_layers})")
        if any(tuple(t.shape) != want for t in states) or want[1] == 0:
            raise self._bad_output(out, f": expected every state [B={batch}, T, D={self.hidden_size}] with "
                                        "one T (T > 0)")
        return states

    def _bad_output(self, out, why: str) -> ConfigError:
        return ConfigError(f"backbone {self.name!r}: the module returned {_describe(out)}{why}; a backbone "
                           f"module returns hidden states 0..num_layers as a tuple/list of [B, T, D] tensors or "
                           f"one tensor [B, L, T, D] (here L={self.num_layers + 1}, D={self.hidden_size})")

    def check_frame_rate(self, seconds: tuple[float, float] = PROBE_SECONDS) -> float:
        """Run the module on two lengths of noise, validate its output, and compare the frames per second
        of audio between them with the declared :attr:`frame_rate` (one frame of slack over the span).
        Returns the measured rate; raises :class:`ConfigError` when it disagrees."""
        gen = torch.Generator().manual_seed(0)
        counts = []
        for sec in seconds:
            n = round(sec * self.sample_rate)
            x = (0.1 * torch.randn(1, n, generator=gen)).to(self.device)
            try:
                with torch.inference_mode():
                    out = self._run(x)
            except BoosterError:
                raise
            except Exception as e:
                raise ConfigError(f"backbone {self.name!r}: the module failed on a {sec:g} s probe ([1, {n}] at "
                                  f"{self.sample_rate} Hz): {type(e).__name__}: {e}") from None
            counts.append(self.hidden_states(out, 1)[0].shape[1])
        span = seconds[1] - seconds[0]
        measured = (counts[1] - counts[0]) / span
        if abs(measured - self.frame_rate) * span > 1.5:
            raise ConfigError(f"backbone {self.name!r} declares frame_rate={self.frame_rate:g}, but its module "
                              f"returns {counts[0]} frames for {seconds[0]:g} s and {counts[1]} for "
                              f"{seconds[1]:g} s of audio at {self.sample_rate} Hz ({measured:g} frames per "
                              f"second): pass frame_rate={measured:g} (or the sample_rate the module expects)")
        return measured

    def extra_repr(self) -> str:
        return (f"name={self.name!r}, sample_rate={self.sample_rate}, frame_rate={self.frame_rate:g}, "
                f"num_layers={self.num_layers}, hidden_size={self.hidden_size}")


def _describe(out) -> str:
    """A short description of a module output for error messages."""
    if isinstance(out, torch.Tensor):
        return f"a tensor of shape {list(out.shape)}"
    if isinstance(out, (tuple, list)):
        kinds = [list(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__ for t in out[:4]]
        more = f", ... ({len(out)} in all)" if len(out) > 4 else ""
        return f"a {type(out).__name__} of {len(out)}: {', '.join(map(str, kinds))}{more}" if out else \
            f"an empty {type(out).__name__}"
    return f"a {type(out).__name__}"
