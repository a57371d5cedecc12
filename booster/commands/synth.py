"""``booster synth OUT``: generate a synthetic multitrack data set (MUSDB18-HQ layout)."""
from __future__ import annotations

import argparse

from ..errors import ConfigError


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "synth", help="generate a synthetic multitrack data set (stems, MIDI, engineered mix)",
        description="Write random songs as <OUT>/<split>/<track>/{mixture,drums,bass,other,vocals}.wav "
                    "(float32, 44.1 kHz) with midi/<stem>.mid and an engineered mix in mix/. "
                    "The same seed writes identical files.")
    p.add_argument("out", metavar="OUT", help="output folder")
    p.add_argument("--tracks", type=int, default=8, help="tracks per split without an explicit count (default 8)")
    p.add_argument("--seconds", type=float, default=10.0, help="length of each track in seconds (default 10)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--split", action="append", metavar="NAME[=COUNT]",
                   help="split to write, repeatable, e.g. --split train=16 --split valid=4 "
                        "(COUNT defaults to --tracks; default: one split 'train')")
    p.add_argument("--renderer", choices=("auto", "fluidsynth", "numpy"), default="auto",
                   help="auto: FluidSynth when the program and a GM soundfont exist, else numpy")
    p.add_argument("--soundfont", default=None, help="General MIDI .sf2 for FluidSynth (default: system one)")
    p.add_argument("--sample-rate", type=int, default=44100, help="sample rate in Hz (default 44100)")
    p.add_argument("--other-parts", type=int, choices=(1, 2), default=1,
                   help="parts in the 'other' stem: 1 = chords, 2 = chords + pad")
    p.add_argument("--no-mix", action="store_true", help="skip the engineered mix (mix/ folder)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def parse_splits(specs: list[str] | None, tracks: int) -> dict[str, int]:
    """``["train=16", "valid"]`` → ``{"train": 16, "valid": tracks}``."""
    if not specs:
        return {"train": tracks}
    out: dict[str, int] = {}
    for spec in specs:
        name, _, count = spec.partition("=")
        name = name.strip()
        try:
            n = int(count) if count else tracks
        except ValueError:
            raise ConfigError(f"--split {spec!r}: the count after '=' must be an integer") from None
        if name in out:
            raise ConfigError(f"--split {name!r} given twice")
        out[name] = n
    return out


def check_empty(out: str) -> None:
    """OUT must be new or empty: a set written over another would overwrite its songs and leave the extra
    ones of the old set beside the new report (a stale, mixed set), or overwrite the user's own files."""
    from pathlib import Path

    from ..fsutil import TEMP_SUFFIX
    folder = Path(out).expanduser()
    if not folder.is_dir():
        return
    there = sorted(p.name for p in folder.iterdir() if not p.name.endswith(TEMP_SUFFIX))
    if there:
        listed = ", ".join(there[:4]) + (" ..." if len(there) > 4 else "")
        raise ConfigError(f"OUT {out!r} is not empty (it holds {listed}); a new set would overwrite or mix with "
                          "what is there: choose a new or empty folder")


def run(args: argparse.Namespace) -> int:
    from ..data.synth import generate_dataset
    from ..data.render import resolve_renderer

    from ..fsutil import output_dir

    splits = parse_splits(args.split, args.tracks)
    choice = resolve_renderer(args.renderer, args.soundfont)  # a named soundfont must load
    check_empty(args.out)
    with output_dir(args.out, "OUT"):    # a folder made here is removed again if nothing was written
        print(f"renderer: {choice.name} ({choice.reason})")
        report = generate_dataset(args.out, split=splits, seconds=args.seconds, seed=args.seed,
                                  renderer=args.renderer, progress=not args.no_progress,
                                  sample_rate=args.sample_rate, soundfont=args.soundfont,
                                  other_parts=args.other_parts, mix=not args.no_mix)
    counts = ", ".join(f"{k}: {v}" for k, v in report["splits"].items())
    used = report["renderer"] + (f" and soundfont {report['soundfont']}" if report["soundfont"] else "")
    print(f"wrote {len(report['tracks'])} track(s) ({counts}) of {args.seconds:g} s to {args.out} "
          f"with renderer {used}; report in {args.out}/synth_report.json")
    return 0
