"""Separating tracks with a trained (or published) separator, on the kit's chunked inference.

:class:`Separator` is a :class:`booster.training.ChunkedInference` over waveforms (``hop=1``) plus what
separation needs: sources, files in and stems out. The backbone runs once per track; each batch of chunks
gets its slice of the features. Files are read and written chunk by chunk (bounded memory).

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
from booster.training.inference import ChunkedInference

TASK = "separation"
PUBLISHED_HOST = "htdemucs"   # the host whose published names `--model NAME` means (e.g. htdemucs)


class Separator(ChunkedInference):
    def __init__(self, model: torch.nn.Module, meta: dict, *, overlap: float = 0.25, batch_size: int = 4,
                 cache=None):
        self.meta = meta
        self.sources = list(meta["sources"])
        host = boosting.host_of(model)
        segment = chunk_seconds(meta["host"]["name"], host, meta.get("segment", 10.0))
        super().__init__(model, sample_rate=int(meta["sample_rate"]), channels=int(meta["channels"]),
                         segment=segment, overlap=overlap, batch_size=batch_size, cache=cache)
        self.segment_seconds = segment

    def separate_tensor(self, mix: torch.Tensor, *, features=None, cached: bool = False,
                        progress: bool = False) -> torch.Tensor:
        """``mix`` ``[C, S]`` at ``sample_rate`` → ``[N, C, S]`` on ``mix``'s device. ``features``:
        precomputed track features (else the backbone runs once here; through the cache with ``cached``)."""
        return self(mix, features=features, cached=cached, progress=progress)

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
        try:
            def emit(block: torch.Tensor) -> None:
                data = block.cpu().numpy()
                for j, s in enumerate(self.sources):
                    files[s].write(data[j].T)
            self.stream(reader, reader.length, emit, features=features, progress=progress, desc=Path(path).name)
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

    # ---- persistence -----------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write host + adapter weights and the description to one ``.safetensors`` file."""
        return save_model(path, self.model, self.meta)

    @classmethod
    def load(cls, src: str | Path, *, overlap: float = 0.25, device="cpu", batch_size: int = 4) -> "Separator":
        """From a ``.safetensors`` separator file, a recipe ``.ckpt`` or a published model name."""
        p = Path(src).expanduser()
        if p.suffix in (".ckpt", ".safetensors") or p.exists():
            model, meta = load_model(p, task=TASK, device=device)
        else:
            model, meta = _published(str(src))
            model = model.to(device).eval()
        return cls(model, meta, overlap=overlap, batch_size=batch_size)


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
