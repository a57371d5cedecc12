"""Linear probes on frozen features: does a pretrained MuQ know more about music than a random one?

Labelled clips are rendered here with FluidSynth (General MIDI soundfont; booster.data.render):
  pitch       pitch class (12) of one note, random GM melodic program and octave
  instrument  instrument family (8: piano, organ, guitar, bass, strings, brass, reed, pipe) of a short phrase
  chord       chord quality (4: major, minor, diminished, augmented) of a block chord, random root/program
Each clip lasts 1.5 s at 24 kHz. Features are mean-pooled over time, standardised, and fed to a
multinomial logistic regression (torch, full-batch L-BFGS, L2). For a MuQ, every hidden state is
probed and the layer with the best validation accuracy is reported on the test split (the same rule
for every model). Baseline: mean and std over time of the same normalised log-mel front end.

    python benchmarks/probe.py --checkpoint muq-mini [--n 480] [--json out.json]

Compares the checkpoint, a random-init MuQ of the same configuration (seed 0: the starting point of
pretraining) and the log-mel baseline.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pretty_midi
import torch

from booster import MuQ
from booster.data.render import render_song, resolve_renderer
from booster.data.songs import Song

SR = 24_000
CLIP = 1.5
FAMILIES = {"piano": range(0, 6), "organ": range(16, 21), "guitar": range(24, 31), "bass": range(32, 39),
            "strings": range(40, 46), "brass": range(56, 63), "reed": range(64, 72), "pipe": range(72, 80)}
BASS_RANGE = {"bass": (31, 55)}
QUALITIES = {"major": (0, 4, 7), "minor": (0, 3, 7), "diminished": (0, 3, 6), "augmented": (0, 4, 8)}
MELODIC = [p for r in FAMILIES.values() for p in r]


def _example(task: str, rng: np.random.Generator) -> tuple[pretty_midi.Instrument, int]:
    """One labelled clip as a MIDI instrument (notes within CLIP seconds) and its label."""
    vel = int(rng.integers(70, 110))
    if task == "pitch":
        label = int(rng.integers(12))
        pitch = label + 12 * int(rng.integers(4, 7))                      # C3..B5
        inst = pretty_midi.Instrument(int(rng.choice(MELODIC)))
        inst.notes.append(pretty_midi.Note(vel, pitch, 0.05, 1.2))
    elif task == "instrument":
        label = int(rng.integers(len(FAMILIES)))
        name = list(FAMILIES)[label]
        inst = pretty_midi.Instrument(int(rng.choice(list(FAMILIES[name]))))
        lo, hi = BASS_RANGE.get(name, (55, 79))
        t = 0.05
        for _ in range(3):
            inst.notes.append(pretty_midi.Note(vel, int(rng.integers(lo, hi)), t, t + 0.4))
            t += 0.45
    else:
        label = int(rng.integers(len(QUALITIES)))
        root = int(rng.integers(48, 66))
        inst = pretty_midi.Instrument(int(rng.choice([0, 1, 4, 16, 19, 24, 48, 61])))
        for iv in list(QUALITIES.values())[label]:
            inst.notes.append(pretty_midi.Note(vel, root + iv, 0.05, 1.2))
    return inst, label


def render_task(task: str, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """→ clips ``[N, S]`` mono 24 kHz and labels ``[N]``, rendered 15 clips per FluidSynth run."""
    rng = np.random.default_rng(seed)
    choice = resolve_renderer("auto")
    clips, labels = [], []
    frames = int(CLIP * SR)
    while len(clips) < n:
        parts, batch_labels = {}, []
        for i in range(min(15, n - len(clips))):
            inst, label = _example(task, rng)
            parts[f"c{i}"] = [inst]
            batch_labels.append(label)
        song = Song(name=f"{task}-{len(clips)}", tempo=120.0, key=0, mode="major", progression=(0,),
                    drum_style="none", seconds=CLIP, parts=parts)
        stems = render_song(song, choice, frames=frames, sample_rate=SR, seed=len(clips))
        for i, label in enumerate(batch_labels):
            wav = stems[f"c{i}"].mean(0)
            peak = np.abs(wav).max()
            clips.append(torch.from_numpy(wav / peak * 0.5 if peak > 0 else wav))
            labels.append(label)
    return torch.stack(clips), torch.tensor(labels)


def cached_render(task: str, n: int, seed: int, folder: str | None):
    """:func:`render_task`, kept in ``folder`` (``<task>-<n>-<seed>.pt``) when given."""
    if folder is None:
        return render_task(task, n, seed)
    from pathlib import Path
    path = Path(folder) / f"{task}-{n}-{seed}.pt"
    if path.is_file():
        d = torch.load(path, weights_only=True)
        return d["clips"], d["labels"]
    clips, labels = render_task(task, n, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"clips": clips, "labels": labels}, path)
    return clips, labels


@torch.no_grad()
def muq_features(model: MuQ, clips: torch.Tensor, batch: int = 32) -> torch.Tensor:
    """clips ``[N, S]`` → time-pooled hidden states ``[L+1, N, D]``."""
    out = []
    for i in range(0, len(clips), batch):
        hs = model(clips[i:i + batch]).hidden_states
        out.append(torch.stack([h.mean(1) for h in hs]))
    return torch.cat(out, 1)


@torch.no_grad()
def mel_features(model: MuQ, clips: torch.Tensor) -> torch.Tensor:
    """Baseline: mean and std over time of the normalised log-mel → ``[1, N, 2 * n_mels]``."""
    mel = model.frontend(clips)
    return torch.cat([mel.mean(-1), mel.std(-1)], -1)[None]


def logistic_probe(x_tr, y_tr, x_te, classes: int, l2: float = 1e-3, iters: int = 200) -> torch.Tensor:
    """Fit a standardised multinomial logistic regression; return test predictions."""
    mu, sd = x_tr.mean(0), x_tr.std(0).clamp_min(1e-6)
    x_tr, x_te = (x_tr - mu) / sd, (x_te - mu) / sd
    torch.manual_seed(0)
    lin = torch.nn.Linear(x_tr.shape[1], classes, dtype=torch.float64)
    x_tr, x_te = x_tr.double(), x_te.double()
    opt = torch.optim.LBFGS(lin.parameters(), max_iter=iters, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(lin(x_tr), y_tr) + l2 * lin.weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return lin(x_te).argmax(-1)


def probe(features: torch.Tensor, labels: torch.Tensor, classes: int, split=(0.5, 0.2)) -> dict:
    """``features`` ``[L, N, D]``: best layer by validation accuracy, then its test accuracy."""
    n = labels.shape[0]
    a, b = int(split[0] * n), int((split[0] + split[1]) * n)
    best = None
    for layer in range(features.shape[0]):
        f = features[layer]
        val = (logistic_probe(f[:a], labels[:a], f[a:b], classes) == labels[a:b]).float().mean().item()
        if best is None or val > best[1]:
            best = (layer, val)
    layer = best[0]
    f = features[layer]
    train = torch.cat([f[:b]])
    pred = logistic_probe(train, labels[:b], f[b:], classes)
    return {"layer": layer, "val_acc": round(best[1], 4), "test_acc": round((pred == labels[b:]).float().mean().item(), 4)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="muq-mini")
    p.add_argument("--n", type=int, default=480, help="clips per probe (50%% train, 20%% val, 30%% test)")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--tasks", default="pitch,instrument,chord")
    p.add_argument("--json")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--clips-cache", help="folder where rendered clips are kept between runs")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    trained = MuQ.from_pretrained(a.checkpoint).eval()
    torch.manual_seed(0)  # the same initialisation the pretraining recipe starts from (seed 0)
    random_init = MuQ(trained.config).eval()
    classes = {"pitch": 12, "instrument": len(FAMILIES), "chord": len(QUALITIES)}
    results = {}
    for k, task in enumerate(a.tasks.split(",")):
        t0 = time.time()
        clips, labels = cached_render(task, a.n, a.seed + k, a.clips_cache)
        row = {"clips": len(labels)}
        row[a.checkpoint] = probe(muq_features(trained, clips), labels, classes[task])
        row["random-init"] = probe(muq_features(random_init, clips), labels, classes[task])
        row["log-mel"] = probe(mel_features(trained, clips), labels, classes[task])
        row["seconds"] = round(time.time() - t0, 1)
        results[task] = row
        print(task, json.dumps(row), flush=True)
    print(f"\n| probe (chance) | {a.checkpoint} | random-init MuQ, same size | log-mel baseline |")
    print("|---|---|---|---|")
    for task, row in results.items():
        cells = [f"{row[m]['test_acc']:.3f} (layer {row[m]['layer']})" for m in (a.checkpoint, "random-init")]
        print(f"| {task} ({1 / classes[task]:.3f}) | {cells[0]} | {cells[1]} | {row['log-mel']['test_acc']:.3f} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"checkpoint": a.checkpoint, "n": a.n, "seed": a.seed, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
