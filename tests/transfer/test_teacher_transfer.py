"""Known-answer test of the booster as a system (issue 20 item 1, debug size; benchmarks/transfer.py): a
frozen teacher (the shallow transcriber trained on the full synthetic bass set, wrapped in
booster.TorchBackbone) boosts the same host trained on a small fraction beyond the plain host, seed by seed
at equal steps and with the same initial weights, batches and dropout masks; with the adapters disconnected
(gates frozen at zero, or the teacher's features replaced by zeros) the gain is gone.

Shape glossary: B batch, S samples, T frames, D feature dim."""
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
import transfer  # noqa: E402

pytestmark = pytest.mark.slow   # about 30 s on one thread
SEEDS = (0, 1, 2)
HOST = {"steps": 300, "batch": 8, "lr": 1e-2, "hidden": 32}


class ZeroStates(torch.nn.Module):
    """The teacher's hidden states (each ``[B, T, D]``) replaced by zeros of the same shapes."""

    def __init__(self, states: torch.nn.Module):
        super().__init__()
        self.states = states

    def forward(self, wav):
        return tuple(torch.zeros_like(s) for s in self.states(wav))


@pytest.fixture(scope="module")
def scores():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        audio, targets = transfer.make_clips(48, 2.0, seed=1)
        test = transfer.make_clips(16, 2.0, seed=2)
        teacher = transfer.train(transfer.build_host(1000, 32), audio, targets, steps=1500, batch=8, lr=1e-2,
                                 seed=1000)
        small = (audio[:6], {k: v[:6] for k, v in targets.items()})
        aligned = transfer.as_backbone(teacher)
        zeros = transfer.as_backbone(teacher, name="zeros")
        zeros.module = ZeroStates(zeros.module)
        out = {"teacher": transfer.frame_f1(teacher, *test)}
        for arm, backbone, frozen in (("plain", None, False), ("boosted", aligned, False),
                                      ("frozen_gates", aligned, True), ("zero_features", zeros, False)):
            out[arm] = [transfer.run_arm(backbone, s, small, test, freeze_gates=frozen, **HOST) for s in SEEDS]
        return out
    finally:
        torch.set_num_threads(before)


def gain(scores: dict, arm: str) -> list[float]:
    """Per seed: ``arm``'s frame F1 minus the plain host's."""
    return [a - p for a, p in zip(scores[arm], scores["plain"])]


def test_teacher_knows_the_task_better_than_the_small_data_host(scores):
    assert scores["teacher"] > max(scores["plain"]) + 0.1, scores


def test_teacher_boosted_host_beats_plain_host_seed_by_seed(scores):
    gains = gain(scores, "boosted")      # paired: same initial weights, batches and dropout masks
    assert sum(gains) / len(gains) > 0.06 and min(gains) > 0.02, scores


def test_disconnected_adapters_give_no_gain(scores):
    assert scores["frozen_gates"] == scores["plain"], scores      # gates at 0: exactly the plain host
    boosted, zeros = (sum(g) / len(g) for g in (gain(scores, "boosted"), gain(scores, "zero_features")))
    assert zeros < min(0.04, boosted / 2), scores
