"""User-facing exceptions.

Every error a user can cause (bad file, wrong shape, missing stem, wrong checkpoint) is raised as a
subclass of :class:`BoosterError` with a message that says what was wrong and what to do. The CLI
prints these without a traceback and exits non-zero.
"""


class BoosterError(Exception):
    """Base class of errors caused by user input."""


class AudioError(BoosterError, ValueError):
    """An audio file or waveform cannot be used (unreadable, empty, NaN/Inf, wrong shape...)."""


class CheckpointError(BoosterError, ValueError):
    """A checkpoint directory, file or state dict does not match what is expected."""


class ConfigError(BoosterError, ValueError):
    """A configuration value or argument is invalid."""


class DatasetError(BoosterError, ValueError):
    """A dataset folder is malformed (missing stem, mismatched sample rates or lengths...)."""


class DownloadError(CheckpointError):
    """Published weights are not cached on this machine and cannot be downloaded (offline)."""
