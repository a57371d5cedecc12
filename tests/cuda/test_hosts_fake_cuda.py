"""Every host plug-in, boosted (debug MuQ), on fake CUDA: forward + the host's training loss stay on cuda.

Shape glossary: B batch, C channels, N sources/stems, S samples, T frames, P pitches.
Backward cannot run on fake CUDA (see conftest); it runs on the real devices of the ``device`` fixture.
"""
import pytest
import torch
from fake_cuda import FAKE, TASK, boosted_host, fake_cuda_mode, host_batch, training_loss

from booster.training.hosts import available_hosts

HOSTS = available_hosts()


def test_every_host_has_a_case():
    assert sorted(TASK) == sorted(HOSTS), "a new host plug-in needs its task arguments in tests/cuda/conftest.py"


def test_fake_cuda_catches_a_mix(monkeypatch):
    """The harness itself: a cuda/cpu mix raises, also through a tensor attribute that `.to` did not move."""
    lin = torch.nn.Linear(2, 2)
    lin.scale = torch.ones(2)   # not a buffer: stays on the CPU
    with fake_cuda_mode(monkeypatch):
        a = torch.zeros(2, device="cuda")
        assert a.device == FAKE
        with pytest.raises(RuntimeError, match="device"):
            a + torch.zeros(2)
        lin.to(FAKE)
        assert lin.weight.device == FAKE
        assert lin(a[None]).device == FAKE
        with pytest.raises(RuntimeError, match="device"):
            lin(a[None]) * lin.scale


def test_istft_reference_matches():
    """Work-around 2 is exact: torch's reference istft equals the kernel on real CPU tensors."""
    x = torch.randn(2, 4000, generator=torch.Generator().manual_seed(0))
    w = torch.hann_window(256)
    spec = torch.stft(x, 256, 64, window=w, return_complex=True)
    ref = torch._refs.istft(spec, 256, 64, window=w, length=4000)
    assert torch.equal(ref, torch.istft(spec, 256, 64, window=w, length=4000))


def _outputs(y):
    return list(y.values()) if isinstance(y, dict) else [y]


@pytest.mark.parametrize("name", HOSTS)
def test_boosted_training_loss_on_fake_cuda(name, monkeypatch):
    model = boosted_host(name)
    loss_fn = training_loss(name)
    with fake_cuda_mode(monkeypatch):
        model.to(FAKE)
        assert {p.device for p in model.parameters()} == {FAKE}
        assert {p.device for p in model.backbone.parameters()} == {FAKE}   # the frozen backbone follows
        x, y = host_batch(name, FAKE)
        model.train()
        loss = loss_fn(model, x, y)
        assert loss.device == FAKE and loss.dim() <= 1
        loss.cpu()                                                          # the logger's copy: must not raise


EVAL_SKIP = {"openunmix": "openunmix's Wiener filter loop reads frame indices as Python ints "
                          "(int(cur_frame[-1]) in Separator.forward): data FakeTensor does not have"}


@pytest.mark.parametrize("name", HOSTS)
def test_boosted_eval_forward_on_fake_cuda(name, monkeypatch):
    if name in EVAL_SKIP:
        pytest.skip(EVAL_SKIP[name])
    model = boosted_host(name).eval()
    with fake_cuda_mode(monkeypatch):
        model.to(FAKE)
        x, _ = host_batch(name, FAKE)
        with torch.no_grad():
            outs = _outputs(model(x))
        assert outs and all(o.device == FAKE for o in outs)


@pytest.mark.parametrize("name", HOSTS)
def test_boosted_backward_on_real_devices(name, device):
    """Forward + loss + backward where the autograd engine can run (CPU; CUDA on a GPU machine)."""
    model = boosted_host(name).to(device)
    x, y = host_batch(name, device)
    loss = training_loss(name)(model, x, y)
    assert loss.device.type == device.type
    loss.sum().backward()
    grads = [p.grad for p in model.adapter_parameters() if p.grad is not None]
    assert grads and all(g.device.type == device.type for g in grads)


@pytest.mark.parametrize("name", sorted(EVAL_SKIP))
def test_boosted_eval_forward_on_real_devices(name, device):
    """The eval forwards fake CUDA cannot run (EVAL_SKIP), on the devices present (CPU; CUDA on a GPU machine)."""
    model = boosted_host(name).to(device).eval()
    x, _ = host_batch(name, device)
    with torch.no_grad():
        outs = _outputs(model(x))
    assert outs and all(o.device.type == device.type for o in outs)
