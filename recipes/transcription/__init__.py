"""Transcription recipe: an Onsets-and-Frames-style transcriber, baseline / probe / boosted.

``booster fit|validate|test --config transcription/<name>`` (configs ``demo``, ``baseline``, ``probe``,
``boosted`` in this folder); ``booster transcribe`` writes MIDI files.
"""
MODULE = "booster.recipes.transcription.module:TranscriptionModule"
DATA = "booster.recipes.transcription.data:TranscriptionDataModule"
LINKS = ("sample_rate", "hop_length", "pitch_range", "segment")   # set once under data:, linked into model:
