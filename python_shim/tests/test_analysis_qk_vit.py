"""The query-key interaction of ViT blocks (mkey_det.analysis.qk on mmpretrain's
VisionTransformer and VisionTransformerMKey): every block sees all N tokens, the class token
included; same definitions as for Swin, checked on small saved ViT checkpoints through the CLI
entry."""
from __future__ import annotations

import pytest
import torch

from conftest import MANIFOLD
from mkey_det.analysis.qk import backbone_interactions, vit_tokens
from mkey_det.models.backbones import load_pretrained
from mkey_det.models.backbones.vit_mkey import VisionTransformerMKey
from mmpretrain.models.backbones import VisionTransformer
from test_analysis_attention_vit import SMALL, _write_vit_run, vit


def test_linear_vit_block_is_scale_wq_t_wk():
    model = vit('stock', seed=1)
    layers = backbone_interactions(model)
    assert [(entry['stage'], entry['block'], entry['layer'], entry['width'], entry['tokens'],
             entry['charts']) for entry in layers] == [(0, 0, 0, 32, 17, 1), (0, 1, 1, 32, 17, 1)]
    attn = model.layers[1].attn
    c, d = 32, 16
    w = attn.qkv.weight.detach().double()
    for h in range(2):
        a = d ** -0.5 * w[h * d:(h + 1) * d].T @ w[c + h * d:c + (h + 1) * d]
        got = layers[1]['heads'][h]
        assert torch.allclose(torch.tensor(got['singular_values'], dtype=torch.double),
                              torch.linalg.svdvals(a)[:d], rtol=1e-9, atol=1e-12)
        assert -1 <= got['similarity'] <= 1
    assert all(entry['off_zero_offset_share'] == pytest.approx(0.0, abs=1e-12) for entry in layers)


@pytest.mark.parametrize('key_type', MANIFOLD)
def test_manifold_vit_started_from_linear_has_its_interaction(key_type):
    stock = vit('stock', seed=2)
    torch.manual_seed(3)
    model = VisionTransformerMKey(key_type=key_type, num_charts=2, **SMALL).eval()
    load_pretrained(model, {'state_dict': stock.state_dict()}, convert=False)
    ref, got = backbone_interactions(stock), backbone_interactions(model)
    for r, g in zip(ref, got):
        assert (g['charts'], g['tokens']) == (2, 17)
        for hr, hg in zip(r['heads'], g['heads']):
            assert hg['similarity'] == pytest.approx(hr['similarity'], abs=1e-6)
            assert hg['singular_values'] == pytest.approx(hr['singular_values'], rel=1e-5, abs=1e-9)


def test_vit_s_has_197_tokens():
    model = VisionTransformer(arch=dict(embed_dims=48, num_layers=1, num_heads=6,
                                        feedforward_channels=48), img_size=224, patch_size=16)
    assert vit_tokens(model) == 197
    assert backbone_interactions(model)[0]['tokens'] == 197


def test_qk_entry_on_saved_vit_runs(tmp_path):
    from mkey_det.cli.analyze import qk
    from test_analysis_attention import _write_run

    (base, base_model), (mkey, mkey_model) = (_write_vit_run(tmp_path, 'linear', 1),
                                              _write_vit_run(tmp_path, 'vanillak', 2))
    plot = str(tmp_path / 'qk.png')
    res = qk([dict(path=base, label='vit'), dict(path=mkey, label='vanillak')], plot=plot)
    assert res['backbone'] == 'vit' and res['plot'] == plot
    assert [(m['label'], m['backbone'], m['key_type'], m['charts']) for m in res['models']] == [
        ('vit', 'vit', 'linear', None), ('vanillak', 'vit', 'vanillak', 2)]
    for m, model in zip(res['models'], (base_model, mkey_model)):
        want = backbone_interactions(model)  # the saved weights, loaded strictly
        assert [entry['tokens'] for entry in m['layers']] == [17, 17]
        for g, w in zip(m['layers'], want):
            assert g['similarity_mean'] == pytest.approx(w['similarity_mean'], abs=1e-9)
    assert res['models'][1]['layers'][0]['off_zero_offset_share'] > 0
    with open(plot, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    swin = _write_run(tmp_path, 'linear', 3)
    with pytest.raises(ValueError, match=r'analyze qk compares models of one kind \(vit is a ViT, swin is a Swin\)'):
        qk([dict(path=base, label='vit'), dict(path=swin, label='swin')])
