"""Whole-track mixing in chunks: known answer with a context-free mixer, streaming, device round trip."""
import pytest
import torch

from booster.errors import AudioError
from booster.recipes.mixing.inference import Mixer

META = {"stems": ["drums", "bass", "other", "vocals"], "sample_rate": 8000, "channels": 2,
        "host": {"name": "test_gains", "kwargs": {}}}


class Gains(torch.nn.Module):
    """A mixer without temporal context: per-stem stereo gains, summed (``[B, N, 2, S]`` → ``[B, 2, S]``)."""

    def __init__(self):
        super().__init__()
        self.g = torch.nn.Parameter(torch.tensor([[0.5, 1.0], [1.0, 1.0], [0.2, 0.8], [1.5, -0.5]]))

    def forward(self, stems):
        return (stems * self.g[None, :, :, None]).sum(1)


@pytest.mark.parametrize("segment,overlap,batch", [(0.25, 0.25, 3), (0.3, 0.5, 1), (10.0, 0.25, 4)])
def test_chunked_mix_equals_the_whole_pass(segment, overlap, batch, device):
    model = Gains().to(device)
    mixer = Mixer(model, META, segment=segment, overlap=overlap, batch_size=batch)
    stems = torch.randn(4, 2, 8000 * 2 + 123, device=device)
    out = mixer.mix_tensor(stems)
    assert out.shape == (2, stems.shape[-1]) and out.device == stems.device
    with torch.no_grad():
        assert torch.allclose(out, model(stems[None])[0], atol=1e-5)


def test_stream_emits_blocks_as_it_goes():
    mixer = Mixer(Gains(), META, segment=0.25, overlap=0.25, batch_size=2)
    stems = torch.randn(4, 2, 8000 * 3)
    blocks = []
    mixer.stream(lambda a, n: stems[..., a:a + n] if a + n <= stems.shape[-1] else
                 torch.nn.functional.pad(stems[..., a:], (0, a + n - stems.shape[-1])),
                 stems.shape[-1], blocks.append)
    assert len(blocks) > 5 and max(b.shape[-1] for b in blocks) <= 2 * 2000  # bounded by a batch of chunks
    assert torch.allclose(torch.cat(blocks, -1), Gains()(stems[None])[0], atol=1e-5)


def test_wrong_stems_shape_is_a_clear_error():
    mixer = Mixer(Gains(), META, segment=0.25)
    with pytest.raises(AudioError, match=r"expected stems \[4, 2, S\].*drums, bass, other, vocals"):
        mixer.mix_tensor(torch.randn(3, 2, 1000))
