"""Separating tracks with a trained (or published) separator.

:class:`Separator` wraps a host or boosted model with what inference needs: sources, sample rate,
channels, chunk length, and the MuQ backbone. MuQ runs once per track (on the whole track, in its own
bounded windows); each chunk gets its slice of those features. Files are read and written chunk by
chunk, so memory stays bounded on long inputs.

Saved separators are one ``.safetensors`` file: host + adapter weights and a JSON description
(``format_version``, host name + kwargs, sources, rates, boost settings, backbone). Lightning ``.ckpt``
files written by the recipe load too (``weights_only=True``).

Shapes: mixture ``[C, S]``, estimates ``[N, C, S]`` (C channels, S samples, N sources).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from booster.errors import AudioError, CheckpointError

from . import boosting
from .chunking import FileReader, overlap_add, tensor_reader
from .hosts import host_from_spec, host_segment

FORMAT_VERSION = 1
META_KEY = "booster_separator"


class Separator:
    def __init__(self, model: torch.nn.Module, meta: dict, *, backbone=None, overlap: float = 0.25,
                 cache=None):
        self.model, self.meta = model, meta
        self.backbone = backbone if backbone is not None else boosting.backbone_of(model)
        self.sources = list(meta["sources"])
        self.sample_rate, self.channels = int(meta["sample_rate"]), int(meta["channels"])
        self.overlap, self.cache = overlap, cache
        self.segment_seconds = host_segment(boosting.host_of(model))
        self.segment = int(self.segment_seconds * self.sample_rate)

    @property
    def boosted(self) -> bool:
        return boosting.is_boosted(self.model)

    # ---- features ------------------------------------------------------------------------------
    def track_features(self, mix: torch.Tensor | str | Path, *, cached: bool = False):
        """MuQ features of a whole track (``[C, S]`` at ``sample_rate``, or a file path), once."""
        if not self.boosted:
            return None
        layers = boosting.feature_layers(self.model)
        if isinstance(mix, (str, Path)):
            from booster.muq.extract import extract_file
            return extract_file(self.backbone, mix, layers)
        if cached and self.cache is not None:
            return self.cache.get_or_compute(self.backbone, mix, self.sample_rate, layers)
        return self.backbone.extract(mix, self.sample_rate, layers)

    def _runner(self, features):
        sr = self.sample_rate

        def run(chunk: torch.Tensor, first: int) -> torch.Tensor:
            feats, t0 = None, first / sr
            if features is not None:
                feats = boosting.chunk_features(features, t0, chunk.shape[-1] / sr).to(chunk.device)
            with torch.inference_mode(), boosting.using(self.model, feats, t0):
                return self.model(chunk)
        return run

    # ---- separation ----------------------------------------------------------------------------
    def separate_tensor(self, mix: torch.Tensor, *, features=None, cached: bool = False,
                        progress: bool = False) -> torch.Tensor:
        """``mix`` ``[C, S]`` at ``sample_rate`` → ``[N, C, S]``. ``features``: precomputed track
        features (else MuQ runs once here; through the cache with ``cached=True``)."""
        if mix.dim() != 2 or mix.shape[0] != self.channels:
            raise AudioError(f"expected a mixture [{self.channels}, S] at {self.sample_rate} Hz, got "
                             f"{tuple(mix.shape)}; convert with booster.audio.convert_channels/resample")
        was = self.model.training
        self.model.eval()
        try:
            if features is None:
                features = self.track_features(mix, cached=cached)
            dev = next(self.model.parameters()).device
            read = tensor_reader(mix.to(dev))
            return overlap_add(read, mix.shape[-1], self.segment, self._runner(features), overlap=self.overlap,
                               progress=progress, sample_rate=self.sample_rate)
        finally:
            self.model.train(was)

    def separate_file(self, path: str | Path, out_dir: str | Path, *, progress: bool = False,
                      subtype: str = "FLOAT", name: str | None = None) -> dict[str, Path]:
        """Separate an audio file (any rate / channel count) into ``out_dir/<track>/<source>.wav``
        (``<track>``: ``name`` or the file name without extension) at the model's rate and channel
        count; returns ``{source: path}``."""
        import soundfile as sf

        reader = FileReader(path, self.sample_rate, self.channels)
        features = self.track_features(path)
        folder = Path(out_dir) / (name or Path(path).stem)
        folder.mkdir(parents=True, exist_ok=True)
        paths = {s: folder / f"{s}.wav" for s in self.sources}
        tmps = {s: p.with_name(f".{p.name}.part") for s, p in paths.items()}
        files = {s: sf.SoundFile(str(tmps[s]), "w", self.sample_rate, self.channels, subtype=subtype, format="WAV")
                 for s in self.sources}
        self.model.eval()
        try:
            def emit(block: torch.Tensor) -> None:
                data = block.cpu().numpy()
                for j, s in enumerate(self.sources):
                    files[s].write(data[j].T)
            overlap_add(reader, reader.length, self.segment, self._runner(features), overlap=self.overlap,
                        emit=emit, progress=progress, sample_rate=self.sample_rate, desc=Path(path).name)
        except BaseException:
            for f in files.values():
                f.close()
            for t in tmps.values():
                t.unlink(missing_ok=True)
            raise
        for s, f in files.items():
            f.close()
            tmps[s].replace(paths[s])
        return paths

    # ---- persistence ---------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write host + adapter weights and the description to one ``.safetensors`` file."""
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # clone: Open-Unmix shares one window between stft and istft (safetensors refuses shared memory)
        state = {k: v.detach().cpu().clone().contiguous() for k, v in boosting.adapter_state(self.model).items()}
        save_file(state, str(path), metadata={META_KEY: json.dumps(self.meta, sort_keys=True)})
        return path

    @classmethod
    def load(cls, src: str | Path, *, overlap: float = 0.25, device: str = "cpu") -> "Separator":
        """From a ``.safetensors`` separator file, a recipe ``.ckpt`` or a demucs model name."""
        p = Path(src).expanduser()
        if p.is_file():
            if p.suffix == ".ckpt":
                meta, state = _read_ckpt(p)
            else:
                meta, state = _read_safetensors(p)
            model = build_from_meta(meta)
            boosting.load_trainable_state(model, state)
        elif p.suffix in (".ckpt", ".safetensors") or p.exists():
            raise CheckpointError(f"model file {str(p)!r} does not exist" if not p.exists()
                                  else f"{str(p)!r} is a directory, expected a .ckpt or .safetensors file")
        else:
            model, meta = _named_model(str(src))
        model.to(device).eval()
        return cls(model, meta, overlap=overlap)


def build_from_meta(meta: dict) -> torch.nn.Module:
    """Re-create the (random-weight) model a description names; refuses unknown versions."""
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        got = meta.get("format_version") if isinstance(meta, dict) else None
        raise CheckpointError(f"separator format version {got!r} is not supported; this muq-booster reads "
                              f"version {FORMAT_VERSION}. Re-export the model with this version.")
    host = host_from_spec(meta["host"])
    if not meta.get("boost"):
        return host
    backbone = boosting.load_backbone(meta["backbone"], int(meta.get("backbone_seed", 0)))
    want = (meta.get("backbone_identity") or {}).get("fingerprint")
    if want and backbone.identity.get("fingerprint") != want:
        raise CheckpointError(f"the model was trained on backbone {meta['backbone']!r} with fingerprint {want}, "
                              f"but that source now gives {backbone.identity.get('fingerprint')}")
    return boosting.boost_host(meta["host"]["name"], host, backbone, **(meta.get("boost_kwargs") or {}))


def _read_safetensors(p: Path) -> tuple[dict, dict]:
    from safetensors import safe_open
    try:
        with safe_open(str(p), framework="pt") as f:
            raw = (f.metadata() or {}).get(META_KEY)
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:
        raise CheckpointError(f"cannot read {str(p)!r} as a separator file ({type(e).__name__}: {e})") from None
    if raw is None:
        raise CheckpointError(f"{str(p)!r} is a safetensors file but not a muq-booster separator (no metadata)")
    return json.loads(raw), state


def _read_ckpt(p: Path) -> tuple[dict, dict]:
    try:
        ckpt = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"cannot read checkpoint {str(p)!r} safely ({type(e).__name__}: "
                              f"{str(e).splitlines()[0][:200]})") from None
    meta = ckpt.get("booster") if isinstance(ckpt, dict) else None
    if meta is None:
        raise CheckpointError(f"{str(p)!r} is not a checkpoint of the muq-booster separation recipe")
    state = {k[len("model."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    ema = ckpt.get("booster_ema")
    return meta, (dict(ema) if ema else state)


def _named_model(name: str) -> tuple[torch.nn.Module, dict]:
    """A published demucs HTDemucs by name (``htdemucs`` or ``demucs:<name>``), from demucs' cache."""
    from .hosts import build_host
    bare = name.split(":", 1)[1] if name.startswith("demucs:") else name
    if not re.fullmatch(r"[A-Za-z0-9_]+", bare):
        raise CheckpointError(f"unknown model {name!r}: pass a .ckpt from `booster fit`, a .safetensors "
                              "separator file, or a demucs model name such as htdemucs")
    host = build_host("htdemucs", sources=["drums", "bass", "other", "vocals"], pretrained=bare)
    from .hosts import host_spec
    meta = {"format_version": FORMAT_VERSION, "host": host_spec(host), "boost": False,
            "sources": list(host.sources), "sample_rate": host.samplerate, "channels": host.audio_channels}
    return host, meta
