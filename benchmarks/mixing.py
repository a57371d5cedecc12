"""Cost of boosting a mixer, as ratios measured in one run (run by hand, not a test).

1. Training step (forward + MR-STFT/sum-difference loss + backward + AdamW), boosted / baseline, with
   cached MuQ features (precomputed from the stems' sum, as for fixed data) and with live features (MuQ
   runs inside the step), for Mix-Wave-U-Net and CRAFx2.
2. Whole-track mixing (chunked, MuQ once per track on the stems' sum): real-time factor of the plain and
   the boosted mixer, and MuQ's share of the boosted time.

    python benchmarks/mixing.py                               # debug hosts + debug MuQ (quick)
    python benchmarks/mixing.py --size full --backbone large  # full hosts + MuQ-large architecture (random weights)
"""
from __future__ import annotations

import argparse
import json
import platform

import torch

from timing import best, interleaved

STEMS = ["drums", "bass", "other", "vocals"]
HOSTS = ("mix_wave_unet", "crafx2")


def backbone(kind: str, seed: int = 0):
    from booster import MuQ
    if kind == "debug":
        return MuQ.debug(seed)
    if kind == "large":
        from booster.muq.config import MuQConfig
        torch.manual_seed(seed)
        return MuQ(MuQConfig()).requires_grad_(False).eval()  # MuQ-large architecture, random weights
    return MuQ.from_pretrained(kind).requires_grad_(False).eval()


def modules(host: str, args):
    """``(baseline, boosted)`` MixingModules with the same host weights."""
    from booster.recipes.mixing.module import MixingModule
    from booster.training.hosts import boost_host
    kw = dict(host=host, stems=STEMS, sample_rate=args.sample_rate, size=args.size)
    torch.manual_seed(0)
    base = MixingModule(**kw)
    torch.manual_seed(0)
    boosted = MixingModule(**kw)
    boosted.model = boost_host(host, boosted.model, backbone(args.backbone))
    return base, boosted


def train_steps(host: str, args) -> dict:
    from booster.training import boosting
    base, boosted = modules(host, args)
    g = torch.Generator().manual_seed(0)
    stems = 0.1 * torch.randn(args.batch, len(STEMS), 2, int(args.segment * args.sample_rate), generator=g)
    mix = stems.sum(1) * 0.5
    sr = args.sample_rate
    cached = boosted.live_features(stems.sum(1), sr)
    opts = {id(m): torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-4)
            for m in (base, boosted)}

    def step(m, feats=None, live=False):
        def run():
            opt = opts[id(m)]
            opt.zero_grad()
            f = m.live_features(stems.sum(1), sr) if live else feats
            with boosting.using(m.model, f):
                loss = m.host_loss(stems, mix)
            loss.backward()
            opt.step()
        return run

    base.train(), boosted.train()
    t_base, t_cached, t_live = interleaved([step(base), step(boosted, cached), step(boosted, live=True)],
                                           args.repeats)
    return {"baseline_s": t_base, "boosted_cached_s": t_cached, "boosted_live_s": t_live,
            "ratio_cached": t_cached / t_base, "ratio_live": t_live / t_base}


def mixing(host: str, args) -> dict:
    from booster.recipes.mixing.inference import Mixer
    base, boosted = modules(host, args)
    stems = 0.1 * torch.randn(len(STEMS), 2, int(args.track_seconds * args.sample_rate),
                              generator=torch.Generator().manual_seed(1))
    plain = Mixer(base.model, base.description(), batch_size=args.eval_batch)
    mixer = Mixer(boosted.model, boosted.description(), batch_size=args.eval_batch)
    layers = mixer.model.layers
    t_plain, t_boost = interleaved([lambda: plain.mix_tensor(stems), lambda: mixer.mix_tensor(stems)],
                                   args.repeats)
    t_muq = best(lambda: mixer.backbone.extract(stems.sum(0), args.sample_rate, layers), args.repeats)
    return {"track_s": args.track_seconds, "plain_s": t_plain, "boosted_s": t_boost, "muq_s": t_muq,
            "rtf_plain": t_plain / args.track_seconds, "rtf_boosted": t_boost / args.track_seconds,
            "ratio": t_boost / t_plain, "muq_share_of_boosted": t_muq / t_boost}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hosts", nargs="+", default=list(HOSTS), choices=HOSTS)
    p.add_argument("--size", default="debug", choices=["debug", "full"])
    p.add_argument("--backbone", default="debug", help="debug | large (random weights) | a MuQ source (muq-mini)")
    p.add_argument("--sample-rate", type=int, default=44100)
    p.add_argument("--segment", type=float, default=1.0, help="training segment (s)")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--track-seconds", type=float, default=30.0)
    p.add_argument("--eval-batch", type=int, default=4, help="chunks per batch at inference")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--skip-train", action="store_true")
    p.add_argument("--skip-mix", action="store_true")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = {"machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
                      f"{torch.get_num_threads()} threads", "args": vars(args)}
    for host in args.hosts:
        if not args.skip_train:
            out[f"{host}_train_step"] = train_steps(host, args)
            print(json.dumps({host: out[f"{host}_train_step"]}), flush=True)
        if not args.skip_mix:
            out[f"{host}_mixing"] = mixing(host, args)
            print(json.dumps({host: out[f"{host}_mixing"]}), flush=True)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
