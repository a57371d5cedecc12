"""``booster mix STEMS_DIR... -o OUT --model CKPT``: mix folders of stems into stereo mixes.

Each STEMS_DIR is one track: audio files named after the model's slots (e.g. ``drums.wav``, ``bass.flac``;
any sample rate and channel count, resampled). ``--alias slot=PATTERN,...`` maps other names to a slot
(glob patterns of file names without their extension, checked: ``drums=[`` is an error, ``[[]`` a literal
``[``; several files in one slot are summed); a slot without a file is silence; a file that
matches no slot is an error listing the slots (``--ignore-unknown`` skips such files instead). Files
named ``mixture`` or ``mix`` are not stems. Writes ``OUT/<track>.wav`` (track = the folder's name) at
the model's rate, as long as the longest stem, chunk by chunk (bounded memory on long tracks).
``--model``: a ``.ckpt`` from ``booster fit --config mixing/...`` or a ``.safetensors`` mixer (``--export``).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..errors import ConfigError


def add_parser(sub) -> None:
    p = sub.add_parser("mix", help="mix folders of stems into stereo mixes",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="STEMS_DIR", help="one folder of stem files per track")
    p.add_argument("-o", "--output", required=True, help="output folder: OUT/<track>.wav")
    p.add_argument("--model", required=True, help="mixer: a .ckpt from `booster fit` or a .safetensors file")
    p.add_argument("--alias", action="append", default=[], metavar="SLOT=PATTERN[,PATTERN...]",
                   help="map stem files matching these glob patterns to SLOT (repeatable)")
    p.add_argument("--ignore-unknown", action="store_true", help="skip stem files that match no slot")
    p.add_argument("--segment", type=float, default=None,
                   help="chunk length in seconds (default: a boosted model's training segment, so MuQ sees "
                        "the context it was trained with; else the host's)")
    p.add_argument("--overlap", type=float, default=0.25, help="chunk overlap in [0, 1) (default 0.25)")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--pcm16", action="store_true", help="write 16-bit PCM instead of 32-bit float WAV")
    p.add_argument("--export", metavar="FILE", help="also save the mixer as one .safetensors file")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)


def parse_aliases(values: list[str]) -> dict[str, list[str]]:
    """``["drums=kick*,snare*", ...]`` → ``{"drums": ["kick*", "snare*"]}``; each pattern must be a valid
    glob of a file name (:func:`booster.recipes.mixing.layout.pattern_problem`)."""
    from ..recipes.mixing.layout import pattern_problem

    out: dict[str, list[str]] = {}
    for v in values:
        slot, sep, pats = v.partition("=")
        patterns = [p.strip() for p in pats.split(",") if p.strip()]
        if not sep or not slot.strip() or not patterns:
            raise ConfigError(f"--alias {v!r}: expected SLOT=PATTERN[,PATTERN...], e.g. drums=kick*,snare*")
        for p in patterns:
            why = pattern_problem(p)
            if why:
                raise ConfigError(f"--alias {v!r}: pattern {p!r} {why}")
        out.setdefault(slot.strip(), []).extend(patterns)
    return out


def run(args: argparse.Namespace) -> int:
    from . import check_export
    from ..fsutil import output_dir
    from ..recipes.mixing.inference import Mixer
    from ..training.device import resolve_device

    if not 0 <= args.overlap < 1:
        raise ConfigError(f"--overlap must be in [0, 1), got {args.overlap}")
    folders = [Path(f) for f in args.inputs]
    for f in folders:
        if not f.is_dir():
            raise ConfigError(f"{str(f)!r} is not a folder: pass one folder of stem files per track")
    names = [f.resolve().name for f in folders]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"several input folders are named {dup[0]!r}; their mixes would overwrite each other "
                          "in OUT/<track>.wav. Rename them or mix them into different -o folders.")
    aliases = parse_aliases(args.alias)
    device = resolve_device(args.device)
    if args.segment is not None:
        from ..fsutil import check_finite_option
        check_finite_option(args.segment, "--segment", positive=True)
    if args.export:
        check_export(args.export)
    with output_dir(args.output) as out:               # removed again if nothing is written into it
        mixer = Mixer.load(args.model, overlap=args.overlap, device=device, segment=args.segment)
        mixer.slot_map(aliases)  # bad alias slots fail before any work
        if args.export:
            print(f"saved mixer to {mixer.save(args.export)}")
        kind = "boosted " if mixer.boosted else ""
        print(f"{kind}{mixer.meta['host']['name']}: slots {', '.join(mixer.stems)} -> stereo at "
              f"{mixer.sample_rate} Hz, {len(folders)} track(s) on {device}", file=sys.stderr)
        for folder in folders:
            t0 = time.perf_counter()
            path = mixer.mix_folder(folder, out, aliases=aliases,
                                    unknown="ignore" if args.ignore_unknown else "error",
                                    progress=not args.no_progress, subtype="PCM_16" if args.pcm16 else "FLOAT")
            print(f"{folder} -> {path} ({time.perf_counter() - t0:.1f} s)")
    return 0
