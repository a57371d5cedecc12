"""``booster features IN... --checkpoint SRC --layers 4,8,12 -o DIR``: one feature file per input.

Reruns are verified: an existing output file is reused only when it loads, its checksum verifies and
its settings (layers, storage dtype, precision, window, overlap, backbone identity) and source-audio
hash match this run; otherwise it is recomputed, or, with ``--no-overwrite``, the run stops before
computing anything. Output names are unique per input (:func:`booster.fsutil.unique_output_names`).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import BoosterError, ConfigError


def add_parser(sub) -> None:
    p = sub.add_parser("features", help="extract MuQ features from audio files",
                       description="Extract MuQ hidden states from audio files (folders are walked). "
                                   "Writes OUT/<name>.safetensors per input with hidden [L, T, D] and "
                                   "metadata (layers, frame rate, backbone identity, source hash). Names "
                                   "are unique: inputs sharing a stem keep their extension and folders "
                                   "(song.wav.safetensors, a/song.safetensors). A rerun reuses a file only "
                                   "when its settings and source audio match, else recomputes it.")
    p.add_argument("inputs", nargs="+", help="audio files or folders")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--checkpoint", default="debug",
                   help="MuQ checkpoint: a local directory in the official layout, a hub id such as "
                        "OpenMuQ/MuQ-large-msd-iter, muq-mini, or 'debug' for the tiny built-in model (default)")
    p.add_argument("--layers", default=None,
                   help="hidden-state indices, comma separated (default: thirds of the depth, 4,8,12 for 12 layers)")
    p.add_argument("--fp16", action="store_true", help="store features as float16")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="compute precision")
    p.add_argument("--window", type=float, default=30.0, help="window length in seconds (default 30)")
    p.add_argument("--overlap", type=float, default=5.0, help="window overlap in seconds (default 5)")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    again = p.add_mutually_exclusive_group()
    again.add_argument("--overwrite", action="store_true", help="recompute every output, even matching ones")
    again.add_argument("--no-overwrite", action="store_true",
                       help="never replace an existing file: stop if one does not match this run's settings")
    p.add_argument("--strict", action="store_true",
                   help="fail on a truncated audio file (fewer frames than its header says) instead of warning")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run, backbone_option="--checkpoint DIR")


def run(args: argparse.Namespace) -> int:
    from ..audio import list_audio_files
    from ..fsutil import check_finite_option, output_dir

    check_finite_option(args.window, "--window", positive=True)
    check_finite_option(args.overlap, "--overlap", minimum=0.0)
    if args.overlap >= args.window:
        raise ConfigError(f"--overlap ({args.overlap:g} s) must be shorter than --window ({args.window:g} s)")
    files = list_audio_files(args.inputs)
    with output_dir(args.output) as out_dir:     # removed again if nothing is written into it
        return _run(args, files, out_dir)


def _run(args: argparse.Namespace, files: list, out_dir: Path) -> int:
    from tqdm.auto import tqdm

    from ..audio import strict_audio
    from ..backbone import identity, load_backbone, resolve_layers
    from ..cache import check_feature_file, file_hash, save_features
    from ..fsutil import unique_output_names
    from ..training.device import resolve_device

    device = resolve_device(args.device)
    muq = load_backbone(args.checkpoint).to(device)
    try:
        layers = resolve_layers(muq, args.layers if args.layers is not None else default_layers(muq.num_layers))
    except ValueError as e:
        raise ConfigError(f"--layers {args.layers!r}: {e}") from None
    settings = {"layers": list(layers), "dtype": "float16" if args.fp16 else "float32",
                "precision": args.precision, "window": args.window, "overlap": args.overlap,
                "backbone": identity(muq)}
    names = unique_output_names(files, args.inputs)
    targets = {f: out_dir / f"{name}.safetensors" for f, name in names.items()}

    failures, plan = [], []
    for f, target in targets.items():  # verify what is on disk before computing anything
        try:
            want = dict(settings, source_sha256=file_hash(f))
        except OSError as e:
            failures.append(f"{f}: cannot read ({e.strerror or e})")
            continue
        why = None if args.overwrite or not target.exists() else check_feature_file(target, want)
        if target.exists() and why is None and not args.overwrite:
            plan.append((f, target, want, "reuse"))
        else:
            plan.append((f, target, want, why if target.exists() else "new"))
    others = _other_settings(out_dir, set(targets.values()), settings)
    if args.no_overwrite:
        stale = [(t, why) for _, t, _, why in plan if why not in ("reuse", "new")]
        if stale or others:
            t, why = (stale or others)[0]
            raise ConfigError(f"--no-overwrite: {t} exists and does not match this run ({why}); "
                              f"{len(stale) + len(others)} file(s) in {str(out_dir)!r} differ. Rerun without "
                              "--no-overwrite to recompute them, or choose another -o folder")

    written, reused, replaced = 0, 0, []
    bar = tqdm(plan, desc="features", unit="file", disable=args.no_progress)
    with strict_audio(args.strict):
        for f, target, want, why in bar:
            if why == "reuse":
                reused += 1
                continue
            try:
                feats = _extract(muq, f, layers, args)
                save_features(target, feats, dtype=settings["dtype"],
                              meta={"source": str(f), **{k: v for k, v in want.items() if k != "layers"}})
                written += 1
                if why != "new":
                    replaced.append(f"{target.relative_to(out_dir)} ({why})")
            except BoosterError as e:
                failures.append(f"{f}: {e}")
            except OSError as e:
                failures.append(f"{f}: cannot write {str(target)!r}: {e.strerror or e}")
    bar.close()
    print(f"{settings['backbone']['name']} (D={muq.hidden_size}, layers {list(layers)}, {device}): wrote {written} feature "
          f"file(s) to {out_dir}" + (f", reused {reused} verified existing" if reused else ""))
    if replaced:
        print(f"recomputed {len(replaced)} existing file(s): " + "; ".join(replaced[:3])
              + (" ..." if len(replaced) > 3 else ""), file=sys.stderr)
    if others:
        print(f"warning: {len(others)} other feature file(s) in {out_dir} were made with other settings, e.g. "
              f"{others[0][0]} ({others[0][1]}); keep one setting per folder", file=sys.stderr)
    if failures:
        print(f"{len(failures)} input(s) failed:", file=sys.stderr)
        for f in failures:
            print(f"  {f}", file=sys.stderr)
        return 1
    return 0


def default_layers(depth: int) -> list[int]:
    """Thirds of the depth: ``[4, 8, 12]`` for 12 layers, ``[1, 3, 4]`` for 4."""
    return sorted({max(1, round(depth / 3)), max(1, round(2 * depth / 3)), depth})


def _extract(muq, path, layers, args):
    import warnings

    from ..audio import TruncatedAudioWarning
    from ..backbone import extract_file

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TruncatedAudioWarning)
        # the backbone's own extract_file (MuQ: window by window) or one pass; options where it takes them
        feats = extract_file(muq, path, layers, window=args.window, overlap=args.overlap,
                             precision=args.precision, progress=False)
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    return feats


def _other_settings(out_dir: Path, targets: set[Path], settings: dict) -> list[tuple[Path, str]]:
    """Feature files in ``out_dir`` that this run does not write and whose settings (other than the
    source) differ from ``settings``: a folder must not silently mix settings."""
    import json

    from safetensors import safe_open

    from ..cache import describe_difference

    found = []
    for p in sorted(out_dir.rglob("*.safetensors")):
        if p in targets:
            continue
        try:
            with safe_open(str(p), framework="pt") as f:
                meta = json.loads((f.metadata() or {}).get("booster") or "null")
        except Exception:  # not a feature file of ours: not our business
            continue
        if isinstance(meta, dict) and "format_version" in meta:
            diff = describe_difference(meta, dict(settings, source_sha256=meta.get("source_sha256")))
            if diff:
                found.append((p, diff))
    return found
