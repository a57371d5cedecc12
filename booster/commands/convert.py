"""booster convert msst --config C.yaml --checkpoint M.ckpt -o host.safetensors: import a model trained elsewhere.

``msst``: a BS-RoFormer or Mel-Band-RoFormer of ZFTurbo's Music-Source-Separation-Training (its YAML config +
its checkpoint) becomes the toolkit's own separator file: host preset + JSON keyword arguments + weights, the
chunk length (audio.chunk_size) and overlap (1 - 1/inference.num_overlap) of the config. Every command that
takes a model takes that file: `booster separate song.wav --model host.safetensors`, `booster fit --config
separation/bs_roformer_boosted --model.pretrained host.safetensors --data.root MY_STEMS`. The model type is the
config's training.model_type, else told by its keys (freqs_per_bands: bs_roformer, num_bands:
mel_band_roformer), or --type. An option the host cannot honour, or a checkpoint that does not match its
config, is one error line; nothing is written then.
"""
from __future__ import annotations

import argparse
import sys

TYPES = ("bs_roformer", "mel_band_roformer")


def add_parser(sub) -> None:
    p = sub.add_parser("convert", help="import a model trained elsewhere (MSST) as a separator file",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", choices=["msst"], help="where the model comes from: msst")
    p.add_argument("--config", required=True, help="the model's MSST YAML config")
    p.add_argument("--checkpoint", required=True, help="its weights (.ckpt/.pth read with weights_only, or .safetensors)")
    p.add_argument("-o", "--output", required=True, help="the separator file to write (.safetensors)")
    p.add_argument("--type", choices=TYPES, default=None,
                   help="model type (default: the config's training.model_type, else told by its model keys)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..errors import ConfigError
    from ..fsutil import check_output_file
    from ..training.checkpoint import save_model
    from ..training.msst import load_msst

    out = Path(args.output)
    if out.suffix != ".safetensors":
        raise ConfigError(f"-o {args.output!r}: the separator is saved as one .safetensors file; give a path "
                          f"ending in .safetensors, e.g. {str(out.with_suffix('.safetensors'))!r}")
    check_output_file(out, "-o")        # before the (possibly large) checkpoint is read
    model, meta = load_msst(args.config, args.checkpoint, model_type=args.type)
    save_model(out, model, meta)
    n = sum(p.numel() for p in model.parameters())
    print(f"{meta['host']['name']} ({n / 1e6:.1f} M parameters) -> {', '.join(meta['sources'])} at "
          f"{meta['sample_rate']} Hz, {meta['channels']} channel(s), chunk {meta['segment']:.2f} s, overlap "
          f"{meta['overlap']:.2f}: {out}", file=sys.stderr)
    return 0
