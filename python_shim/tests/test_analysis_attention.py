"""The attention-map analysis (mkey_det.analysis.attention): the maps are what the block computes
(its softmax, its windows, shifted or not), the same in every key order and folded, and they show
that Eq. 4's CB leaves attention alone while the per-location CB does not."""
from __future__ import annotations

import os

import pytest
import torch

from conftest import manifold_keys, mkey_swin, randomize_, small_cfg, stock_swin
from mkey_det import fold_backbone
from mkey_det.analysis.attention import (analyse, pick_block, query_maps, received_maps,
                                         window_attention, window_cells)
from mkey_det.models.keys.base import set_cb_mode

#: an input that needs window padding at every stage (stage grids 17x26, 9x13, 5x7, 3x4)
IMAGE = torch.randn(1, 3, 67, 101, generator=torch.Generator().manual_seed(0))


def test_window_cells_follow_pad_roll_partition():
    """Against the definition: after padding to window multiples and rolling by -shift, the
    token at (Y, X) of the padded, rolled grid is the cell ((Y+s) % Hp, (X+s) % Wp)."""
    model = stock_swin(seed=0)
    attn = model.stages[0].blocks[1].attn  # shifted
    assert attn.shift_size == 3 and attn.window_size == 7
    h, w = 17, 26
    cells = window_cells(attn, (h, w))
    hp, wp = 21, 28
    assert cells.shape == ((hp // 7) * (wp // 7), 49)
    for win in range(cells.shape[0]):
        wy, wx = divmod(win, wp // 7)
        for t in range(49):
            ty, tx = divmod(t, 7)
            y, x = (wy * 7 + ty + 3) % hp, (wx * 7 + tx + 3) % wp
            assert int(cells[win, t]) == (y * w + x if y < h and x < w else -1)
    real = cells[cells >= 0]
    assert sorted(real.tolist()) == list(range(h * w))  # every cell exactly once


@pytest.mark.parametrize('layer', [0, 1, 5, 7])  # regular, shifted, shifted (stage 2), last
def test_captured_probabilities_are_the_blocks_own(layer):
    """Rebuild the window attention's output from the captured probabilities and the value of
    the windows it received: it equals what the block's w_msa returned."""
    model = randomize_(mkey_swin('kua', 2, seed=1), seed=2, scale=0.05)
    blk = pick_block(model, layer)
    msa = blk['attn'].w_msa
    seen = {}
    handle = msa.register_forward_hook(lambda m, i, o: seen.update(x=i[0], out=o))
    try:
        wa = window_attention(model, IMAGE, layer, stop=False)
    finally:
        handle.remove()
    c = msa.embed_dims
    v = msa.qkv(seen['x'])[..., 2 * c:]
    b, n, _ = v.shape
    v = v.view(b, n, msa.num_heads, c // msa.num_heads).transpose(1, 2).double()
    rebuilt = msa.proj((wa.probs @ v).transpose(1, 2).reshape(b, n, c).float())
    assert torch.allclose(rebuilt, seen['out'], atol=1e-5, rtol=1e-4)
    assert (wa.layer, wa.stage, wa.block) == (layer, blk['stage'], blk['block'])
    assert wa.shift == (3 if blk['block'] % 2 else 0) and wa.stride == 4 * 2**blk['stage']


def test_query_and_received_maps():
    model = randomize_(mkey_swin('spatialk', 2, seed=3), seed=4, scale=0.05)
    wa = window_attention(model, IMAGE, 1)  # stage 0, shifted, grid 17 x 26
    assert wa.grid == (17, 26) and wa.heads == 1
    for cell in (0, 5 * 26 + 9, 16 * 26 + 25):
        q = query_maps(wa, cell)
        total = q['maps'].sum(1) + q['padding_share']
        assert torch.allclose(total, torch.ones_like(total), atol=1e-6)
        assert int(q['in_window'].sum()) == int((wa.cells[q['window']] >= 0).sum())
        assert bool((q['maps'][:, ~q['in_window']] == 0).all())
    rec = received_maps(wa)
    n_real = int((wa.cells >= 0).sum())
    pad_mass = sum(float(query_maps(wa, c)['padding_share'].sum()) for c in range(17 * 26))
    assert float(rec.sum()) == pytest.approx(n_real - pad_mass, rel=1e-7)
    res = analyse(wa, (100, -3))  # clamped into the grid
    assert res['query_cell'] == [16, 0] and len(res['query_maps']) == 1
    assert len(res['received_maps'][0]) == 17 and len(res['received_maps'][0][0]) == 26
    st = res['head_stats'][0]
    assert 0 <= st['entropy'] <= torch.log(torch.tensor(49.)).item() + 1e-9
    assert 0 < st['max'] <= 1 and st['received_min'] <= st['received_max']


@pytest.mark.parametrize('key_type', ['spatialk', 'kua', 'simplek', 'vanillak'])
def test_fast_paper_and_folded_give_the_same_maps(key_type):
    model = randomize_(mkey_swin(key_type, 4, seed=5), seed=6, scale=0.05)
    for key in manifold_keys(model):  # give CB something to do
        if getattr(key, 'gamma2', None) is not None:
            with torch.no_grad():
                key.gamma2.normal_(0, 0.5)
    maps = {}
    for order in ('paper', 'fast'):
        model.set_key_order(order)
        maps[order] = {layer: window_attention(model, IMAGE, layer).probs for layer in (2, 7)}
    with torch.no_grad():
        fold_backbone(model)
    assert not manifold_keys(model)
    maps['folded'] = {layer: window_attention(model, IMAGE, layer).probs for layer in (2, 7)}
    for name in ('fast', 'folded'):
        for layer, p in maps['paper'].items():
            assert torch.allclose(maps[name][layer], p, atol=1e-6), (name, layer)


@pytest.mark.parametrize('key_type', ['kua', 'vanillak'])
def test_eq4_cb_leaves_attention_per_location_cb_changes_it(key_type):
    """With gamma2 != 0: Eq. 4's CB gives the attention of gamma2 = 0 (one vector per window is
    added to every key, which softmax ignores); the per-location CB changes it."""
    model = randomize_(mkey_swin(key_type, 4, seed=7), seed=8, scale=0.05)
    keys = manifold_keys(model)
    gamma2 = [torch.randn(k.dim, generator=torch.Generator().manual_seed(i)) for i, k in
              enumerate(keys)]

    def maps(cb_mode, with_gamma2):
        set_cb_mode(model, cb_mode)
        with torch.no_grad():
            for k, g in zip(keys, gamma2):
                k.gamma2.copy_(g if with_gamma2 else torch.zeros_like(g))
        return [analyse(window_attention(model, IMAGE, layer), (1, 1)) for layer in (1, 6)]

    base = maps('eq4', False)
    for kind in ('query_maps', 'received_maps'):
        for a, b in zip(maps('eq4', True), base):
            assert torch.allclose(torch.tensor(a[kind]), torch.tensor(b[kind]), atol=1e-5), kind
        # per-location CB with gamma2 = 0 is Eq. 4's with gamma2 = 0: the same
        for a, b in zip(maps('per_location', False), base):
            assert torch.allclose(torch.tensor(a[kind]), torch.tensor(b[kind]), atol=1e-5), kind
        changed = max(float((torch.tensor(a[kind]) - torch.tensor(b[kind])).abs().max())
                      for a, b in zip(maps('per_location', True), base))
        assert changed > 1e-3, kind


def test_not_swin_and_bad_layer():
    with pytest.raises(ValueError, match='Swin backbones'):
        pick_block(torch.nn.Linear(2, 2), None)
    model = stock_swin(seed=0)
    assert pick_block(model, None)['layer'] == sum(small_cfg()['depths']) - 1
    with pytest.raises(ValueError, match=r'--layer must be an attention layer 0\.\.7'):
        pick_block(model, 8)


def _write_run(tmp_path, key_type, seed):
    """A run-like folder: config.py (the small Swin) and a detector-layout checkpoint."""
    from mmengine.config import Config
    run = tmp_path / key_type
    run.mkdir()
    cfg = dict(type='SwinTransformerMKey', key_type=key_type, num_charts=2, **small_cfg())
    Config(dict(model=dict(backbone=cfg))).dump(str(run / 'config.py'))
    model = randomize_(mkey_swin(key_type, 2, seed=seed), seed=seed, scale=0.05)
    torch.save({'state_dict': {'backbone.' + k: v for k, v in model.state_dict().items()}},
               run / 'epoch_1.pth')
    return str(run)


def test_attention_entry_two_runs_side_by_side(tmp_path):
    from PIL import Image
    import numpy as np
    from mkey_det.cli.analyze import attention
    img = tmp_path / 'img.png'
    pixels = (np.random.default_rng(0).random((90, 120, 3)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(img)
    runs = [_write_run(tmp_path, 'linear', 1), _write_run(tmp_path, 'kua', 2)]
    png = str(tmp_path / 'out' / 'attention-1-img.png')
    res = attention([dict(path=runs[0], label='base'), dict(path=runs[1], label='kua')],
                    [str(img)], layer=None, query=[30, 40], size=120, pngs=[png])
    assert [(m['label'], m['key_type'], m['charts'], m['cb_mode']) for m in res['models']] == [
        ('base', 'linear', None, None), ('kua', 'kua', 2, 'eq4')]
    entry = res['images'][0]
    assert entry['size'] == [120, 90] and entry['input_size'] == [120, 90]
    assert [r['label'] for r in entry['models']] == ['base', 'kua']
    last = entry['models'][0]
    assert (last['layer'], last['stage'], last['heads'], last['stride']) == (7, 3, 4, 32)
    assert last['grid'] == [3, 4] and last['query_cell'] == [1, 0]
    assert open(png, 'rb').read(8) == b'\x89PNG\r\n\x1a\n' and entry['png'] == png
    with pytest.raises(ValueError, match='outside the image'):
        attention([dict(path=runs[0], label='base')], [str(img)], query=[500, 1])
    with pytest.raises(ValueError, match='not an image'):
        attention([dict(path=runs[0], label='base')], [runs[0] + '/config.py'])
    assert not os.path.exists(tmp_path / 'out' / 'x.png')
