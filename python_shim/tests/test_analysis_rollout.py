"""Attention rollout of a ViT (mkey_det.analysis.attention_vit.rollout / joint_attention): exact
on constructed attentions whose rollout is known (identities, a block that copies one token,
two blocks composed by hand, per-head last block), the same probabilities a block-by-block
capture gives on a real tiny ViT, and the CLI entry's --method (rollout the ViT default, block
as before, rollout refused for a Swin)."""
from __future__ import annotations

import math

import pytest
import torch

from mkey_det.analysis.attention_vit import (analyse_tokens, class_maps, joint_attention,
                                             residual_attention, rollout, token_attention)
from test_analysis_attention_vit import IMAGE, _write_vit_run, vit

N, HEADS = 5, 3  # the class token + a 2 x 2 patch grid


def copy_to(j: int, heads: int = HEADS, n: int = N) -> torch.Tensor:
    """Every token of every head attends only to token ``j``."""
    p = torch.zeros(heads, n, n, dtype=torch.float64)
    p[:, :, j] = 1
    return p


def identity(heads: int = HEADS, n: int = N) -> torch.Tensor:
    return torch.eye(n, dtype=torch.float64).expand(heads, n, n).clone()


def stochastic(seed: int, heads: int = HEADS, n: int = N) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(heads, n, n, generator=g, dtype=torch.float64).mul(4).softmax(-1)


@pytest.mark.parametrize('depth', [1, 2, 5])
def test_identity_attentions_roll_out_to_the_identity(depth):
    j = rollout([identity() for _ in range(depth)])
    assert j.shape == (HEADS, N, N)
    assert torch.equal(j, identity())


@pytest.mark.parametrize('depth', [1, 2, 3, 6])
def test_blocks_that_copy_one_token_put_the_mass_on_it(depth):
    """Each block: A_hat = 0.5 * (all rows e_j) + 0.5 * I, so after L blocks every row keeps
    2^-L on itself and the rest, 1 - 2^-L, on j: all mass on j as L grows."""
    target = 3
    j = rollout([copy_to(target) for _ in range(depth)])
    left = 0.5 ** depth
    for h in range(HEADS):
        want = torch.eye(N, dtype=torch.float64) * left
        want[:, target] += 1 - left
        assert torch.allclose(j[h], want, atol=1e-15)
    # the class token's map over the 2 x 2 patches: only patch 3 - 1 = 2, i.e. cell (1, 0)
    res = analyse_tokens(_token_attention(j))
    for st, m in zip(res['head_stats'], res['class_maps']):
        assert m == [[0.0, 0.0], [pytest.approx(1 - left), 0.0]]
        assert st['max_cell'] == [1, 0] and st['self'] == pytest.approx(left)
        assert st['patch_share'] == pytest.approx(1 - left)


def test_two_blocks_composed_by_hand():
    p0, p1 = stochastic(0), stochastic(1)
    eye = torch.eye(N, dtype=torch.float64)
    a0 = 0.5 * p0.mean(0) + 0.5 * eye  # heads averaged below the last block
    j = rollout([p0, p1])
    for h in range(HEADS):
        a1 = 0.5 * p1[h] + 0.5 * eye     # the last block per head
        want = torch.stack([sum(a1[i, k] * a0[k] for k in range(N)) for i in range(N)])
        assert torch.allclose(j[h], want, atol=1e-14)
    assert torch.allclose(j.sum(-1), torch.ones(HEADS, N, dtype=torch.float64), atol=1e-14)


def test_the_last_block_is_kept_per_head():
    """Below: identity; the last block's head 0 copies token 4, head 1 is the identity, head 2
    spreads evenly: the joint attention of each head is its own A_hat."""
    last = torch.stack([copy_to(4)[0], identity()[0], torch.full((N, N), 1 / N, dtype=torch.float64)])
    j = rollout([identity(), identity(), last])
    assert torch.allclose(j[0, 0], torch.tensor([0.5, 0, 0, 0, 0.5], dtype=torch.float64))
    assert torch.equal(j[1], torch.eye(N, dtype=torch.float64))
    assert torch.allclose(j[2, 0], torch.tensor([0.6, 0.1, 0.1, 0.1, 0.1], dtype=torch.float64))


def test_the_mean_over_heads_is_the_classic_rollout():
    probs = [stochastic(s) for s in range(4)]
    classic = torch.eye(N, dtype=torch.float64)
    for p in probs:
        classic = (0.5 * p.mean(0) + 0.5 * torch.eye(N, dtype=torch.float64)) @ classic
    assert torch.allclose(rollout(probs).mean(0), classic, atol=1e-14)


def test_residual_attention_renormalises_rows():
    a = residual_attention(2 * stochastic(3))  # rows summing to 2
    assert torch.allclose(a.sum(-1), torch.ones(HEADS, N, dtype=torch.float64), atol=1e-14)
    with pytest.raises(ValueError, match='at least one block'):
        rollout([])


def _token_attention(probs: torch.Tensor):
    from mkey_det.analysis.attention_vit import TokenAttention
    return TokenAttention(probs=probs, grid=(2, 2), extra=1, layer=0, layers=1, stride=8,
                          method='rollout')


@pytest.mark.parametrize('key_type', ['stock', 'vanillak'])
def test_joint_attention_of_a_vit_is_the_rollout_of_its_blocks(key_type):
    model = vit(key_type, seed=7)
    blocks = [token_attention(model, IMAGE, i).probs for i in range(2)]
    ja = joint_attention(model, IMAGE)
    assert (ja.layer, ja.layers, ja.grid, ja.extra, ja.heads, ja.method) == (1, 2, (4, 4), 1, 2, 'rollout')
    assert torch.allclose(ja.probs, rollout(blocks), atol=1e-12)
    # a real rollout: not the last block's own class-token row
    assert not torch.allclose(class_maps(ja), blocks[1][:, 0, 1:], atol=1e-3)
    first = joint_attention(model, IMAGE, 0)  # block 0 alone: its A_hat per head
    assert torch.allclose(first.probs, residual_attention(blocks[0]), atol=1e-12)
    res = analyse_tokens(ja)
    assert res['method'] == 'rollout' and res['tokens'] == 17
    for st in res['head_stats']:
        assert st['self'] + st['patch_share'] == pytest.approx(1, abs=1e-9)
        assert 0 <= st['entropy'] <= math.log(17) + 1e-9


def test_attention_entry_method(tmp_path):
    import numpy as np
    from PIL import Image

    from mkey_det.analysis.attention import load_image
    from mkey_det.cli.analyze import attention
    from test_analysis_attention import _write_run

    img = tmp_path / 'img.png'
    Image.fromarray((np.random.default_rng(1).random((40, 40, 3)) * 255).astype(np.uint8)).save(img)
    (base, base_model), (mkey, mkey_model) = (_write_vit_run(tmp_path, 'linear', 1),
                                              _write_vit_run(tmp_path, 'vanillak', 2))
    sources = [dict(path=base, label='vit'), dict(path=mkey, label='vanillak')]
    png = str(tmp_path / 'out' / 'attention-1-img.png')
    res = attention(sources, [str(img)], pngs=[png])  # rollout: the ViT default
    assert res['method'] == 'rollout'
    from test_analysis_attention_vit import MEAN, STD
    image = load_image(str(img), 32, mean=MEAN, std=STD, crop=(32, 32))
    for r, model in zip(res['images'][0]['models'], (base_model, mkey_model)):
        assert r['method'] == 'rollout' and r['layer'] == 1
        want = analyse_tokens(joint_attention(model, image['tensor']))['class_maps']
        assert torch.allclose(torch.tensor(r['class_maps']), torch.tensor(want), atol=1e-5)
    with open(png, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    block = attention(sources[:1], [str(img)], method='block')
    assert block['method'] == 'block' and block['images'][0]['models'][0]['method'] == 'block'
    want = analyse_tokens(token_attention(base_model, image['tensor']))['class_maps']
    assert torch.allclose(torch.tensor(block['images'][0]['models'][0]['class_maps']),
                          torch.tensor(want), atol=1e-5)
    with pytest.raises(ValueError, match='--method must be rollout or block'):
        attention(sources[:1], [str(img)], method='mean')
    swin = _write_run(tmp_path, 'linear', 3)
    with pytest.raises(ValueError, match="--method rollout is for ViTs: a Swin's shifted windows"):
        attention([dict(path=swin, label='swin')], [str(img)], method='rollout')
