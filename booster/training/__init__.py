"""The recipe kit: task-generic training, inference and reporting that every recipe builds on.

Modules (see the README, "The recipe kit"): ``module`` (:class:`BoosterModule`, the base LightningModule), ``data``
(:class:`BoosterDataModule`), ``hosts`` (host plug-ins), ``chunking`` / ``inference`` (chunked
inference over time, :class:`ChunkedInference`), ``checkpoint`` (model descriptions, files), ``report``
(results + compare, :class:`Metric`), ``cli`` (``booster fit|validate|test``), ``device``
(:func:`resolve_device`), ``boosting`` (plain-or-boosted helpers).

Names are imported lazily so that ``import booster.training.hosts`` does not need Lightning.
"""
import importlib

_EXPORTS = {
    "BoosterModule": "module", "BoosterDataModule": "data", "IndexDataset": "data", "nested_subset": "data",
    "HostSpec": "hosts", "build_host": "hosts", "host_from_spec": "hosts", "load_plugin": "hosts",
    "ChunkedInference": "inference", "chunked_apply": "chunking", "chunk_features": "chunking",
    "Metric": "report", "write_report": "report", "load_report": "report", "compare_reports": "report",
    "load_model": "checkpoint", "save_model": "checkpoint", "resolve_device": "device",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
