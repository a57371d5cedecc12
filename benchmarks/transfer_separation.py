"""Known-answer transfer for separation (issue 20 item 1): ``python benchmarks/transfer.py --task separation``.

Shape glossary: B batch, N sources, C channels, F frequency bins, S samples, L layers, T frames, D feature dim.

Data: synthetic songs of the project's generator (:func:`booster.data.songs.compose_song`, rendered by
:func:`booster.data.numpy_synth.render_numpy`, stem levels as :mod:`booster.data.synth` sets them), one
``--seconds`` clip per song, mono at 16 kHz, four sources (drums, bass, other, vocals). ``--full`` / ``--small``
/ ``--test``: numbers of clips (songs) in the teacher's training set, the host's (its first clips) and the
held-out set. Host and teacher: Open-Unmix at debug size (``booster.adapters.openunmix``, its plug-in ``loss``:
magnitude MSE per target, ``--hidden`` units). Open-Unmix rather than HTDemucs: at debug size it trains about
4x faster per step on CPU (0.22 vs 0.95 s for 8 x 2 s at 16 kHz, one thread), which is what fits 3 seeds x 3
arms into the 30-minute budget.

The teacher's hidden states (:class:`TeacherStates`): per frame of its STFT (125 frames/s), its last
hidden layer (fc2 + batch norm) before (state 0) and after (state 1) the ReLU, the four target models
concatenated: ``[B, T, 4 * hidden]``. Boosted: the host plug-in's ``boost`` at the LSTM *output* of every
target model (:func:`sites`; fc2 reads it beside the skip of the LSTM input), not the plug-in's default
LSTM input, whose features must pass through the LSTM (measured at lr 3e-3, 4 of 32 clips, 400 steps, 2
seeds: gains +0.18 / +0.38 dB there, +0.41 / +0.48 dB at the output).
Run this file directly to choose: ``python benchmarks/transfer_separation.py --site input [options]``.
Metric: the validation SDR of the separation recipe (:func:`recipes.separation.evaluation.global_sdr`, the
global "utterance" SDR per clip and source), mean over held-out clips and the four sources, in dB.
"""
from __future__ import annotations

import copy
import time

import numpy as np
import torch
from torch import nn

from transfer import delay, param_groups, summary

SR = 16000
SOURCES = ("drums", "bass", "other", "vocals")
SITE = "output"   # see sites(): measured better than the plug-in's default ("input"); benchmarks/README.md
DEFAULTS = dict(seeds=3, full=64, small=6, test=16, seconds=1.0, steps=400, teacher_steps=1200, batch=8,
                lr=1e-2, hidden=16)


# ---- data -------------------------------------------------------------------------------------
def make_clips(n: int, seconds: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` songs of ``seconds`` s: mixtures ``[n, C=1, S]`` and sources ``[n, N=4, C=1, S]`` at 16 kHz.

    Each stem of song ``i`` is composed and rendered from ``(seed, i)`` and set to the generator's level
    (:data:`booster.data.synth.LEVELS_DB` ± 3 dB RMS); the mixture is their sum, peak-normalised."""
    from booster.data.numpy_synth import render_numpy
    from booster.data.songs import compose_song
    from booster.data.synth import LEVELS_DB, PEAK
    frames = int(round(seconds * SR))
    stems = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        song = compose_song(rng, seconds=seconds, name=f"clip{i}")
        audio = render_numpy(song, frames=frames, sample_rate=SR, seed=seed * 100003 + i)
        x = []
        for s in SOURCES:
            mono = audio[s].astype(np.float64).mean(0)
            rms = float(np.sqrt(np.mean(mono ** 2)))
            gain = 10 ** ((LEVELS_DB[s] + rng.uniform(-3, 3)) / 20) / rms if rms > 0 else 1.0
            x.append(mono * gain)
        x = np.stack(x)[:, None]                                   # [N, 1, S]
        x *= PEAK / max(float(np.abs(x.sum(0)).max()), 1e-9)
        stems.append(torch.from_numpy(x.astype(np.float32)))
    sources = torch.stack(stems)
    return sources.sum(1), sources


# ---- models -----------------------------------------------------------------------------------
def build_host(seed: int, hidden: int) -> nn.Module:
    from booster.adapters import openunmix
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return openunmix.build(size="debug", sources=list(SOURCES), sample_rate=SR, channels=1,
                               overrides={"hidden_size": hidden})


class TeacherStates(nn.Module):
    """A trained Open-Unmix separator's last hidden layer as hidden states: ``wav`` ``[B, S]`` → its fc2 +
    batch norm output before (state 0) and after (state 1) the ReLU, each ``[B, T, N * hidden]`` (the
    targets concatenated), frame ``t`` at sample ``t * n_hop`` (the centred STFT); ``delay`` frames > 0
    shift them later in time."""

    def __init__(self, separator: nn.Module, delay: int = 0):
        super().__init__()
        self.separator, self.delay = separator, int(delay)
        self._seen: list[torch.Tensor] = []
        for target in separator.target_models.values():
            target.bn2.register_forward_hook(lambda module, args, out: self._seen.append(out))

    def forward(self, wav: torch.Tensor):
        sep = self.separator
        self._seen = []
        spec = sep.complexnorm(sep.stft(wav[:, None]))             # [B, C=1, F, T]
        for target in sep.target_models.values():
            target(spec)
        t, b = spec.shape[-1], spec.shape[0]
        pre = torch.cat([x.reshape(t, b, -1) for x in self._seen], -1).transpose(0, 1)   # [B, T, N * hidden]
        self._seen = []
        return delay((pre, torch.relu(pre)), self.delay)


def as_backbone(teacher: nn.Module, *, shift: float = 0.0, name: str = "teacher"):
    """The frozen ``teacher`` as a backbone (:class:`booster.TorchBackbone`), its states delayed by ``shift`` s."""
    import booster
    hop = int(teacher.stft.n_hop)
    module = TeacherStates(copy.deepcopy(teacher).requires_grad_(False).eval(), delay=round(shift * SR / hop))
    hidden = next(iter(teacher.target_models.values())).hidden_size
    return booster.TorchBackbone(module, sample_rate=SR, frame_rate=SR / hop, num_layers=1,
                                 hidden_size=hidden * len(SOURCES),
                                 name=name if not shift else f"{name}-shift{shift:g}s")


def sites(host: nn.Module, where: str = "output") -> list | None:
    """``"input"``: the plug-in's default sites (each target's LSTM input; None). ``"output"``: each target's
    LSTM output (element 0 of its ``(output, (h, c))``, ``[T, B, C]``), which fc2 reads beside the skip."""
    if where == "input":
        return None
    from booster.injection import Site
    return [Site(path=f"target_models.{n}.lstm", where="output", element=0, layout="T B C",
                 channels=m.hidden_size) for n, m in host.target_models.items()]


# ---- training and scoring ---------------------------------------------------------------------
def train(model: nn.Module, mix: torch.Tensor, sources: torch.Tensor, *, steps: int, batch: int, lr: float,
          seed: int, adapter_lr: float | None = None) -> nn.Module:
    """AdamW on the trainable parameters with the plug-in's loss (mean over sources), ``steps``
    minibatches drawn by ``seed`` (the same for every arm); the adapters at ``adapter_lr`` (default ``lr``)."""
    from booster.adapters.openunmix import loss
    opt = torch.optim.AdamW(param_groups(model, lr, adapter_lr))
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, mix.shape[0], (batch,), generator=gen)   # with replacement
        opt.zero_grad()
        loss(model, mix[idx], sources[idx]).mean().backward()
        opt.step()
    return model.eval()


@torch.no_grad()
def mean_sdr(model: nn.Module, mix: torch.Tensor, sources: torch.Tensor, batch: int = 8) -> float:
    """The recipe's validation SDR: :func:`global_sdr` per clip ``[N]``, mean over clips, then over sources."""
    from booster.recipes.separation.evaluation import global_sdr
    model.eval()
    per = []
    for i in range(0, mix.shape[0], batch):
        est = model(mix[i:i + batch])                               # [B, N, C, S]
        per += [global_sdr(s, e) for s, e in zip(sources[i:i + batch], est)]
    return float(torch.stack(per).mean(0).mean())


def run_arm(backbone, seed: int, small: tuple, test: tuple, *, steps: int, batch: int, lr: float, hidden: int,
            adapter_lr: float | None = None, freeze_gates: bool = False, site: str = SITE) -> float:
    """The host of ``seed`` trained on ``small`` (mix, sources), plain (``backbone=None``) or boosted by
    ``backbone`` at ``site`` (:func:`sites`); its mean SDR on ``test``. ``freeze_gates``: the adapters'
    gates stay at zero."""
    from booster.adapters import openunmix
    host = build_host(seed, hidden)
    torch.manual_seed(seed)          # the adapters' initial weights: from the seed, not from the run order
    model = host if backbone is None else openunmix.boost(host, backbone, sites=sites(host, site))
    if freeze_gates:
        for adapter in model.adapters:
            adapter.fusion.gate.requires_grad_(False)
    train(model, *small, steps=steps, batch=batch, lr=lr, seed=seed, adapter_lr=adapter_lr)
    return mean_sdr(model, *test)


def run(args) -> dict:
    t0 = time.perf_counter()
    mix, sources = make_clips(args.full, args.seconds, seed=1)
    test = make_clips(args.test, args.seconds, seed=2)
    print(f"data: {args.full} + {args.test} clips of {args.seconds:g} s [{time.perf_counter() - t0:.0f} s]",
          flush=True)
    teacher = train(build_host(1000, args.hidden), mix, sources, steps=args.teacher_steps, batch=args.batch,
                    lr=args.lr, seed=1000)
    score = {"teacher": mean_sdr(teacher, *test)}
    print(f"teacher ({args.full} clips, {args.teacher_steps} steps): mean SDR {score['teacher']:.2f} dB "
          f"[{time.perf_counter() - t0:.0f} s]", flush=True)
    arms = {"plain": None, "boosted": as_backbone(teacher), "shifted": as_backbone(teacher, shift=args.shift)}
    small = (mix[:args.small], sources[:args.small])
    runs = {k: [] for k in arms}
    for seed in range(args.seeds):
        for arm, backbone in arms.items():
            runs[arm].append(run_arm(backbone, seed, small, test, steps=args.steps, batch=args.batch, lr=args.lr,
                                     hidden=args.hidden, adapter_lr=args.adapter_lr, site=SITE))
        print(f"seed {seed}: " + ", ".join(f"{k} {v[-1]:.2f}" for k, v in runs.items()) +
              f" dB [{time.perf_counter() - t0:.0f} s]", flush=True)
    return {"task": "separation", "metric": "mean_sdr_db", "higher_is_better": True, "site": SITE, **score,
            **{k: summary(v) for k, v in runs.items()}}


if __name__ == "__main__":   # transfer.py --task separation, with --site input|output (default SITE)
    import sys
    argv = sys.argv[1:]
    if "--site" in argv:
        i = argv.index("--site")
        SITE = argv[i + 1]
        if SITE not in ("input", "output"):
            sys.exit("--site must be input or output")
        del argv[i:i + 2]
    sys.modules["transfer_separation"] = sys.modules[__name__]   # transfer.main imports this module by name
    sys.argv = [sys.argv[0], "--task", "separation", *argv]
    import transfer
    transfer.main()
