"""Debug-size demucs and Open-Unmix hosts for the preset tests."""
import torch

SOURCES = ["drums", "bass"]


def tiny_htdemucs(seed: int = 0):
    from demucs.htdemucs import HTDemucs
    torch.manual_seed(seed)
    return HTDemucs(sources=SOURCES, channels=8, depth=2, nfft=512, t_layers=1, t_heads=2, segment=1,
                    samplerate=8000)


def tiny_separator(seed: int = 0):
    from openunmix.model import OpenUnmix, Separator
    torch.manual_seed(seed)
    targets = {n: OpenUnmix(nb_bins=129, nb_channels=2, hidden_size=16, nb_layers=1) for n in ["vocals", "drums"]}
    return Separator(targets, n_fft=256, n_hop=64, sample_rate=8000.0, nb_channels=2)
