"""Cost of boosting the Onsets-and-Frames transcriber, as ratios measured in one run (run by hand, not a test).

1. Training step (forward + backward + AdamW), boosted / baseline, with cached MuQ features (given to the
   step, as for fixed data) and live features (MuQ runs inside the step, as for random segments).
2. Whole-file transcription (chunked, MuQ once per file, decoding included): real-time factor of the
   plain and the boosted transcriber, and the share of the boosted time spent in MuQ.

    python benchmarks/transcription.py                            # debug transcriber + debug MuQ (quick)
    python benchmarks/transcription.py --backbone mini                 # the shipped muq-mini
    python benchmarks/transcription.py --size full --backbone large --file-seconds 60
"""
from __future__ import annotations

import argparse
import json

import torch

from timing import best, interleaved


def backbone(kind: str, seed: int = 0):
    from booster import MuQ
    if kind == "debug":
        return MuQ.debug(seed)
    if kind == "mini":
        return MuQ.from_pretrained("muq-mini").eval()  # the shipped backbone (4.3 M parameters)
    from booster.muq.config import MuQConfig
    torch.manual_seed(seed)
    m = MuQ(MuQConfig())  # MuQ-large architecture, random weights (no download)
    m.requires_grad_(False)
    return m.eval()


def models(args):
    from booster.adapters import onsets_frames as plugin
    torch.manual_seed(0)
    base = plugin.build(size=args.size, backend=args.backend, frontend=args.frontend)
    torch.manual_seed(0)
    host = plugin.build(size=args.size, backend=args.backend, frontend=args.frontend)  # same weights
    boosted = plugin.boost(host, backbone(args.backbone), layers=args.layers)
    return base, boosted


def train_steps(args) -> dict:
    from booster.adapters.onsets_frames import transcription_loss
    from booster.data.pairs import frame_targets
    import pretty_midi
    base, boosted = models(args)
    g = torch.Generator().manual_seed(0)
    audio = 0.1 * torch.randn(args.batch, 1, int(args.segment * 16000), generator=g)
    t = int(args.segment * 31.25)
    notes = [pretty_midi.Note(80, 40 + k % 40, 0.1 * k, 0.1 * k + 0.3) for k in range(int(args.segment * 10))]
    targets = {k: v[None].expand(args.batch, -1, -1) for k, v in
               frame_targets(notes, frame_rate=31.25, n_frames=t).items()}
    with torch.no_grad():
        cached = boosted.backbone.extract(audio, 16000, boosted.layers)
    opts = {id(m): torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-4)
            for m in (base, boosted)}

    def step(m, feats=None):
        def run():
            opt = opts[id(m)]
            opt.zero_grad()
            if feats is not None:
                with m.use_features(feats):
                    out = m(audio)
            else:
                out = m(audio)
            transcription_loss(out, targets)[0].backward()
            opt.step()
        return run

    base.train(), boosted.train()
    t_base, t_cached, t_live = interleaved([step(base), step(boosted, cached), step(boosted)], args.repeats)
    return {"baseline_s": t_base, "boosted_cached_s": t_cached, "boosted_live_s": t_live,
            "ratio_cached": t_cached / t_base, "ratio_live": t_live / t_base}


def transcription(args) -> dict:
    from booster.recipes.transcription.inference import Transcriber
    from booster.training.checkpoint import describe
    from booster.training.hosts import HostSpec
    from booster.adapters import onsets_frames as plugin
    base, boosted = models(args)
    audio = 0.1 * torch.randn(1, int(args.file_seconds * 16000), generator=torch.Generator().manual_seed(1))

    def wrap(m):
        meta = describe("transcription", HostSpec("onsets_frames", plugin.architecture(m)), m,
                        backbone=args.backbone)
        return Transcriber(m, meta, segment=args.chunk, batch_size=args.eval_batch)
    plain, boost = wrap(base), wrap(boosted)
    t_plain, t_boost = interleaved([lambda: plain.transcribe_tensor(audio), lambda: boost.transcribe_tensor(audio)],
                                   args.repeats)
    t_muq = best(lambda: boost.track_features(audio), args.repeats)
    return {"file_s": args.file_seconds, "plain_s": t_plain, "boosted_s": t_boost, "muq_s": t_muq,
            "rtf_plain": t_plain / args.file_seconds, "rtf_boosted": t_boost / args.file_seconds,
            "ratio": t_boost / t_plain, "muq_share_of_boosted": t_muq / t_boost}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="debug", choices=["debug", "full"])
    p.add_argument("--backend", default="onsets_frames", choices=["onsets_frames", "shallow"])
    p.add_argument("--frontend", default="mel", choices=["mel", "cqt"])
    p.add_argument("--backbone", default="debug", choices=["debug", "mini", "large"])
    p.add_argument("--layers", default=None, help="MuQ layers, e.g. 6,9,12 (default all)")
    p.add_argument("--segment", type=float, default=5.0, help="training segment in seconds")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--file-seconds", type=float, default=30.0)
    p.add_argument("--chunk", type=float, default=20.0, help="inference chunk in seconds")
    p.add_argument("--eval-batch", type=int, default=2)
    p.add_argument("--parts", default="train,transcription", help="comma-separated subset to run")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    report = {"config": vars(args)}
    parts = set(args.parts.split(","))
    for name, fn in (("train_step", train_steps), ("transcription", transcription)):
        if name.split("_")[0] in parts:
            report[name] = fn(args)
            print(json.dumps({name: report[name]}, indent=2), flush=True)
    if {"train_step", "transcription"} <= set(report):
        t, s = report["train_step"], report["transcription"]
        print(f"\n{args.size} transcriber, {args.backbone} MuQ: step ratio cached {t['ratio_cached']:.3f}, "
              f"live {t['ratio_live']:.3f}; transcription RTF {s['rtf_plain']:.3f} -> {s['rtf_boosted']:.3f} "
              f"(x{s['ratio']:.3f}, MuQ share {100 * s['muq_share_of_boosted']:.1f} %)")


if __name__ == "__main__":
    main()
