"""The recipe kit: task-generic training, inference and reporting that every recipe builds on.

Modules (see the README, "The recipe kit"): ``module`` (:class:`~booster.training.module.BoosterModule`, the base
LightningModule), ``data`` (:class:`~booster.training.data.BoosterDataModule`), ``hosts`` (hosts as data, built and
boosted through their plug-ins; the registry is :mod:`booster.plugins`), ``chunking`` / ``inference`` (chunked
inference over time, :class:`~booster.training.inference.ChunkedInference`), ``checkpoint`` (model descriptions,
files), ``report`` (results + compare, :class:`~booster.training.report.Metric`), ``cli``
(``booster fit|validate|test``), ``device`` (:func:`~booster.training.device.resolve_device`), ``boosting``
(plain-or-boosted helpers).

Import names from their modules (``from booster.training.module import BoosterModule``): this package
imports nothing itself, so ``import booster.training.hosts`` does not need Lightning.
"""
