"""Boosting keeps the parameters a host keeps frozen itself frozen (booster.injection.set_host_trainable).

Open-Unmix's STFT window is an ``nn.Parameter(requires_grad=False)`` shared by its STFT and iSTFT; ``Boosted``
used to set every host parameter trainable (``train_host=True``), so a boosted Open-Unmix trained the window
that its loss computes the target spectrograms with (the plain host did not): the boosted arm could lower
its loss by reshaping the window, and trained something the plain arm could not.
"""
import torch

from booster.adapters import openunmix


def separator():
    torch.manual_seed(0)
    return openunmix.build(size="debug", sources=["vocals", "drums"], sample_rate=8000, channels=1)


def frozen(model: torch.nn.Module) -> list[str]:
    return [n for n, p in model.named_parameters() if not p.requires_grad]


def test_boosting_keeps_the_hosts_own_frozen_parameters_frozen(debug_muq):
    host = separator()
    assert frozen(host) == ["stft.window"]          # Open-Unmix's own choice
    b = openunmix.boost(host, debug_muq, layers=[12])
    assert frozen(b.host) == ["stft.window"]
    trainable = {id(p) for p in b.parameters() if p.requires_grad}
    assert id(b.host.stft.window) not in trainable
    mix = 0.1 * torch.randn(2, 1, 8000, generator=torch.Generator().manual_seed(0))
    with openunmix.spectrogram_output(b.host):
        b(mix).sum().backward()
    assert b.host.stft.window.grad is None


def test_train_host_false_then_true_restores_the_hosts_flags(debug_muq):
    host = separator()
    before = frozen(host)
    b = openunmix.boost(host, debug_muq, layers=[12], train_host=False)
    assert not any(p.requires_grad for p in b.host.parameters())
    host = b.remove()
    b2 = openunmix.boost(host, debug_muq, layers=[12], train_host=True)
    assert frozen(b2.host) == before

