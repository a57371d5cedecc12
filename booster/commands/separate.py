"""``booster separate IN... -o OUT --model CKPT_OR_NAME``: split audio files into stems.

Inputs are audio files or folders (walked recursively), any sample rate and channel count. Writes
``OUT/<track>/<source>.wav`` at the model's sample rate and channel count, chunk by chunk (bounded
memory on long files). ``--model``: a ``.ckpt`` from ``booster fit``, a ``.safetensors`` separator file
(``--export``), or a published demucs model name (``htdemucs``; needs demucs' download cache).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..errors import AudioError, BoosterError


def add_parser(sub) -> None:
    p = sub.add_parser("separate", help="separate audio files into stems",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", help="audio files or folders")
    p.add_argument("-o", "--output", required=True, help="output folder: OUT/<track>/<source>.wav")
    p.add_argument("--model", required=True, help="separator: .ckpt, .safetensors or a demucs model name")
    p.add_argument("--overlap", type=float, default=0.25, help="chunk overlap in [0, 1) (default 0.25)")
    p.add_argument("--device", default=None,
                   help="torch device: cpu, cuda, cuda:N (default: cuda when available, else cpu)")
    p.add_argument("--batch", type=int, default=4, help="chunks separated together (default 4)")
    p.add_argument("--pcm16", action="store_true", help="write 16-bit PCM instead of 32-bit float WAV")
    p.add_argument("--export", metavar="FILE", help="also save the separator as one .safetensors file")
    p.add_argument("--keep-going", action="store_true", help="skip unreadable inputs instead of stopping")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..audio import list_audio_files
    from ..recipes.separation.inference import Separator
    from ..training.device import resolve_device

    device = resolve_device(args.device)  # ConfigError (one line) for a device this machine lacks
    files = list_audio_files(args.inputs)  # AudioError for missing inputs / empty folders
    stems = {}
    for f in files:
        stems.setdefault(f.stem, []).append(f)
    clashes = {k: v for k, v in stems.items() if len(v) > 1}
    if clashes:
        name, paths = next(iter(clashes.items()))
        raise AudioError(f"{len(paths)} inputs share the track name {name!r} ({', '.join(map(str, paths[:3]))}); "
                         "their stems would overwrite each other. Separate them into different -o folders.")
    sep = Separator.load(args.model, overlap=args.overlap, device=device, batch_size=args.batch)
    if args.export:
        print(f"saved separator to {sep.save(args.export)}")
    kind = "boosted " if sep.boosted else ""
    print(f"{kind}{sep.meta['host']['name']} -> {', '.join(sep.sources)} at {sep.sample_rate} Hz, "
          f"{len(files)} file(s) on {device}", file=sys.stderr)
    failed = 0
    for f in files:
        t0 = time.perf_counter()
        try:
            paths = sep.separate_file(f, args.output, progress=not args.no_progress,
                                      subtype="PCM_16" if args.pcm16 else "FLOAT")
        except BoosterError as e:
            if not args.keep_going:
                raise
            failed += 1
            print(f"skipped {f}: {e}", file=sys.stderr)
            continue
        print(f"{f} -> {Path(next(iter(paths.values()))).parent} ({time.perf_counter() - t0:.1f} s)")
    return 1 if failed else 0
