"""Known-answer test of the booster as a system (issue 20 item 1): does a backbone that knows the task boost?

Shape glossary: B batch, S samples, L layers, T frames, D feature dim, P pitches.

The backbone is a *teacher*: the same task's model trained on the full training set, frozen and wrapped in
:class:`booster.TorchBackbone` so that its intermediate activations are the hidden states. Then, at equal
steps and for each seed, the same host (same initial weights, same batches) is trained on a small fraction
of that set three ways: plain, boosted by the teacher, and boosted by the teacher's hidden states delayed
by ``--shift`` seconds (a wrapper; the features no longer line up with the audio). Expected: boosted well
above plain, and the shift losing most of the gain.

Tasks ``separation`` and ``mixing`` live in ``transfer_separation.py`` / ``transfer_mixing.py`` beside this
file (each: ``DEFAULTS``, the settings it overrides, and ``run(args) -> dict``, the report without
``config``); they share :func:`delay`, :func:`param_groups` and :func:`summary` from here.

Task ``transcription``: monophonic bass lines rendered by the project's numpy
synthesiser (:func:`booster.data.numpy_synth.render_numpy`, GM bass), host and teacher the shallow
transcriber (``booster.adapters.onsets_frames``, back end ``shallow``, injection at ``input_proj``), metric
the frame F1 of the frame head (threshold 0.5) on held-out clips. The teacher's hidden states are its
``input_proj`` output before (state 0) and after (state 1) the ReLU, ``[B, T, D]`` at the host frame rate.

    python benchmarks/transfer.py --task transcription                  # defaults (minutes on 2 cores)
    python benchmarks/transfer.py --task transcription --seeds 2 --steps 150 --small 4   # quick look

The last output line is JSON: ``{"task", "metric", "higher_is_better", "teacher", "plain": {"mean", "std",
"runs"}, "boosted": {...}, "shifted": {...}, "config"}``.
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import time

import numpy as np
import pretty_midi
import torch
from torch import nn

SR, HOP = 16000, 512            # 31.25 frames per second
PITCHES = (36, 59)              # two octaves of bass
TASKS = ("separation", "transcription", "mixing")


# ---- data -------------------------------------------------------------------------------------
def bass_line(rng: np.random.Generator, seconds: float) -> list[pretty_midi.Note]:
    """A random monophonic line: notes of 0.12-0.45 s with gaps of 0-0.15 s over ``seconds``."""
    notes, t = [], float(rng.uniform(0.0, 0.2))
    while t < seconds - 0.15:
        dur = float(rng.uniform(0.12, 0.45))
        notes.append(pretty_midi.Note(int(rng.integers(60, 120)), int(rng.integers(PITCHES[0], PITCHES[1] + 1)),
                                      t, min(t + dur, seconds)))
        t += dur + float(rng.uniform(0.0, 0.15))
    return notes


def make_clips(n: int, seconds: float, seed: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``n`` rendered clips: audio ``[n, S]`` (mono, 16 kHz) and frame targets ``[n, T, P]``."""
    from booster.data.numpy_synth import render_numpy
    from booster.data.pairs import frame_targets
    from booster.data.songs import Song
    frames, t = int(seconds * SR), int(seconds * SR) // HOP
    audio, rolls = [], []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        inst = pretty_midi.Instrument(program=33)
        inst.notes = bass_line(rng, seconds)
        song = Song(name=f"clip{i}", tempo=120.0, key=0, mode="major", progression=(1,), drum_style="none",
                    seconds=seconds, parts={"bass": [inst]})
        audio.append(torch.from_numpy(render_numpy(song, frames=frames, sample_rate=SR, seed=seed * 100003 + i)
                                      ["bass"].mean(0)))
        rolls.append(frame_targets(inst.notes, frame_rate=SR / HOP, n_frames=t, pitch_range=PITCHES))
    return torch.stack(audio), {k: torch.stack([r[k] for r in rolls]) for k in rolls[0]}


# ---- models -----------------------------------------------------------------------------------
def build_host(seed: int, hidden: int) -> nn.Module:
    from booster.adapters import onsets_frames
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return onsets_frames.build(size="debug", backend="shallow", pitch_range=PITCHES, hidden_size=hidden)


class TeacherStates(nn.Module):
    """A trained shallow transcriber's ``input_proj`` output as hidden states: ``wav`` ``[B, S]`` →
    (pre-ReLU, post-ReLU), each ``[B, T, D]``; ``delay`` frames > 0 shift both later in time (the first
    ``delay`` frames are zeros, the last ``delay`` are dropped): the 0.5 s misaligned control."""

    def __init__(self, transcriber: nn.Module, delay: int = 0):
        super().__init__()
        self.transcriber, self.delay = transcriber, int(delay)

    def forward(self, wav: torch.Tensor):
        m = self.transcriber
        pre = m.input_proj(m.norm(m.spectrogram(wav)))            # [B, T, D]
        return delay((pre, torch.relu(pre)), self.delay)


def delay(states: tuple, frames: int, dim: int = 1) -> tuple:
    """Each state shifted ``frames`` later along ``dim`` (time): the first ``frames`` are zeros, the last
    ``frames`` are dropped, the length is kept. ``frames`` 0: unchanged."""
    if not frames:
        return tuple(states)
    out = []
    for s in states:
        d = min(int(frames), s.shape[dim])
        out.append(torch.cat([torch.zeros_like(s.narrow(dim, 0, d)), s.narrow(dim, 0, s.shape[dim] - d)], dim))
    return tuple(out)


def param_groups(model: nn.Module, lr: float, adapter_lr: float | None = None) -> list[dict]:
    """AdamW groups: the trainable host parameters at ``lr``, a boosted model's adapters at ``adapter_lr``
    (default ``lr``)."""
    adapters = {id(p) for p in model.adapter_parameters()} if hasattr(model, "adapter_parameters") else set()
    trainable = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in trainable if id(p) not in adapters], "lr": lr}]
    if adapters:
        groups.append({"params": [p for p in trainable if id(p) in adapters], "lr": adapter_lr or lr})
    return groups


def as_backbone(teacher: nn.Module, *, shift: float = 0.0, name: str = "teacher"):
    """The frozen ``teacher`` as a backbone (:class:`booster.TorchBackbone`), its states delayed by ``shift`` s."""
    import booster
    module = TeacherStates(copy.deepcopy(teacher).requires_grad_(False).eval(), delay=round(shift * SR / HOP))
    return booster.TorchBackbone(module, sample_rate=SR, frame_rate=SR / HOP, num_layers=1,
                                 hidden_size=teacher.model_size, name=name if not shift else f"{name}-shift{shift:g}s")


# ---- training and scoring ---------------------------------------------------------------------
def train(model: nn.Module, audio: torch.Tensor, targets: dict, *, steps: int, batch: int, lr: float,
          seed: int, adapter_lr: float | None = None) -> nn.Module:
    """AdamW on the trainable parameters, ``steps`` minibatches drawn by ``seed`` (same order for every arm);
    the adapters of a boosted model at ``adapter_lr`` (default ``lr``)."""
    from booster.adapters.onsets_frames import loss
    opt = torch.optim.AdamW(param_groups(model, lr, adapter_lr))
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)          # dropout masks: the same for every arm of a seed
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, audio.shape[0], (batch,), generator=gen)   # with replacement
        opt.zero_grad()
        loss(model, audio[idx], {k: v[idx] for k, v in targets.items()}).backward()
        opt.step()
    return model.eval()


@torch.no_grad()
def frame_f1(model: nn.Module, audio: torch.Tensor, targets: dict, batch: int = 16) -> float:
    """Frame F1 of ``sigmoid(frame) > 0.5`` against the frame roll, pooled over all clips."""
    model.eval()
    tp = fp = fn = 0.0
    for i in range(0, audio.shape[0], batch):
        ref = targets["frame"][i:i + batch] > 0.5
        est = model(audio[i:i + batch])["frame"][:, :ref.shape[1]] > 0
        tp += (est & ref).sum().item()
        fp += (est & ~ref).sum().item()
        fn += (~est & ref).sum().item()
    return 2 * tp / max(2 * tp + fp + fn, 1.0)


def run_arm(backbone, seed: int, small: tuple, test: tuple, *, steps: int, batch: int, lr: float, hidden: int,
            freeze_gates: bool = False, adapter_lr: float | None = None) -> float:
    """Train the host of ``seed`` on ``small`` (audio, targets), plain (``backbone=None``) or boosted by
    ``backbone``, and return its frame F1 on ``test``. ``freeze_gates``: the adapters' gates stay at zero
    (the adapters disconnected; the control that must give exactly the plain score)."""
    from booster.adapters import onsets_frames
    host = build_host(seed, hidden)
    torch.manual_seed(seed)          # the adapters' initial weights: from the seed, not from the run order
    model = host if backbone is None else onsets_frames.boost(host, backbone)
    if freeze_gates:
        for adapter in model.adapters:
            adapter.fusion.gate.requires_grad_(False)
    train(model, *small, steps=steps, batch=batch, lr=lr, seed=seed, adapter_lr=adapter_lr)
    return frame_f1(model, *test)


def summary(runs: list[float]) -> dict:
    return {"mean": statistics.fmean(runs), "std": statistics.stdev(runs) if len(runs) > 1 else 0.0,
            "runs": runs}


def transcription(args) -> dict:
    t0 = time.perf_counter()
    audio, targets = make_clips(args.full, args.seconds, seed=1)
    test_audio, test_targets = make_clips(args.test, args.seconds, seed=2)
    teacher = train(build_host(1000, args.hidden), audio, targets, steps=args.teacher_steps, batch=args.batch,
                    lr=args.lr, seed=1000)
    score = {"teacher": frame_f1(teacher, test_audio, test_targets)}
    print(f"teacher ({args.full} clips, {args.teacher_steps} steps): frame F1 {score['teacher']:.3f} "
          f"[{time.perf_counter() - t0:.0f} s]", flush=True)
    aligned, shifted = as_backbone(teacher), as_backbone(teacher, shift=args.shift)
    small = (audio[:args.small], {k: v[:args.small] for k, v in targets.items()})
    arms = {"plain": None, "boosted": aligned, "shifted": shifted}
    runs = {k: [] for k in arms}
    for seed in range(args.seeds):
        for arm, backbone in arms.items():
            runs[arm].append(run_arm(backbone, seed, small, (test_audio, test_targets), steps=args.steps,
                                     batch=args.batch, lr=args.lr, hidden=args.hidden,
                                     adapter_lr=args.adapter_lr))
        print(f"seed {seed}: " + ", ".join(f"{k} {v[-1]:.3f}" for k, v in runs.items()) +
              f" [{time.perf_counter() - t0:.0f} s]", flush=True)
    return {"task": "transcription", "metric": "frame_f1", "higher_is_better": True, **score,
            **{k: summary(v) for k, v in runs.items()}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="transcription", choices=("separation", "transcription", "mixing"))
    p.add_argument("--seeds", type=int, default=None, help="seeds per arm (default 3)")
    p.add_argument("--full", type=int, default=96, help="clips in the full training set (the teacher's)")
    p.add_argument("--small", type=int, default=6, help="clips the host is trained on (the small fraction)")
    p.add_argument("--test", type=int, default=32, help="held-out clips scored")
    p.add_argument("--seconds", type=float, default=2.0, help="clip length")
    p.add_argument("--steps", type=int, default=400, help="host training steps (every arm)")
    p.add_argument("--teacher-steps", type=int, default=2000)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--adapter-lr", type=float, default=None, help="the adapters' learning rate (default --lr)")
    p.add_argument("--hidden", type=int, default=32, help="shallow transcriber hidden size (host and teacher)")
    p.add_argument("--shift", type=float, default=0.5, help="delay of the shifted teacher's features (s)")
    p.add_argument("--threads", type=int, default=2)
    # every option's default is the task's: transcription's are the ones above, another task's module
    # overrides them with its DEFAULTS (an option the user gives always wins)
    given = {a.dest for a in p._actions if a.dest != "help"}
    base = {a.dest: a.default for a in p._actions if a.dest != "help"}
    base["seeds"] = 3
    p.set_defaults(**{k: None for k in given if k != "task"})
    args = p.parse_args()
    module = None
    if args.task != "transcription":
        import importlib
        module = importlib.import_module(f"transfer_{args.task}")
    defaults = {**base, **(getattr(module, "DEFAULTS", {}) if module else {})}
    for k, v in defaults.items():
        if getattr(args, k, None) is None:
            setattr(args, k, v)
    if not 0 < args.small <= args.full:
        p.error("--small must be between 1 and --full")
    torch.set_num_threads(args.threads)
    report = module.run(args) if module else transcription(args)
    report["config"] = vars(args)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
