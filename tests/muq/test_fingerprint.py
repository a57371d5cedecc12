"""MuQ.fingerprint is hashed once per set of weights: not again after train()/eval() switches or identity
reads, but again after any change of a parameter or buffer (in-place update, load_state_dict, BatchNorm
statistics, dtype)."""

import pytest
import torch

from booster import MuQ


def test_fingerprint_hashed_once_over_mode_switches_and_identity_reads(hash_count):
    m = MuQ.debug(seed=3)
    first = m.fingerprint
    for _ in range(50):
        m.train()
        m.eval()
    for _ in range(20):
        assert m.identity["fingerprint"] == first
    assert hash_count[0] == 1


def test_in_place_weight_change_gives_a_new_fingerprint(hash_count):
    m = MuQ.debug(seed=3)
    before = m.fingerprint
    p = next(m.parameters())
    saved = p.detach().clone()
    with torch.no_grad():
        p.add_(1)
    after = m.fingerprint
    assert after != before and hash_count[0] == 2
    with torch.no_grad():
        p.copy_(saved)   # same values again, new version: hashed again, same fingerprint
    assert m.fingerprint == before and hash_count[0] == 3


def test_load_state_dict_gives_the_loaded_weights_fingerprint():
    a, b = MuQ.debug(seed=1), MuQ.debug(seed=2)
    fa, fb = a.fingerprint, b.fingerprint
    assert fa != fb
    a.load_state_dict(b.state_dict())
    assert a.fingerprint == fb


def test_batchnorm_update_in_train_mode_gives_a_new_fingerprint():
    m = MuQ.debug(seed=0)
    assert any(n.endswith("running_mean") for n, _ in m.named_buffers())
    before = m.fingerprint
    m.train()
    with torch.no_grad():
        m(torch.randn(1, 24000))   # BatchNorm running statistics update in train mode
    m.eval()
    assert m.fingerprint != before


def test_dtype_change_gives_a_new_fingerprint():
    m = MuQ.debug(seed=0)
    before = m.fingerprint
    m.double()
    assert m.fingerprint != before
    m.float()
    assert m.fingerprint == before


def test_same_weights_in_a_fresh_muq_give_the_same_fingerprint():
    a = MuQ.debug(seed=5)
    a.train()
    a.eval()
    fresh = MuQ(a.config)
    fresh.load_state_dict(a.state_dict())
    assert fresh.fingerprint == a.fingerprint == MuQ.debug(seed=5).fingerprint
