"""Loading and saving MuQ checkpoints in the official layout.

The official ``MuQ`` module (a ``PyTorchModelHubMixin``) stores ``config.json`` (MuQConfig fields,
``stat``, ``w2v2_config``) and ``model.safetensors`` (or ``pytorch_model.bin``) whose keys start with
``model.``. Training-only tensors are skipped by the explicit list :data:`SKIPPED_KEYS`; every other
missing or unexpected key is an error naming it.
"""
from __future__ import annotations

import contextvars
import difflib
import os
import re
from pathlib import Path
from urllib.parse import urlparse

import torch

from ..errors import CheckpointError
from .config import MuQConfig

# Regular expressions (matched against keys without the "model." prefix) of tensors the official
# state dict carries but the audio encoder never uses.
SKIPPED_KEYS = [
    r"rvq\..+",                          # Mel-RVQ tokeniser (training targets)
    r"quantizer_melspec_2048\..+",       # random-projection quantiser (training targets)
    r"linear\.(weight|bias)",            # codebook logits head (training loss)
    r"cls_token",                        # unused classification token
    r"recon_proj\.(weight|bias)",        # mel reconstruction head (training loss)
    # transformers builds pos_conv_embed but the rotary encoder never calls it; its weight-norm
    # tensors are named weight_g/weight_v (older torch) or parametrizations.weight.original0/1.
    r"conformer\.pos_conv_embed\.conv\.(bias|weight|weight_g|weight_v"
    r"|parametrizations\.weight\.original0|parametrizations\.weight\.original1)",
    r"conformer\.embed_positions\.inv_freq",  # recomputed from the config (checked below)
]
_SKIP = [re.compile(p + r"$") for p in SKIPPED_KEYS]
# BatchNorm's step counter does not affect inference; files saved without it still load.
_OPTIONAL = re.compile(r".*\.num_batches_tracked$")

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read safetensors or a ``weights_only`` torch file (never an arbitrary pickle)."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            return load_file(str(path), device="cpu")
        sd = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        from booster.fsutil import torch_load_error   # never torch's advice to unpickle (weights_only=False)
        raise CheckpointError(f"cannot read weights file {str(path)!r}: {torch_load_error(e)}. "
                              "Is the download complete?") from None
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"{str(path)!r} does not hold a flat state dict of tensors")
    return sd


def convert_state_dict(sd: dict[str, torch.Tensor], model: torch.nn.Module,
                       source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Map an official state dict onto ``model``'s keys; raise naming every bad key or shape."""
    own = model.state_dict()
    out, unexpected, inv_freq = {}, [], None
    for key, value in sd.items():
        k = key[len("model."):] if key.startswith("model.") else key
        if k in own:
            out[k] = value
        elif any(p.match(k) for p in _SKIP):
            if k == "conformer.embed_positions.inv_freq":
                inv_freq = value
        else:
            unexpected.append(key)
    missing = [k for k in own if k not in out and not _OPTIONAL.match(k)]
    problems = []
    if unexpected:
        hints = [f"{k!r}" + _closest(k, own) for k in unexpected[:10]]
        problems.append(f"{len(unexpected)} unexpected key(s): " + ", ".join(hints)
                        + (" ..." if len(unexpected) > 10 else ""))
    if missing:
        problems.append(f"{len(missing)} missing key(s): " + ", ".join(f"'model.{k}'" for k in missing[:10])
                        + (" ..." if len(missing) > 10 else ""))
    if problems:
        raise CheckpointError(f"{source} does not match the MuQ encoder: " + "; ".join(problems))
    bad = [(k, tuple(v.shape), tuple(own[k].shape)) for k, v in out.items() if v.shape != own[k].shape]
    if bad:
        arch = model.config.architecture()
        lines = ", ".join(f"'model.{k}' has shape {a} but config.json implies {b}" for k, a, b in bad[:5])
        raise CheckpointError(
            f"{source}: weights of the wrong size for the architecture in config.json ({arch}): {lines}"
            + (f" (and {len(bad) - 5} more)" if len(bad) > 5 else "")
            + ". The weights and config.json come from different models.")
    if inv_freq is not None:
        _check_inv_freq(inv_freq, model, source)
    for k, v in out.items():
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise CheckpointError(f"{source}: tensor 'model.{k}' contains NaN/Inf values")
    return out


def _check_inv_freq(value, model, source):
    expected = model.conformer.inv_freq
    if value.shape != expected.shape or not torch.allclose(value.float(), expected, rtol=1e-5):
        raise CheckpointError(f"{source}: 'model.conformer.embed_positions.inv_freq' does not match the "
                              "rotary settings in config.json (num_attention_heads / rotary_embedding_base)")


def _closest(key: str, own) -> str:
    k = key[len("model."):] if key.startswith("model.") else key
    close = difflib.get_close_matches(k, list(own), n=1, cutoff=0.8)
    return f" (did you mean 'model.{close[0]}'?)" if close else ""


def load_state_dict(model, sd: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    converted = convert_state_dict(sd, model, source)
    with torch.no_grad():
        own = model.state_dict()
        for k, v in converted.items():
            own[k].copy_(v.to(own[k].dtype))  # bumps each tensor's version: the fingerprint follows


def find_weights(directory: Path) -> Path:
    for name in WEIGHT_FILES:
        if (directory / name).is_file():
            return directory / name
    present = sorted(p.name for p in directory.iterdir())[:20]
    raise CheckpointError(f"checkpoint directory {str(directory)!r} has no weights file "
                          f"({' or '.join(WEIGHT_FILES)}); it contains: {present}")


def load_pretrained(cls, src, revision=None, cache_dir=None, verify_sha256=True):
    from .registry import lookup, shipped_directory, verify_files
    src_str = os.fspath(src)
    entry = lookup(src_str)
    directory = Path(src_str).expanduser()
    if not directory.exists() and entry is not None and entry.local:
        directory = shipped_directory(entry)  # shipped with the toolkit: no network
    if not directory.exists():
        if entry is None and not _looks_like_hub_id(src_str):
            raise CheckpointError(f"checkpoint {src_str!r} is neither an existing directory nor a hub id "
                                  "of the form 'org/name'")
        directory = _download(src_str, entry, revision, cache_dir)
    if not directory.is_dir():
        raise CheckpointError(f"checkpoint {src_str!r} is a file; pass the directory holding config.json "
                              f"and {' or '.join(WEIGHT_FILES)}")
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise CheckpointError(f"checkpoint directory {str(directory)!r} has no config.json; the official "
                              "layout is config.json + model.safetensors (or pytorch_model.bin)")
    config = MuQConfig.from_json(config_path)
    weights = find_weights(directory)
    if entry is not None:
        entry.check_architecture(config, str(config_path))
        if verify_sha256:
            verify_files(entry, directory)
    model = cls(config)
    load_state_dict(model, read_state_dict(weights), source=f"weights {str(weights)!r}")
    model.name = entry.id if entry is not None else directory.name
    model.requires_grad_(False)
    return model.eval()


def _looks_like_hub_id(s: str) -> bool:
    return re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", s) is not None


#: How the running command takes a local MuQ folder (set by ``booster.cli`` from the command's
#: ``backbone_option`` default, e.g. ``--checkpoint DIR`` for ``booster features``); None: the Python API.
BACKBONE_OPTION: contextvars.ContextVar[str | None] = contextvars.ContextVar("backbone_option", default=None)


def _download(repo_id, entry, revision, cache_dir) -> Path:
    """A hub checkpoint: from the Hugging Face cache without network when it is there; else one short
    reachability check, so an offline machine fails at once (no retries) with what to do instead."""
    from huggingface_hub import constants, snapshot_download

    from ..hub import reachable
    files = list(entry.files) if entry is not None else ["config.json", "model.safetensors"]
    option = BACKBONE_OPTION.get() or "MuQ.from_pretrained('DIR')"
    how = (f"Download it where you have network access (`huggingface-cli download {repo_id} --local-dir DIR`) "
           f"and pass that folder instead of the id ({option}), or copy the "
           "Hugging Face cache ($HF_HOME) that holds it to this machine.")
    patterns = dict(revision=revision, cache_dir=cache_dir, allow_patterns=files + ["pytorch_model.bin"])
    try:
        return Path(snapshot_download(repo_id, local_files_only=True, **patterns))
    except Exception:
        pass  # not cached here
    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    if constants.HF_HUB_OFFLINE or not reachable(host):
        why = "HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else f"{host} cannot be reached"
        raise CheckpointError(f"checkpoint {repo_id!r} is not in the Hugging Face cache and {why}. " + how)
    try:
        path = snapshot_download(repo_id, **patterns)
    except Exception as e:
        raise CheckpointError(f"could not fetch checkpoint {repo_id!r} from the Hugging Face hub "
                              f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'offline?'}). "
                              + how) from None
    return Path(path)


def save_pretrained(model, directory) -> None:
    from safetensors.torch import save_file
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.config.save_json(directory / "config.json")
    sd = {f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    from ..fsutil import atomic_path
    with atomic_path(directory / "model.safetensors") as tmp:
        save_file(sd, str(tmp), metadata={"format": "pt"})
