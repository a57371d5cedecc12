"""booster separate IN... -o OUT --model CKPT_OR_NAME: split audio files into stems.

Inputs are audio files or folders (walked recursively), any sample rate and channel count. Writes
OUT/<track>/<source>.wav at the model's sample rate and channel count, chunk by chunk (bounded memory on
long files). <track> is the file name without extension; inputs that would share it are told apart by
their extension (OUT/song.flac/) or their folders (OUT/a/song/). Nothing is written for an input that
fails. --model: a .ckpt from `booster fit`, a .safetensors separator file (--export), a published
demucs model name (htdemucs; needs demucs' download cache), or an MSST model as its CONFIG.yaml with
--checkpoint MODEL.ckpt (what `booster convert msst` would import). Float WAV (the default) takes 10.6 MB per
minute and stem at 44.1 kHz stereo; --int24, --int16 or --flac write smaller files. Chunks default to the
model's training chunk and recorded overlap (--chunk-seconds, --overlap); --tta averages MSST's test-time
augmentations; --stems writes a subset. See docs/separation.md, "Inference options".
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import check_export, run_each_input


def add_parser(sub) -> None:
    p = sub.add_parser("separate", help="separate audio files into stems",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", help="audio files or folders")
    p.add_argument("-o", "--output", required=True, help="output folder: OUT/<track>/<source>.wav")
    p.add_argument("--model", required=True,
                   help="separator: .ckpt, .safetensors, a demucs model name, or an MSST CONFIG.yaml with --checkpoint")
    p.add_argument("--checkpoint", metavar="MODEL.ckpt", default=None,
                   help="the weights of an MSST --model CONFIG.yaml (BS-RoFormer or Mel-Band-RoFormer)")
    p.add_argument("--type", dest="model_type", choices=("bs_roformer", "mel_band_roformer"), default=None,
                   help="an MSST config's model type, as in `booster convert msst` (default: its "
                        "training.model_type, else told by its keys)")
    p.add_argument("--two-stems", metavar="SOURCE", help="write SOURCE and no_SOURCE (the sum of the others)")
    p.add_argument("--shifts", type=int, default=0,
                   help="average N passes over randomly shifted input (demucs' shift trick; default 0: none)")
    p.add_argument("--stems", metavar="A,B", type=_names, default=None,
                   help="write only these stems (comma-separated; with --two-stems: SOURCE and/or no_SOURCE)")
    p.add_argument("--tta", action="store_true",
                   help="test-time augmentation (MSST's): average the separations of the input, its channels "
                        "swapped (stereo) and its polarity inverted (3x the work)")
    p.add_argument("--chunk-seconds", type=float, default=None, metavar="S",
                   help="chunk length in seconds (default: the model's training chunk, so a boosted model's "
                        "MuQ sees the context it was trained with)")
    p.add_argument("--segment", type=float, default=None, metavar="S", help="the same as --chunk-seconds")
    p.add_argument("--overlap", type=float, default=None,
                   help="chunk overlap in [0, 1) (default: the model's recorded overlap, else 0.25)")
    p.add_argument("--device", default=None,
                   help="torch device: cpu, cuda, cuda:N (default: cuda when available, else cpu)")
    p.add_argument("--jobs", "-j", type=int, default=None, help="CPU threads (default: torch's)")
    p.add_argument("--batch", type=int, default=4, help="chunks separated together (default 4)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--int24", action="store_true", help="write 24-bit PCM WAV")
    fmt.add_argument("--int16", "--pcm16", dest="int16", action="store_true", help="write 16-bit PCM")
    p.add_argument("--flac", action="store_true", help="write FLAC (24-bit, or 16-bit with --int16)")
    p.add_argument("--strict", action="store_true",
                   help="fail on a WAV holding fewer frames than its header says (default: warn)")
    p.add_argument("--export", metavar="FILE", help="also save the separator as one .safetensors file")
    p.add_argument("--merge-lora", action="store_true",
                   help="fold a LoRA host's update into its weights first (the model, and an --export file, then "
                        "hold no LoRA modules; outputs unchanged)")
    p.add_argument("--keep-going", action="store_true", help="skip inputs that fail instead of stopping")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def _check(args: argparse.Namespace) -> None:
    from ..errors import ConfigError
    from ..fsutil import check_finite_option
    if args.overlap is not None:
        check_finite_option(args.overlap, "--overlap", minimum=0.0)
        if args.overlap >= 1:
            raise ConfigError(f"--overlap must be in [0, 1), got {args.overlap}")
    if args.chunk_seconds is not None and args.segment is not None:
        raise ConfigError("--segment is the old name of --chunk-seconds: pass one of them")
    for opt, v in (("--chunk-seconds", args.chunk_seconds), ("--segment", args.segment)):
        if v is not None:
            check_finite_option(v, opt, positive=True)
    if args.chunk_seconds is not None:
        args.segment = args.chunk_seconds
    if args.stems is not None and not args.stems:
        raise ConfigError("--stems needs at least one stem name (comma-separated)")
    for opt, v in (("--shifts", args.shifts), ("--jobs", args.jobs), ("--batch", args.batch)):
        if v is not None and v < (0 if opt == "--shifts" else 1):
            raise ConfigError(f"{opt} must be {'>= 0' if opt == '--shifts' else 'positive'}, got {v}")


def run(args: argparse.Namespace) -> int:
    import torch

    from .. import audio
    from ..fsutil import output_dir, unique_output_names
    from ..lora import merge_lora
    from ..recipes.separation.inference import Separator
    from ..training.device import resolve_device

    _check(args)
    ext, subtype = audio.output_format(flac=args.flac, int24=args.int24, int16=args.int16)
    device = resolve_device(args.device)  # ConfigError (one line) for a device this machine lacks
    if args.jobs and device.type == "cpu":
        torch.set_num_threads(args.jobs)
    files = audio.list_audio_files(args.inputs)  # AudioError for missing inputs / empty folders
    if args.export:
        check_export(args.export)                 # a folder, a read-only place, not .safetensors: one line
    names = unique_output_names(files, args.inputs)
    # an existing file / read-only folder: one line; a folder made here and left empty is removed again
    with output_dir(args.output, "-o") as out:
        sep = Separator.load(args.model, overlap=args.overlap, device=device, batch_size=args.batch,
                             segment=args.segment, tta=args.tta, checkpoint=args.checkpoint,
                             model_type=args.model_type)
        sep.stem_names(args.two_stems, args.stems)   # an unknown --two-stems / --stems: one line, before any work
        if args.merge_lora:
            merge_lora(sep.model)
        if args.export:
            print(f"saved separator to {sep.save(args.export)}")
        kind = "boosted " if sep.boosted else ""
        print(f"{kind}{sep.meta['host']['name']} -> {', '.join(sep.sources)} at {sep.sample_rate} Hz, "
              f"chunks of {sep.segment / sep.sample_rate:g} s overlapping {sep.overlap:g}"
              f"{', tta' if sep.tta else ''}, {len(names)} file(s) on {device}", file=sys.stderr)

        def work(f, name):
            paths = sep.separate_file(f, out, progress=not args.no_progress, subtype=subtype, ext=ext, name=name,
                                      two_stems=args.two_stems, shifts=args.shifts, stems=args.stems)
            return Path(next(iter(paths.values()))).parent, ""

        with audio.strict_audio(args.strict):
            return run_each_input(names, args.keep_going, work)
