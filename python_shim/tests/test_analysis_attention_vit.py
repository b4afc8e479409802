"""The class-token attention of a ViT (mkey_det.analysis.attention_vit): the captured
probabilities are what the block computes (an independent recomputation from q and k, and the
block's output rebuilt from them), for mmpretrain's linear ViT and for manifold keys; the CLI
entry draws ViT runs side by side and refuses what has no meaning for a ViT."""
from __future__ import annotations

import math

import pytest
import torch

from conftest import randomize_
from mkey_det.analysis.attention_vit import analyse_tokens, class_maps, is_vit, token_attention
from mkey_det.models.backbones.vit_mkey import VisionTransformerMKey
from mmpretrain.models.backbones import VisionTransformer

#: 32 px images, 8 px patches: a 4 x 4 patch grid + the class token = 17 tokens
ARCH = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
SMALL = dict(arch=ARCH, img_size=32, patch_size=8, drop_path_rate=0.0)
IMAGE = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def vit(key_type: str, seed: int = 0):
    """A tiny ViT with random weights, perturbed so that attention is far from uniform:
    mmpretrain's own class for ``'stock'``, ours with that key otherwise."""
    torch.manual_seed(seed)
    if key_type == 'stock':
        model = VisionTransformer(**SMALL)
    else:
        model = VisionTransformerMKey(key_type=key_type, num_charts=2, **SMALL)
    model.eval()  # mmpretrain's train() returns None
    return randomize_(model, seed=seed + 1, scale=0.1)


def recomputed(attn, x: torch.Tensor):
    """``(P, v)``, each ``(B, heads, N, .)`` float64, from the attention's input by hand:
    q and k from the fused Linear's row blocks (stock) or the separate projections and the key
    module (ManifoldQKV), P = softmax(q k^T / sqrt(d))."""
    b, n, c = x.shape
    heads = attn.num_heads
    if isinstance(attn.qkv, torch.nn.Linear):
        w, bias = attn.qkv.weight, attn.qkv.bias
        q, k, v = (x @ w[i * c:(i + 1) * c].T + bias[i * c:(i + 1) * c] for i in range(3))
    else:
        q, k, v = attn.qkv.q(x), attn.qkv.key(x), attn.qkv.v(x)
    q, k, v = (t.reshape(b, n, heads, c // heads).transpose(1, 2).double() for t in (q, k, v))
    logits = q @ k.transpose(-2, -1) / math.sqrt(c // heads)
    return logits.softmax(-1), v


@pytest.mark.parametrize('key_type', ['stock', 'spatialk', 'kua'])
@pytest.mark.parametrize('layer', [0, 1])
def test_captured_probabilities_are_the_blocks_own(key_type, layer):
    model = vit(key_type, seed=3)
    attn = model.layers[layer].attn
    own = attn.scaled_dot_product_attention
    seen = {}
    handles = [attn.register_forward_pre_hook(lambda m, args: seen.update(x=args[0])),
               attn.register_forward_hook(lambda m, i, o: seen.update(out=o))]
    try:
        ta = token_attention(model, IMAGE, layer, stop=False)
    finally:
        for h in handles:
            h.remove()
    assert (ta.layer, ta.layers, ta.grid, ta.extra, ta.stride, ta.heads) == (layer, 2, (4, 4), 1, 8, 2)
    assert ta.probs.shape == (2, 17, 17)
    rows = ta.probs.sum(-1)
    assert torch.allclose(rows, torch.ones_like(rows), atol=1e-6)
    probs, v = recomputed(attn, seen['x'])
    assert torch.allclose(ta.probs, probs[0], atol=1e-6), (ta.probs - probs[0]).abs().max()
    # not a trivially uniform attention: the comparison above means something
    assert float(ta.probs[:, 0].max()) > 2 / 17
    # the block's output, rebuilt from the captured probabilities and its values
    b, n, c = seen['x'].shape
    rebuilt = attn.proj((ta.probs[None] @ v).transpose(1, 2).reshape(b, n, c).float())
    assert torch.allclose(rebuilt, seen['out'], atol=1e-5, rtol=1e-4)
    assert attn.scaled_dot_product_attention is own  # the block's own function is back


def test_the_forward_pass_is_unchanged_and_stops_early():
    model = vit('spatialk', seed=4)
    with torch.no_grad():
        want = model(IMAGE)[0]
    token_attention(model, IMAGE, 0)  # stop=True: ends inside block 0
    with torch.no_grad():
        assert torch.equal(model(IMAGE)[0], want)


def test_paper_and_fast_key_order_give_the_same_maps():
    model = vit('spatialk', seed=5)
    maps = {}
    for order in ('paper', 'fast'):
        model.set_key_order(order)
        maps[order] = token_attention(model, IMAGE).probs
    assert torch.allclose(maps['paper'], maps['fast'], atol=1e-6)


def test_class_maps_and_numbers():
    ta = token_attention(vit('kua', seed=6), IMAGE)
    maps = class_maps(ta)
    assert torch.equal(maps, ta.probs[:, 0, 1:])
    res = analyse_tokens(ta)
    assert (res['backbone'], res['layer'], res['heads'], res['grid'], res['tokens']) == (
        'vit', 1, 2, [4, 4], 17)
    assert len(res['class_maps']) == 2 and len(res['class_maps'][0]) == 4
    for h, st in enumerate(res['head_stats']):
        assert st['self'] == pytest.approx(float(ta.probs[h, 0, 0]))
        assert st['self'] + st['patch_share'] == pytest.approx(1, abs=1e-6)
        y, x = st['max_cell']
        assert res['class_maps'][h][y][x] == pytest.approx(st['max'], abs=1e-6)
        assert st['max'] == pytest.approx(float(maps[h].max()))
        assert 0 <= st['entropy'] <= math.log(17) + 1e-9


def test_bad_layer_no_class_token_and_not_a_vit():
    model = vit('stock')
    with pytest.raises(ValueError, match=r"--layer must be an attention layer 0\.\.1 \(the ViT's blocks\), got 2"):
        token_attention(model, IMAGE, 2)
    no_cls = VisionTransformer(**SMALL, with_cls_token=False, out_type='featmap').eval()
    with pytest.raises(ValueError, match='has no class token'):
        token_attention(no_cls, IMAGE)
    assert is_vit(model) and is_vit(vit('spatialk')) and not is_vit(torch.nn.Linear(2, 2))


#: a run's own normalisation (mmpretrain configs set data_preprocessor at the top level)
MEAN, STD = [100.0, 110.0, 120.0], [50.0, 60.0, 70.0]


def _write_vit_run(tmp_path, key_type, seed):
    """A run-like folder as `mkey-det pretrain` leaves one: an mmpretrain config.py (the tiny
    ViT) and a classifier checkpoint (backbone. and head. tensors)."""
    from mmengine.config import Config
    run = tmp_path / f'vit-{key_type}'
    run.mkdir()
    backbone = dict(type='VisionTransformerMKey', key_type=key_type, num_charts=2,
                    init_cfg=None, **SMALL)
    Config(dict(default_scope='mmpretrain',
                model=dict(type='ImageClassifier', backbone=backbone,
                           head=dict(type='LinearClsHead', num_classes=3, in_channels=32)),
                data_preprocessor=dict(num_classes=3, mean=MEAN, std=STD, to_rgb=True))
           ).dump(str(run / 'config.py'))
    model = vit(key_type, seed)
    state = {'backbone.' + k: v for k, v in model.state_dict().items()}
    state.update({'head.fc.weight': torch.zeros(3, 32), 'head.fc.bias': torch.zeros(3)})
    torch.save({'meta': {}, 'state_dict': state}, run / 'epoch_1.pth')
    return str(run), model


def test_attention_entry_two_vit_runs_side_by_side(tmp_path):
    import numpy as np
    from PIL import Image

    from mkey_det.analysis.attention import load_image
    from mkey_det.cli.analyze import attention
    from test_analysis_attention import _write_run

    img = tmp_path / 'img.png'
    Image.fromarray((np.random.default_rng(0).random((40, 60, 3)) * 255).astype(np.uint8)).save(img)
    (base, base_model), (mkey, mkey_model) = (_write_vit_run(tmp_path, 'linear', 1),
                                              _write_vit_run(tmp_path, 'spatialk', 2))
    png = str(tmp_path / 'out' / 'attention-1-img.png')
    sources = [dict(path=base, label='vit'), dict(path=mkey, label='spatialk')]
    # one block's own class-token row (the rollout default: test_analysis_rollout.py)
    res = attention(sources, [str(img)], pngs=[png], method='block')
    assert res['backbone'] == 'vit'
    assert [(m['label'], m['backbone'], m['key_type'], m['charts']) for m in res['models']] == [
        ('vit', 'vit', 'linear', None), ('spatialk', 'vit', 'spatialk', 2)]
    entry = res['images'][0]
    # a 60 x 40 file: resized to cover 32 x 32 (48 x 32), the centre 32 x 32 fed: x 10..50
    assert entry['size'] == [60, 40] and entry['input_size'] == [32, 32] and entry['query'] is None
    assert entry['crop'] == [10.0, 0.0, 40.0, 40.0]
    with open(png, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n' and entry['png'] == png
    # what the run's weights compute on the image normalised as its config says
    image = load_image(str(img), 32, mean=MEAN, std=STD, crop=(32, 32))
    for r, model in zip(entry['models'], (base_model, mkey_model)):
        assert (r['backbone'], r['layer'], r['heads'], r['grid'], r['stride']) == ('vit', 1, 2, [4, 4], 8)
        want = analyse_tokens(token_attention(model, image['tensor']))['class_maps']
        assert torch.allclose(torch.tensor(r['class_maps']), torch.tensor(want), atol=1e-5)

    # the stock key takes another size (mmpretrain interpolates the position embedding) ...
    wide = attention(sources[:1], [str(img)], layer=0, size=64)['images'][0]['models'][0]
    assert wide['grid'] == [8, 8] and wide['layer'] == 0
    # ... a manifold key is built for its token count
    with pytest.raises(ValueError, match='is fixed to 17 tokens'):
        attention(sources[1:], [str(img)], size=64)
    with pytest.raises(ValueError, match='--query has no meaning for a ViT'):
        attention(sources, [str(img)], query=[10, 10])
    with pytest.raises(ValueError, match=r'--layer must be an attention layer 0\.\.1'):
        attention(sources, [str(img)], layer=2)
    swin = _write_run(tmp_path, 'linear', 3)
    with pytest.raises(ValueError, match='compares models of one kind \\(swin is a Swin, vit is a ViT\\)'):
        attention([dict(path=swin, label='swin'), sources[0]], [str(img)])
