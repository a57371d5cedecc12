"""The random-weights control of a study (issue 20 item 4): ``random:SRC`` is SRC's architecture with
deterministic random weights from the seed — a gain it also gives is capacity, not knowledge."""
import pytest
import torch

from booster.backbone import identity, load_backbone
from booster.training.study_runs import parse_backbones


def _state(bb):
    return {k: v.clone() for k, v in bb.state_dict().items()}


def test_random_control_has_the_architecture_and_new_weights():
    mini, rnd = load_backbone("muq-mini"), load_backbone("random:muq-mini", 3)
    a, b = _state(mini), _state(rnd)
    assert a.keys() == b.keys() and all(a[k].shape == b[k].shape for k in a)
    weights = [k for k in a if k.endswith("weight") and a[k].dim() > 1]
    assert weights and not any(torch.equal(a[k], b[k]) for k in weights)        # every matrix re-drawn
    ia, ib = identity(mini), identity(rnd)
    assert ia["architecture"] == ib["architecture"] and ia["fingerprint"] != ib["fingerprint"]
    assert rnd.name == "random-muq-mini-seed3" and not any(p.requires_grad for p in rnd.parameters())


def test_random_control_is_deterministic_per_seed():
    s3, s3b, s4 = (_state(load_backbone("random:muq-mini", s)) for s in (3, 3, 4))
    assert all(torch.equal(s3[k], s3b[k]) for k in s3)
    assert not all(torch.equal(s3[k], s4[k]) for k in s3)


def test_study_labels_and_paths_of_the_control(tmp_path):
    folder = tmp_path / "teacher"
    folder.mkdir()
    specs = parse_backbones(f"muq-mini,random:muq-mini,random:muq-mini@2,random:{folder}")
    assert [s.label for s in specs[:3]] == ["muq-mini", "random-muq-mini", "random-muq-mini@2"]
    assert specs[3].source == f"random:{folder.resolve()}" and specs[3].label.startswith("random-teacher-")


def test_unknown_source_under_random_is_one_line():
    with pytest.raises(Exception) as e:
        load_backbone("random:no-such-backbone-xyz")
    assert "no-such-backbone-xyz" in str(e.value) and "\n" not in str(e.value).strip()
