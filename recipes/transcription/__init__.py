"""Transcription recipe: an Onsets-and-Frames-style transcriber, baseline / probe / boosted."""
