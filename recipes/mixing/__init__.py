"""Mixing recipe: automatic mixing from stems with Mix-Wave-U-Net and CRAFx2, baseline / boosted.

``booster fit|validate|test --config mixing/<name>`` (configs in this folder); ``booster mix``.
"""
MODULE = "booster.recipes.mixing.module:MixingModule"
DATA = "booster.recipes.mixing.data:MixingDataModule"
LINKS = ("stems", "sample_rate", "channels", "segment")   # set once under data:, linked into model:
