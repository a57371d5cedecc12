"""Known-answer time alignment: a feature impulse at time t must reach the host frame centred nearest t.

Shape glossary: B batch, C channels, F frequency bins, T frames, S samples, L layers, D feature dim.

:func:`impulse_frames` boosts nothing itself: it takes a boosted host, opens every adapter (gate 1, projection
bias 0, so a zero feature frame adds exactly nothing), gives precomputed :class:`~booster.Features` that are
zero except one frame, item ``b``'s impulse ``times[b]`` seconds after its host input's first sample (one
host call, per-item ``input_start``), and returns, per site, the host frame where the adapter's change is
largest. The expected frame comes from the host's own geometry (:func:`nearest`, with centres the tests derive
from STFT hops / centring, conv strides and paddings, decimation), never from the plug-in's ``span_fn``.
"""
from __future__ import annotations

import math

import torch

from booster import Features
from booster.fusion import parse_layout


def open_adapters(boosted) -> None:
    """Every site adds ``W f`` (gate 1, bias 0): the change at a host frame is proportional to the aligned
    feature there, so its largest change marks where the impulse lands."""
    with torch.no_grad():
        for a in boosted.adapters:
            a.fusion.gate.fill_(1.0)
            a.fusion.proj.bias.zero_()


def impulse_features(boosted, times: list[float], seed: int = 0) -> tuple[Features, torch.Tensor]:
    """``(features [B, L, n, D], input_start [B])``: zero except feature frame ``k`` (a random vector);
    item ``b``'s host input starts ``times[b]`` seconds before it, so the impulse lies at ``times[b]`` on
    that item's input time line. At least two zero frames on each side (edge frames are clamped)."""
    fr, d = float(boosted.backbone.frame_rate), int(boosted.backbone.hidden_size)
    k = max(2, math.ceil(max(times) * fr) + 2)
    n = k + 3
    g = torch.Generator().manual_seed(seed)
    hidden = torch.zeros(len(times), len(boosted.layers), n, d)
    hidden[:, :, k] = torch.randn(len(boosted.layers), d, generator=g)
    starts = torch.tensor([k / fr - t for t in times], dtype=torch.float64)
    return Features(hidden, boosted.layers, fr, 0.0), starts


def site_changes(boosted, args: tuple, times: list[float]) -> list[torch.Tensor]:
    """Per site, ``[B, T]``: the magnitude of the adapter's change (summed over C and F) in one call
    ``boosted(*args)`` whose batch has one item per entry of ``times``."""
    seen: list[list[torch.Tensor]] = [[] for _ in boosted.adapters]
    handles = []
    for i, (adapter, site) in enumerate(zip(boosted.adapters, boosted.sites)):
        layout = parse_layout(site.layout)

        def hook(module, inputs, output, i=i, layout=layout):
            delta = (output - inputs[0]).detach().abs()
            order = [layout.index("B"), layout.index("T")] + [k for k, a in enumerate(layout) if a not in "BT"]
            seen[i].append(delta.permute(order).flatten(2).sum(-1))
        handles.append(adapter.register_forward_hook(hook))
    feats, starts = impulse_features(boosted, times)
    try:
        with torch.no_grad(), boosted.use_features(feats, input_start=starts):
            boosted(*args)
    finally:
        for h in handles:
            h.remove()
    assert all(len(s) == 1 for s in seen), f"each site should run once per call, got {[len(s) for s in seen]}"
    return [s[0] for s in seen]


def nearest(centres: torch.Tensor, t: float) -> int:
    """Index of the frame whose centre (seconds) is nearest ``t``."""
    return int((centres.double() - t).abs().argmin())


def probe_times(centres: torch.Tensor) -> list[float]:
    """Times a quarter of a frame before and after the centres of frames at the start, middle and end:
    an alignment error of more than a quarter frame in either direction moves one of them to a neighbour."""
    t = centres.numel()
    step = float(centres[1] - centres[0])
    picks = sorted({0, 1, t // 3, t // 2, t - 2, t - 1})
    return [float(centres[j]) + s * step for j in picks for s in (-0.25, 0.25)]


def check_site(boosted, make_args, site: int, centres_fn, length: int) -> list[str]:
    """Known answer at one site for an input of ``length`` samples: returns failure lines (empty: aligned).

    ``make_args(length, batch)`` → the host call's arguments; ``centres_fn(length, T)`` → ``[T]`` frame
    centres in seconds from the host's geometry (it also checks that the geometry predicts T)."""
    frames = site_changes(boosted, make_args(length, 1), [0.5])[site].shape[1]
    centres = centres_fn(length, frames)
    assert centres.shape == (frames,), f"geometry predicts {tuple(centres.shape)} frames, the site has {frames}"
    times = probe_times(centres)
    change = site_changes(boosted, make_args(length, len(times)), times)[site]
    bad = []
    for b, t in enumerate(times):
        got, want = int(change[b].argmax()), nearest(centres, t)
        if got != want:
            bad.append(f"{boosted.sites[site].describe()}, S={length}: impulse at {1e3 * t:.3f} ms reached frame "
                       f"{got} (centre {1e3 * float(centres[got]):.3f} ms), nearest is frame {want} "
                       f"(centre {1e3 * float(centres[want]):.3f} ms)")
    return bad
