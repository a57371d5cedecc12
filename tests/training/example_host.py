"""The README's "add a host" example: a complete host plug-in in a few lines (a per-source mask on the waveform
through a 1-D conv net). Saved as adapters/tiny_mask.py it would be `--model.host tiny_mask`."""
import torch
from torch import nn

from booster.injection import Boosted, Site

NAME = "tiny_mask"


class TinyMask(nn.Module):
    """``mix [B, C, S] -> sources [B, N, C, S]``: a sigmoid mask per source from a small conv net."""

    def __init__(self, sources, sample_rate=44100, channels=2, width=16):
        super().__init__()
        self.sources, self.samplerate, self.audio_channels = list(sources), sample_rate, channels
        self.kwargs = dict(sources=list(sources), sample_rate=sample_rate, channels=channels, width=width)
        self.encoder = nn.Conv1d(channels, width, 33, padding=16)                   # [B, width, S]
        self.decoder = nn.Conv1d(width, len(sources) * channels, 33, padding=16)    # [B, N * C, S]

    def forward(self, mix):
        m = torch.sigmoid(self.decoder(torch.relu(self.encoder(mix))))
        return m.reshape(mix.shape[0], len(self.sources), *mix.shape[1:]) * mix[:, None]


def build(*, size="full", pretrained=None, pretrained_repo=None, overrides=None, sources, sample_rate=44100,
          channels=2, segment=None):
    return TinyMask(sources, sample_rate, channels, **(overrides or {}))


def architecture(model):
    return dict(model.kwargs)


def from_architecture(**kwargs):
    return TinyMask(**kwargs)


def boost(model, backbone, *, layers=None, sites=None, fusion="add", train_host=True):
    sites = sites or [Site(path="encoder", layout="B C T", fusion=fusion)]   # features added after the encoder
    return Boosted(model, backbone, sites, layers=layers, train_host=train_host, preset=NAME)
