"""Separating tracks with a trained (or published) separator, on the kit's chunked inference.

:class:`Separator` is a :class:`booster.training.ChunkedInference` over waveforms (``hop=1``) plus what
separation needs: sources, files in and stems out. A boosted separator's backbone features come from each
chunk's own audio at the model's rate, as in training (the kit's context policy,
:mod:`booster.training.inference`); chunks default to the training segment. Files are read and written chunk
by chunk (bounded memory).

Saved separators are one ``.safetensors`` file (host + adapter weights and the kit's model description,
``booster.training.checkpoint``); recipe ``.ckpt`` files load too (``weights_only=True``).
Shapes: mixture ``[C, S]``, estimates ``[N, C, S]`` (C channels, S samples, N sources).
"""
from __future__ import annotations

from pathlib import Path

import torch

from booster.audio import FileReader
from booster.errors import CheckpointError
from booster.training import boosting
from booster.training.checkpoint import FORMAT_VERSION, build_from_meta, describe, load_model, save_model  # noqa: F401
from booster.training.hosts import HostSpec, available_hosts, chunk_seconds, load_plugin
from booster.training.inference import ChunkedInference, inference_segment

TASK = "separation"
PUBLISHED_HOST = "htdemucs"   # the host whose published names `--model NAME` means (e.g. htdemucs)


class Separator(ChunkedInference):
    def __init__(self, model: torch.nn.Module, meta: dict, *, overlap: float | None = None, batch_size: int = 4,
                 cache=None, segment: float | None = None, tta: bool = False, **options):
        self.meta = meta
        self.sources = list(meta["sources"])
        host = boosting.host_of(model)
        segment = segment or inference_segment(model, meta, chunk_seconds(meta["host"]["name"], host,
                                                                          meta.get("segment", 10.0)))
        chunking = model_chunking(meta)
        if chunking["mode"] == "msst" and "chunking" not in options:   # MSST's demix; --overlap X: its step
            options.update(chunking="msst", num_overlap=chunking["num_overlap"] if overlap is None else None)
        overlap = default_overlap(meta) if overlap is None else overlap
        super().__init__(model, sample_rate=int(meta["sample_rate"]), channels=int(meta["channels"]),
                         segment=segment, overlap=overlap, batch_size=batch_size, cache=cache, **options)
        self.segment_seconds = segment
        self.tta = bool(tta)
        if self.tta:
            self.forward = tta_forward(self.forward)

    def stem_names(self, two_stems: str | None = None, stems: list[str] | None = None) -> list[str]:
        """The stems a file gives: the model's sources, or ``[S, no_S]`` with ``two_stems`` S; ``stems``
        keeps a subset of those (in the order given). An unknown name: one line naming the choices."""
        from booster.errors import ConfigError
        if two_stems is not None and two_stems not in self.sources:
            raise ConfigError(f"--two-stems {two_stems!r} is not a source of this model ({', '.join(self.sources)})")
        names = [two_stems, f"no_{two_stems}"] if two_stems else list(self.sources)
        if stems is None:
            return names
        if not stems:
            raise ConfigError("--stems needs at least one stem name (comma-separated)")
        bad = [s for s in stems if s not in names]
        if bad:
            raise ConfigError(f"--stems {','.join(bad)}: not a stem of this model; its stems are {', '.join(names)}")
        return list(dict.fromkeys(stems))

    def separate_tensor(self, mix: torch.Tensor, *, features=None, cached: bool = False,
                        progress: bool = False) -> torch.Tensor:
        """``mix`` ``[C, S]`` at ``sample_rate`` → ``[N, C, S]`` on ``mix``'s device. ``features``:
        precomputed track features (else each chunk's own; through the cache with ``cached``)."""
        return self(mix, features=features, cached=cached, progress=progress)

    def separate_file(self, path: str | Path, out_dir: str | Path, *, progress: bool = False,
                      subtype: str = "FLOAT", name: str | None = None, ext: str = ".wav",
                      two_stems: str | None = None, shifts: int = 0, seed: int = 0,
                      stems: list[str] | None = None) -> dict[str, Path]:
        """Separate an audio file (any rate / channel count) into ``out_dir/<name>/<source><ext>``
        (``name``: default the file name without extension) at the model's rate and channel count;
        returns ``{stem: path}``. Nothing is written for a file that fails: stems go to temporary files in
        ``out_dir`` and move into ``<name>/`` only when the whole track succeeded.

        ``ext`` ".wav" or ".flac" with a soundfile ``subtype`` (FLOAT, PCM_24, PCM_16). ``two_stems``: write
        that source and ``no_<source>`` (the sum of the others; for a one-source model the mixture minus it).
        ``shifts`` N > 0: demucs' random-shift trick, N passes on the input delayed by offsets drawn in
        [0, 0.5 s) from a generator seeded by ``seed``, shifted back and averaged (holds the estimates of
        the track in memory). ``stems``: write only these of the stems above (:meth:`stem_names`).
        Test-time augmentation (``tta``) is per chunk."""
        import numpy as np
        import soundfile as sf

        from booster.fsutil import temp_name

        every = self.stem_names(two_stems)
        stems = self.stem_names(two_stems, stems)
        keep = [every.index(s) for s in stems]
        reader = FileReader(path, self.sample_rate, self.channels)
        features = self.track_features(path) if not shifts else None
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        folder = out_dir / (name or Path(path).stem)
        tmps = {s: temp_name(out_dir / f"{s}{ext}") for s in stems}
        fmt = "FLAC" if ext == ".flac" else "WAV"
        files, written = {}, [0]     # written: samples emitted so far

        def emit(block: torch.Tensor) -> None:   # block [N, C, T]
            if two_stems:
                j = self.sources.index(two_stems)
                if len(self.sources) == 1:        # one source (MSST's target_instrument): the rest of the mix
                    rest = reader(written[0], block.shape[-1]).to(block) - block[j]
                else:
                    rest = block.sum(0) - block[j]
                written[0] += block.shape[-1]
                block = torch.stack([block[j], rest])
            data = block[keep].cpu().float().numpy()
            if not np.isfinite(data).all():
                from booster.errors import AudioError
                raise AudioError(f"the separator produced non-finite samples for {str(path)!r}")
            if subtype != "FLOAT":
                data = np.clip(data, -1.0, 1.0)
            for k, s in enumerate(stems):
                files[s].write(data[k].T)

        try:
            for s in stems:
                files[s] = sf.SoundFile(str(tmps[s]), "w", self.sample_rate, self.channels, subtype=subtype,
                                        format=fmt)
            if shifts:
                emit(self._shifted(reader, shifts, seed, progress, Path(path).name))
            else:
                self.stream(reader, reader.length, emit, features=features, progress=progress,
                            desc=Path(path).name)
            for f in files.values():
                f.close()
            folder.mkdir(parents=True, exist_ok=True)
            paths = {s: folder / f"{s}{ext}" for s in stems}
            for s in stems:
                tmps[s].replace(paths[s])
        except BaseException:
            for f in files.values():
                f.close()
            for t in tmps.values():
                t.unlink(missing_ok=True)
            raise
        return paths

    def _shifted(self, reader, shifts: int, seed: int, progress: bool, desc: str) -> torch.Tensor:
        """Average of ``shifts`` passes over the input delayed by random offsets in [0, 0.5 s) -> ``[N, C, S]``."""
        length = reader.length
        g = torch.Generator().manual_seed(int(seed))
        total = None
        for _ in range(int(shifts)):
            d = int(torch.randint(0, max(1, self.sample_rate // 2), (1,), generator=g))

            def read(first: int, count: int, d=d) -> torch.Tensor:   # the input delayed by d samples
                lo = first - d
                if lo >= 0:
                    return reader(lo, count)
                head = torch.zeros(self.channels, min(count, -lo))
                rest = reader(0, count + lo) if count + lo > 0 else head[:, :0]
                return torch.cat([head, rest.to(head.dtype)], -1)

            blocks = []
            self.stream(read, length + d, lambda b: blocks.append(b.cpu().float()), progress=progress, desc=desc)
            est = torch.cat(blocks, -1)[..., d:d + length]    # shifted back: [N, C, S]
            total = est if total is None else total + est
        return total / int(shifts)

    # ---- persistence -----------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write host + adapter weights and the description to one ``.safetensors`` file."""
        return save_model(path, self.model, self.meta)

    @classmethod
    def load(cls, src: str | Path, *, overlap: float | None = None, device="cpu", batch_size: int = 4,
             segment: float | None = None, tta: bool = False, checkpoint: str | Path | None = None,
             model_type: str | None = None, **options) -> "Separator":
        """From a ``.safetensors`` separator file, a recipe ``.ckpt``, a published model name, or an MSST
        config (``.yaml``) with its ``checkpoint`` (:func:`booster.training.msst.load_msst`; ``model_type``
        bs_roformer | mel_band_roformer, default the config's); ``segment``: chunk length in seconds
        (default: :func:`inference_segment`); ``overlap``: default :func:`default_overlap`; ``tta``: see
        :func:`tta_forward`; ``options``: the kit's ``context`` / ``feature_dtype``."""
        p = Path(src).expanduser()
        if p.suffix in MSST_CONFIG_SUFFIXES or checkpoint is not None or model_type is not None:
            model, meta = _msst(p, checkpoint, model_type)
            return cls(model.to(device).eval(), meta, overlap=overlap, batch_size=batch_size, segment=segment,
                       tta=tta, **options)
        if p.exists() and p.suffix not in (".ckpt", ".safetensors"):   # (a .ckpt is checked when it is read)
            from booster.fsutil import check_checkpoint_file
            check_checkpoint_file(p, "--model")     # empty / truncated / not a checkpoint: one line
        if p.suffix in (".ckpt", ".safetensors") or p.exists():
            model, meta = load_model(p, task=TASK, device=device, option="--model")
        else:
            model, meta = _published(str(src))
            model = model.to(device).eval()
        return cls(model, meta, overlap=overlap, batch_size=batch_size, segment=segment, tta=tta, **options)


DEFAULT_OVERLAP = 0.25
MSST_CONFIG_SUFFIXES = (".yaml", ".yml")


def _msst(config: Path, checkpoint, model_type: str | None) -> tuple[torch.nn.Module, dict]:
    """An MSST config + checkpoint pair as ``(host, meta)``; a half pair is one line."""
    from booster.errors import ConfigError
    if config.suffix not in MSST_CONFIG_SUFFIXES:
        given = "--checkpoint" if checkpoint is not None else "--type"
        raise ConfigError(f"{given} goes with --model CONFIG.yaml (an MSST config); {str(config)!r} is not a "
                          ".yaml file (a booster model file or .ckpt from `booster fit` is --model alone)")
    if checkpoint is None:
        raise ConfigError(f"--model {str(config)!r} is an MSST config: pass its weights with --checkpoint MODEL.ckpt")
    from booster.training.msst import load_msst
    model, meta = load_msst(config, checkpoint, model_type=model_type)
    return model, meta


def default_overlap(meta: dict) -> float:
    """Chunk overlap in [0, 1): the model's recorded ``meta["overlap"]`` (a converted MSST model records
    its ``inference.num_overlap`` N as ``1 - 1/N``), else :data:`DEFAULT_OVERLAP`."""
    import math
    value = meta.get("overlap")
    if value is None:
        return DEFAULT_OVERLAP
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value)
                                                                              and 0 <= value < 1):
        raise CheckpointError(f"the model's recorded overlap must be a number in [0, 1), got {value!r}; "
                              "pass --overlap")
    return float(value)


def model_chunking(meta: dict) -> dict:
    """The chunking a model records (``meta["chunking"]``, written by ``booster convert msst``): ``{"mode":
    "msst", "num_overlap": N}`` (MSST's ``demix``), else ``{"mode": "kit"}`` (the kit's cross-fade)."""
    value = meta.get("chunking")
    if value is None:
        return {"mode": "kit"}
    n = value.get("num_overlap") if isinstance(value, dict) else None
    if not isinstance(value, dict) or value.get("mode") not in ("kit", "msst") or (
            value["mode"] == "msst" and (isinstance(n, bool) or not isinstance(n, int) or n < 1)):
        raise CheckpointError(f"the model's recorded chunking must be {{'mode': 'kit'}} or {{'mode': 'msst', "
                              f"'num_overlap': N}} (N a positive whole number), got {value!r}")
    return dict(value)


def inherited_inference(pretrained: str | None) -> dict:
    """What a model fine-tuned from a kit separator file (``--model.pretrained host.safetensors``, e.g.
    ``booster convert msst``'s) keeps of its inference settings: its recorded ``overlap`` and ``chunking``
    (``{}`` for anything else). The chunk length stays the fine-tune's training segment."""
    import json

    from booster.filechecks import check_safetensors_file
    from booster.training.checkpoint import META_KEY
    p = Path(pretrained).expanduser() if pretrained else None
    if p is None or p.suffix != ".safetensors" or not p.is_file():
        return {}
    raw = check_safetensors_file(p, "--model.pretrained").get(META_KEY)   # the header only, not the weights
    meta = json.loads(raw) if raw else {}
    return {k: meta[k] for k in ("overlap", "chunking") if k in meta}


def tta_forward(forward):
    """Test-time augmentation around ``forward(model, chunks [K, C, S]) -> [K, N, C, S]`` (MSST's
    ``--use_tta``): the chunks as they are, with their channels swapped (stereo only) and with their
    polarity inverted are each separated, the estimates un-augmented (channels swapped back, sign
    flipped back) and averaged. Per chunk: the overlap-add is linear, so this equals averaging whole-track
    passes. Mono: two passes (MSST reverses the channel order of a mono mix too, counting the original
    twice). A boosted model's live path gives each augmented chunk its own features; where features are
    given (track features, the per-chunk cache) the original chunk's serve all three, which is the same:
    MuQ hears the channels' mono mix through a magnitude spectrogram (swap- and sign-invariant)."""
    def run(model, chunks: torch.Tensor) -> torch.Tensor:
        total, n = forward(model, chunks).float(), 2
        if chunks.shape[1] == 2:
            total = total + forward(model, chunks.flip(1)).float().flip(-2)
            n = 3
        total = total - forward(model, -chunks).float()
        return total / n
    return run


def _published(name: str) -> tuple[torch.nn.Module, dict]:
    """A published model by name (``htdemucs`` or ``<host>:<name>``) through its host plug-in."""
    host_name, _, bare = name.partition(":")
    if not bare or host_name not in available_hosts():
        host_name, bare = PUBLISHED_HOST, name
    plugin = load_plugin(host_name)
    loader = getattr(plugin, "from_published", None)
    model = loader(bare) if loader is not None else None
    if model is None:
        raise CheckpointError(f"unknown model {name!r}: pass a .ckpt from `booster fit`, a .safetensors "
                              f"separator file, or a published model name such as {PUBLISHED_HOST}")
    spec = HostSpec(host_name, plugin.architecture(model))
    meta = describe(TASK, spec, model, sources=list(model.sources), sample_rate=int(model.samplerate),
                    channels=int(model.audio_channels), segment=float(chunk_seconds(host_name, model, 10.0)))
    return model, meta
