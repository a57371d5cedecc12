"""``booster transcribe IN... -o OUT --model CKPT``: transcribe audio files to MIDI.

Inputs are audio files or folders (walked recursively), any format soundfile reads, any sample rate and
channel count (mixed to mono and resampled to the model's rate chunk by chunk: bounded memory on long
files). Writes ``OUT/<name>.mid``; ``--save-notes`` adds ``OUT/<name>.csv`` (onset_s, offset_s, pitch,
velocity), ``--plot`` ``OUT/<name>.png`` (piano roll of the detected notes). ``--model``: a ``.ckpt`` from
``booster fit --config transcription/...`` or a ``.safetensors`` transcriber file (``--export``). A clip
shorter than one model frame is an error (not an empty MIDI); an output folder this command made and left
empty (every input failed) is removed.
"""
from __future__ import annotations

import argparse
import sys

from . import check_export, run_each_input


def add_parser(sub) -> None:
    p = sub.add_parser("transcribe", help="transcribe audio files to MIDI",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", help="audio files or folders")
    p.add_argument("-o", "--output", required=True, help="output folder: OUT/<name>.mid")
    p.add_argument("--model", required=True, help="transcriber: a .ckpt from booster fit or a .safetensors file")
    p.add_argument("--device", default=None,
                   help="torch device: cpu, cuda, cuda:N (default: cuda when available, else cpu)")
    p.add_argument("--save-notes", action="store_true", help="also write OUT/<name>.csv (onset, offset, pitch, velocity)")
    p.add_argument("--plot", action="store_true", help="also write OUT/<name>.png, a piano roll of the notes")
    p.add_argument("--onset-threshold", type=float, default=0.5, help="onset probability threshold (default 0.5)")
    p.add_argument("--frame-threshold", type=float, default=0.5, help="frame probability threshold (default 0.5)")
    p.add_argument("--segment", type=float, default=None,
                   help="chunk length in seconds (default: a boosted model's training segment, so MuQ sees "
                        "the context it was trained with; else the host's)")
    p.add_argument("--overlap", type=float, default=0.25, help="chunk overlap in [0, 1) (default 0.25)")
    p.add_argument("--batch", type=int, default=4, help="chunks processed together (default 4)")
    p.add_argument("--export", metavar="FILE", help="also save the transcriber as one .safetensors file")
    p.add_argument("--keep-going", action="store_true", help="skip unreadable inputs instead of stopping")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..audio import list_audio_files
    from ..errors import ConfigError
    from ..fsutil import output_dir, unique_output_names
    from ..recipes.transcription.inference import Transcriber
    from ..training.device import resolve_device

    if args.segment is not None:
        from ..fsutil import check_finite_option
        check_finite_option(args.segment, "--segment", positive=True)
    for name in ("onset_threshold", "frame_threshold"):
        if not 0 < getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be between 0 and 1, got {getattr(args, name)}")
    device = resolve_device(args.device)
    files = list_audio_files(args.inputs)
    if args.export:
        check_export(args.export)
    names = unique_output_names(files, args.inputs)   # {path: "song" | "song.flac" | "a/song"}
    with output_dir(args.output) as out_dir:           # removed again if nothing is written into it
        tr = Transcriber.load(args.model, device=device, overlap=args.overlap, batch_size=args.batch,
                              segment=args.segment,
                              onset_threshold=args.onset_threshold, frame_threshold=args.frame_threshold)
        if args.export:
            print(f"saved transcriber to {tr.save(args.export)}")
        kind = "boosted " if tr.boosted else ""
        print(f"{kind}{tr.meta['host']['name']} transcriber, pitches {tr.pitch_range[0]}..{tr.pitch_range[1]} at "
              f"{tr.sample_rate} Hz, {len(files)} file(s) on {device}", file=sys.stderr)

        def work(f, name):
            out = tr.transcribe_file(f, out_dir, name=name, save_notes=args.save_notes, plot=args.plot,
                                     progress=not args.no_progress)
            extra = "".join(f", {out[k]}" for k in ("notes_csv", "plot") if k in out)
            return f"{out['midi']}{extra}", f"{len(out['notes'])} notes, "

        return run_each_input(names, args.keep_going, work)

