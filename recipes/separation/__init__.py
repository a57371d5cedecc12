"""Separation recipe: a host separator (HTDemucs, Open-Unmix, BS-RoFormer...), plain or boosted.

``booster fit|validate|test --config separation/<name>`` (configs in this folder); ``booster separate``.
"""
MODULE = "booster.recipes.separation.module:SeparationModule"
DATA = "booster.recipes.separation.data:StemsDataModule"
LINKS = ("segment", "sources", "sample_rate", "channels")   # set once under data:, linked into model:
