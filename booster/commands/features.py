"""``booster features IN... --checkpoint SRC --layers 4,8,12 -o DIR``: one feature file per input."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import BoosterError, ConfigError


def add_parser(sub) -> None:
    p = sub.add_parser("features", help="extract MuQ features from audio files",
                       description="Extract MuQ hidden states from audio files (folders are walked). "
                                   "Writes OUT/<name>.safetensors per input with hidden [L, T, D] and "
                                   "metadata (layers, frame rate, backbone identity, source hash).")
    p.add_argument("inputs", nargs="+", help="audio files or folders")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--checkpoint", default="debug",
                   help="MuQ checkpoint: a local directory in the official layout, a hub id such as "
                        "OpenMuQ/MuQ-large-msd-iter, or 'debug' for the tiny built-in model (default)")
    p.add_argument("--layers", default="4,8,12", help="hidden-state indices, comma separated (default 4,8,12)")
    p.add_argument("--fp16", action="store_true", help="store features as float16")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="compute precision")
    p.add_argument("--window", type=float, default=30.0, help="window length in seconds (default 30)")
    p.add_argument("--overlap", type=float, default=5.0, help="window overlap in seconds (default 5)")
    p.add_argument("--overwrite", action="store_true", help="recompute files that already exist")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)


def output_name(path: Path, roots: list[Path]) -> Path:
    """Relative output path: keeps sub-folders of a walked input folder so names cannot collide."""
    for root in roots:
        if root.is_dir():
            try:
                return path.relative_to(root).with_suffix(".safetensors")
            except ValueError:
                continue
    return Path(path.stem + ".safetensors")


def run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from ..audio import list_audio_files
    from ..cache import file_hash, save_features
    from ..muq import load_backbone
    from ..muq.extract import extract_file, resolve_layers

    files = list_audio_files(args.inputs)
    muq = load_backbone(args.checkpoint)
    try:
        layers = resolve_layers(args.layers, muq.num_layers)
    except ValueError as e:
        raise ConfigError(f"--layers {args.layers!r}: {e}") from None
    out_dir = Path(args.output)
    roots = [Path(i) for i in args.inputs]
    failures, written, skipped = [], 0, 0
    bar = tqdm(files, desc="features", unit="file", disable=args.no_progress)
    for path in bar:
        target = out_dir / output_name(path, roots)
        if target.exists() and not args.overwrite:
            skipped += 1
            continue
        try:
            feats = extract_file(muq, path, layers, window=args.window, overlap=args.overlap,
                                 precision=args.precision, progress=False)
            save_features(target, feats, dtype="float16" if args.fp16 else "float32",
                          meta={"backbone": muq.identity, "source": str(path),
                                "source_sha256": file_hash(path), "window": args.window,
                                "overlap": args.overlap, "precision": args.precision})
            written += 1
        except BoosterError as e:
            failures.append(f"{path}: {e}")
    bar.close()
    print(f"MuQ {muq.name} (D={muq.hidden_size}, layers {list(layers)}): wrote {written} feature file(s) "
          f"to {out_dir}" + (f", skipped {skipped} existing" if skipped else ""))
    if failures:
        print(f"{len(failures)} input(s) failed:", file=sys.stderr)
        for f in failures:
            print(f"  {f}", file=sys.stderr)
        return 1
    return 0
