"""The query-key interaction analysis (mkey_det.analysis.qk): exact on constructed heads, and a
manifold key started from a linear one has that linear key's interaction at zero offset."""
from __future__ import annotations

import pytest
import torch

from conftest import MANIFOLD, mkey_swin, randomize_, stock_swin
from mkey_det.analysis.qk import backbone_interactions, head_interactions, similarity, similarity_of_factors
from mkey_det.models.backbones import load_pretrained


def test_similarity_of_constructed_matrices():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(8, 32, generator=g)
    _, same = similarity(w.T @ w, 8)  # W_k = W_q: every u_r == v_r
    _, opposite = similarity(-(w.T @ w), 8)
    assert same == pytest.approx(1.0, abs=1e-9)
    assert opposite == pytest.approx(-1.0, abs=1e-9)
    s, _ = similarity(w.T @ torch.randn(8, 32, generator=g), 8)
    assert len(s) == 8 and all(a >= b for a, b in zip(s, s[1:]))


@pytest.mark.parametrize('sign', [1.0, -1.0])
def test_factored_svd_equals_the_dense_one(sign):
    g = torch.Generator().manual_seed(1)
    p, q = torch.randn(96, 32, generator=g, dtype=torch.double), torch.randn(96, 32, generator=g, dtype=torch.double)
    s_dense, sim_dense = similarity(sign * p @ q.T, 32)
    s_fact, sim_fact = similarity_of_factors(sign * p, q)
    assert torch.allclose(s_fact, s_dense, rtol=1e-10, atol=1e-10)
    assert sim_fact == pytest.approx(sim_dense, abs=1e-10)
    _, same = similarity_of_factors(p, p)
    assert same == pytest.approx(1.0, abs=1e-9)


def test_linear_head_is_scale_wq_t_wk():
    model = stock_swin(seed=2)
    msa = model.stages[1].blocks[0].attn.w_msa
    c, heads = msa.embed_dims, msa.num_heads
    d = c // heads
    out = head_interactions(msa)
    assert len(out['heads']) == heads and out['charts'] == 1
    assert out['off_zero_offset_share'] == pytest.approx(0.0, abs=1e-12)
    w = msa.qkv.weight.detach().double()
    a = msa.scale * w[:d].T @ w[c:c + d]
    ref = torch.linalg.svdvals(a)[:d]
    assert torch.allclose(torch.tensor(out['heads'][0]['singular_values'], dtype=torch.double), ref, rtol=1e-9)


@pytest.mark.parametrize('key_type', MANIFOLD)
def test_manifold_key_started_from_linear_has_its_interaction(key_type):
    stock = stock_swin(seed=3)
    model = mkey_swin(key_type, 4, seed=4)
    load_pretrained(model, {'state_dict': stock.state_dict()})
    ref, got = backbone_interactions(stock), backbone_interactions(model)
    assert [(r['stage'], r['block']) for r in ref] == [(g['stage'], g['block']) for g in got]
    for r, g in zip(ref, got):
        assert g['charts'] == 4
        for hr, hg in zip(r['heads'], g['heads']):
            assert hg['similarity'] == pytest.approx(hr['similarity'], abs=1e-6)
            assert hg['singular_values'] == pytest.approx(hr['singular_values'], rel=1e-5, abs=1e-9)


def test_trained_like_manifold_key_differs_and_plots(tmp_path):
    model = randomize_(mkey_swin('spatialk', 4, seed=5), seed=6, scale=0.2)
    layers = backbone_interactions(model)
    assert all(-1 <= h['similarity'] <= 1 for entry in layers for h in entry['heads'])
    assert all(0 < entry['off_zero_offset_share'] < 1 for entry in layers)
    from mkey_det.analysis.qk import plot_similarity
    path = plot_similarity({'spatialk': layers, 'swin': backbone_interactions(stock_swin(seed=5))}, str(tmp_path / 'qk.png'))
    assert (tmp_path / 'qk.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' and path.endswith('qk.png')
