"""Models of ZFTurbo's Music-Source-Separation-Training (MSST): a YAML config + a checkpoint -> a kit host.

:func:`load_msst` reads an MSST config (``audio:``, ``model:``, ``training:``, ``inference:`` sections) with a
safe YAML loader that maps ``!!python/tuple`` to a tuple (every other Python tag is refused: MSST itself reads
these files with PyYAML's FullLoader), builds the host of the config's model type in MSST's weight layout
(``layout="msst"`` of the ``bs_roformer`` / ``mel_band_roformer`` plug-ins; the MSST model-type names are the
plug-in names) and loads the checkpoint with a strict key and shape check. What it maps:

* ``model:`` -> the host's keyword arguments (``stereo`` -> channels, ``num_stems`` checked against the sources);
  an option the host does not know or cannot honour is one :class:`ConfigError` line naming it;
* ``audio:`` ``sample_rate``, ``chunk_size`` (the training chunk, samples), ``num_channels`` (checked);
* ``training:`` ``instruments`` / ``target_instrument`` -> the sources (MSST's ``prefer_target_instrument``),
  ``model_type`` (MSST's override of ``--model_type``);
* ``inference:`` ``num_overlap`` N -> overlap ``1 - 1/N`` (MSST steps by ``chunk_size // N``), ``chunk_size``
  (overrides the audio one, as MSST's ``demix`` does).

This module is core (it imports no kit module): :func:`build_msst` returns the host and its task fields;
:func:`booster.training.msst.load_msst` adds the kit's model description (``meta``), whose ``segment`` is the
chunk in seconds and ``overlap`` the fraction above, so ``save_model(path, model, meta)`` writes a separator
file that ``booster separate --model`` takes. :func:`load_exact` is the strict loader the plug-ins share.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .errors import CheckpointError, ConfigError

TYPES = ("bs_roformer", "mel_band_roformer")
TASK = "separation"


def _yaml_loader():
    import yaml

    class MSSTLoader(yaml.SafeLoader):
        """SafeLoader + ``!!python/tuple`` (a sequence read as a tuple); nothing else beyond safe YAML."""

    def tuple_node(loader, node):
        return tuple(loader.construct_sequence(node, deep=True))
    MSSTLoader.add_constructor("tag:yaml.org,2002:python/tuple", tuple_node)
    return MSSTLoader


def read_config(path: str | Path) -> dict:
    """The MSST config at ``path`` as a dict (one :class:`ConfigError` line for a missing file, bad YAML, a
    refused tag or a file without a ``model:`` mapping)."""
    import yaml
    p = Path(path).expanduser()
    where = f"MSST config {str(p)!r}"
    if not p.is_file():
        raise ConfigError(f"{where} does not exist" if not p.exists() else f"{where} is not a file")
    try:
        cfg = yaml.load(p.read_text(encoding="utf-8"), Loader=_yaml_loader())   # noqa: S506 (a SafeLoader)
    except yaml.constructor.ConstructorError as e:
        raise ConfigError(f"{where} uses a YAML tag a safe loader refuses ({e.problem}); only !!python/tuple "
                          "is read") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"{where} is not valid YAML: {first}") from None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("model"), dict):
        raise ConfigError(f"{where} is not an MSST config: it has no 'model:' section")
    for section in ("audio", "training", "inference"):
        if cfg.get(section) is not None and not isinstance(cfg[section], dict):
            raise ConfigError(f"{where}: '{section}:' must be a mapping, got {type(cfg[section]).__name__}")
    return cfg


def detect_type(cfg: dict, given: str | None = None) -> str:
    """``training.model_type`` when the config names one, else ``given``, else told by the model's keys."""
    named = (cfg.get("training") or {}).get("model_type")
    if named and given and named != given:
        raise ConfigError(f"--type {given} contradicts the config's training.model_type {named!r}")
    kind = named or given
    if kind is None:
        model = cfg["model"]
        if "num_bands" in model and "freqs_per_bands" not in model:
            kind = "mel_band_roformer"
        elif "freqs_per_bands" in model and "num_bands" not in model:
            kind = "bs_roformer"
        else:
            raise ConfigError("cannot tell the MSST model type from the config; pass --type "
                              f"{'|'.join(TYPES)}")
    if kind not in TYPES:
        raise ConfigError(f"MSST model type {kind!r} is not supported; supported: {', '.join(TYPES)}")
    return kind


def _positive_int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"MSST config: {what} must be a positive integer, got {value!r}")
    return value


def host_arguments(cfg: dict, kind: str) -> tuple[dict, dict]:
    """``(host keyword arguments, task fields)`` of an MSST config for the plug-in ``kind``."""
    model = dict(cfg["model"])
    audio, training, inference = (cfg.get(s) or {} for s in ("audio", "training", "inference"))
    stereo = model.pop("stereo", False)
    if not isinstance(stereo, bool):
        raise ConfigError(f"MSST config: model.stereo must be true or false, got {stereo!r}")
    channels = 2 if stereo else 1
    if "num_channels" in audio and audio["num_channels"] != channels:
        raise ConfigError(f"MSST config: audio.num_channels {audio['num_channels']!r} contradicts model.stereo "
                          f"{str(stereo).lower()} ({channels} channel(s))")
    sample_rate = _positive_int(audio.get("sample_rate", 44100), "audio.sample_rate")
    if "sample_rate" in model and model["sample_rate"] != sample_rate:
        raise ConfigError(f"MSST config: model.sample_rate {model['sample_rate']!r} differs from "
                          f"audio.sample_rate {sample_rate}")
    model.pop("sample_rate", None)
    stems = _positive_int(model.pop("num_stems", 1), "model.num_stems")
    target = training.get("target_instrument")
    sources = [target] if target else list(training.get("instruments") or [])
    if not sources or not all(isinstance(s, str) and s for s in sources):
        raise ConfigError("MSST config: training.instruments (or training.target_instrument) must name the "
                          f"sources, got {sources!r}")
    if len(sources) != stems:
        raise ConfigError(f"MSST config: model.num_stems is {stems} but the sources are {sources} "
                          "(training.target_instrument, else training.instruments)")
    chunk = _positive_int(inference.get("chunk_size", audio.get("chunk_size")), "audio.chunk_size")
    overlaps = _positive_int(inference.get("num_overlap", 4), "inference.num_overlap")
    host = dict(model, sources=sources, sample_rate=sample_rate, channels=channels, layout="msst")
    task = dict(sources=sources, sample_rate=sample_rate, channels=channels, segment=chunk / sample_rate,
                overlap=1.0 - 1.0 / overlaps, chunk_samples=chunk, msst_num_overlap=overlaps)
    return host, task


def read_state(path: str | Path) -> dict:
    """The tensors of an MSST checkpoint (``.ckpt``/``.pth``/``.pt`` read with ``weights_only=True``, or
    ``.safetensors``), unwrapped from ``state`` / ``state_dict`` / ``model_state_dict`` (MSST's own
    unwrapping) and from ``module.`` (DataParallel) or ``_orig_mod.`` (torch.compile) prefixes."""
    from .filechecks import check_checkpoint_file, check_safetensors_file, torch_load_error
    p = Path(path).expanduser()
    if p.suffix == ".safetensors":
        check_safetensors_file(p, "--checkpoint")
        from safetensors.torch import load_file
        state = load_file(str(p))
    else:
        check_checkpoint_file(p, "--checkpoint")
        try:
            state = torch.load(str(p), map_location="cpu", weights_only=True)
        except Exception as e:
            raise CheckpointError(f"--checkpoint {str(p)!r} cannot be read: {torch_load_error(e)}") from None
    for key in ("state", "state_dict", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not state:
        raise CheckpointError(f"--checkpoint {str(p)!r} holds no state dict")
    for prefix in ("module.", "_orig_mod."):
        if all(isinstance(k, str) and k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def build_msst(config_path: str | Path, checkpoint_path: str | Path, *,
               model_type: str | None = None) -> tuple[str, nn.Module, dict]:
    """``(plug-in name, host in eval mode with the checkpoint's weights, task fields)`` of an MSST pair."""
    from .plugins import load_plugin
    cfg = read_config(config_path)
    kind = detect_type(cfg, model_type)
    host_kw, task = host_arguments(cfg, kind)
    plugin = load_plugin(kind)
    model = plugin.from_architecture(**host_kw)
    state = read_state(checkpoint_path)
    normalise = getattr(plugin, "msst_state", None)      # a plug-in's older key spellings, if it has any
    if normalise is not None:
        state = normalise(model, state)
    load_exact(model, state, f"--checkpoint {str(Path(checkpoint_path))!r} (a {kind} of its config)")
    return kind, model.eval(), task


def load_exact(model: nn.Module, state: dict, what: str) -> None:
    """Load ``state`` into ``model`` only if every key is there with its shape and nothing is left over
    (one :class:`CheckpointError` line naming the first differences; never a partial load)."""
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{what} is not a state dict of tensors")
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)} here" for k, v in own.items()
              if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or shapes:
        parts = [f"{name} {len(v)} ({', '.join(v[:3])}{', ...' if len(v) > 3 else ''})"
                 for name, v in (("missing", missing), ("unexpected", unexpected), ("shape mismatches", shapes))
                 if v]
        raise CheckpointError(f"{what} does not match its architecture: {'; '.join(parts)}")
    model.load_state_dict(state, strict=True)
