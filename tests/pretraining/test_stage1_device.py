"""Pretraining stage 1 (and its teacher) runs on the device it is given (the trainer's), not on the CPU.

Fake CUDA (``FakeTensorMode``: tensors on ``cuda`` without data, raising on any cuda/cpu mix) checks the
devices on this CPU-only machine. The Mel-RVQ's dead-code upkeep picks codes by value (``nonzero``), which
fake tensors cannot run: reaching it (DynamicOutputShapeException) means the batch, the mel front end or
teacher, the statistics, the codebook initialisation and the first forward all ran on cuda without a mix.
"""
import pytest
import torch
from torch._subclasses.fake_tensor import DynamicOutputShapeException, FakeTensorMode

from booster import MuQ
from booster.recipes.pretraining.recipe import fit_tokenizer, teacher_frames
from booster.recipes.pretraining.module import mel_frontend
from booster.recipes.pretraining.tokenizer import TokenizerConfig, stack_frames

CFG = dict(num_levels=2, codebook_size=16, code_dim=4)


def _cpu_batches(n: int = 4):
    gen = torch.Generator().manual_seed(0)
    return iter([torch.randn(2, 24000, generator=gen) * 0.1 for _ in range(n)])  # as a DataLoader yields


def test_stage1_fit_on_cpu_returns_a_working_tokenizer():
    rvq, metrics = fit_tokenizer(_cpu_batches(), None, 3, TokenizerConfig(**CFG), log=None, device="cpu")
    assert rvq.codebooks.device.type == "cpu" and metrics["steps"] == 3
    assert rvq.tokenize(torch.randn(1, 5, 512)).shape == (1, 5, 2)


def test_stage1_fit_runs_on_the_device_it_is_given():
    front = mel_frontend(None)   # built on the CPU (its filterbank reads values), moved as the driver does
    with FakeTensorMode(allow_non_fake_inputs=True):
        front.to("cuda")

        def frames(wav):
            return stack_frames(front(wav), 4)

        with pytest.raises(DynamicOutputShapeException):   # the first value-dependent step, all on cuda
            fit_tokenizer(_cpu_batches(), None, 2, TokenizerConfig(**CFG), frames=frames, log=None,
                          device="cuda")


def test_stage1_teacher_runs_on_the_device_it_is_given():
    teacher = MuQ.debug(depth=2)
    with FakeTensorMode(allow_non_fake_inputs=True):
        frames = teacher_frames(teacher.to("cuda"), 1)
        assert frames(torch.zeros(2, 24000, device="cuda")).device.type == "cuda"
        with pytest.raises(RuntimeError, match="device"):   # the harness sees a mix: CPU batch, cuda teacher
            frames(torch.zeros(2, 24000))
        with pytest.raises(DynamicOutputShapeException):    # the driver moved each batch to the teacher
            fit_tokenizer(_cpu_batches(), None, 2, TokenizerConfig(**CFG, input_dim=teacher.hidden_size),
                          frames=frames, log=None, device="cuda")
