"""attn_impl: 'eager' is mmdet's window attention bit for bit, 'sdpa' the same attention fused."""
import copy

import pytest
import torch
import torch.nn.functional as F
from mmdet.models.backbones.swin import ShiftWindowMSA, WindowMSA
from mmdet.registry import MODELS

from mkey_det import ManifoldKeyWindowMSA, SwinTransformerMKey
from mkey_det.models.backbones import ATTN_IMPLS, set_attn_impl
from mkey_det.models.backbones.fused_window_attention import ImplWindowMSA

from conftest import mkey_swin, randomize_, rel_err, small_cfg, stock_swin

#: an input that every stage pads (15x19, 8x10, 4x5, 2x3 tokens: none a multiple of 7)
PADDED = (2, 3, 60, 76)
TOL = 1e-5


def _image(seed=5):
    return torch.randn(*PADDED, generator=torch.Generator().manual_seed(seed))


def _outputs_and_grads(model, x):
    """Outputs and the gradient of a fixed weighting of them: every parameter and the input."""
    model.zero_grad()
    x = x.clone().requires_grad_(True)
    outs = model(x)
    outs = outs if isinstance(outs, (tuple, list)) else (outs, )
    g = torch.Generator().manual_seed(7)
    sum((o * torch.randn(o.shape, generator=g)).sum() for o in outs).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    grads['input'] = x.grad.clone()
    return [o.detach() for o in outs], grads


def _assert_close(sdpa, eager):
    (outs_s, grads_s), (outs_e, grads_e) = sdpa, eager
    for i, (a, b) in enumerate(zip(outs_s, outs_e)):
        assert rel_err(a, b) < TOL, f'output {i}: {rel_err(a, b)}'
    assert grads_s.keys() == grads_e.keys()
    for name, g in grads_e.items():
        assert g.abs().sum() > 0, f'no gradient reaches {name}'
        assert rel_err(grads_s[name], g) < TOL, f'{name}: {rel_err(grads_s[name], g)}'


def test_options_and_validation():
    assert ATTN_IMPLS == ('eager', 'sdpa')
    with pytest.raises(ValueError, match=r"attn_impl must be one of \('eager', 'sdpa'\), got 'flash'"):
        SwinTransformerMKey(key_type='spatialk', num_charts=2, attn_impl='flash', **small_cfg())
    model = mkey_swin('linear')
    with pytest.raises(ValueError, match='attn_impl'):
        model.set_attn_impl('fused')
    assert model.attn_impl == 'eager'


def test_eager_is_stock_mmdet_bit_for_bit():
    """The default leaves mmdet's modules and forward alone: torch.equal against stock Swin."""
    stock = stock_swin(seed=3)
    model = mkey_swin('linear')
    assert all(type(b.attn.w_msa) is WindowMSA for _, b in model.named_blocks())
    model.load_state_dict(stock.state_dict(), strict=True)
    x = _image()
    with torch.no_grad():
        ref = stock(x)
        assert all(torch.equal(a, b) for a, b in zip(model(x), ref))
        # to 'sdpa' and back: mmdet's forward again, bit for bit
        model.set_attn_impl('sdpa')
        model.set_attn_impl('eager')
        assert all(torch.equal(a, b) for a, b in zip(model(x), ref))


@pytest.mark.parametrize('key_type', ['linear', 'spatialk'])
def test_sdpa_backbone_matches_eager_outputs_and_every_gradient(key_type):
    eager = randomize_(mkey_swin(key_type, 4), seed=2, scale=0.05)
    sdpa = copy.deepcopy(eager)
    assert sdpa.set_attn_impl('sdpa') == sum(small_cfg()['depths'])
    cls = ImplWindowMSA if key_type == 'linear' else ManifoldKeyWindowMSA
    assert all(type(b.attn.w_msa) is cls and b.attn.w_msa.attn_impl == 'sdpa'
               for _, b in sdpa.named_blocks())
    # same state dict, names and values
    assert list(sdpa.state_dict()) == list(eager.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(sdpa.state_dict().values(),
                                                 eager.state_dict().values()))
    x = _image()
    _assert_close(_outputs_and_grads(sdpa, x), _outputs_and_grads(eager, x))


def test_sdpa_runs_one_fused_call_per_block(monkeypatch):
    model = mkey_swin('kua', 2, attn_impl='sdpa')
    calls = []
    real = F.scaled_dot_product_attention

    def counted(*args, **kwargs):
        calls.append(kwargs.get('attn_mask').shape)
        return real(*args, **kwargs)

    monkeypatch.setattr(F, 'scaled_dot_product_attention', counted)
    with torch.no_grad():
        model(_image())
    assert len(calls) == sum(small_cfg()['depths'])
    # unshifted blocks: the bias alone, broadcast; shifted ones: bias + shift mask per window
    assert calls[0][0] == 1 and calls[1][0] > 1


@pytest.mark.parametrize('shift', [0, 3])
@pytest.mark.parametrize('key_type', ['linear', 'spatialk'])
def test_sdpa_block_matches_eager_shifted_and_unshifted(key_type, shift):
    """One (shifted) window attention of a padded 15x19 map, as a Swin block runs it."""
    torch.manual_seed(0)
    attn = ShiftWindowMSA(32, 4, 7, shift_size=shift)
    if key_type != 'linear':
        attn.w_msa = ManifoldKeyWindowMSA.from_window_msa(attn.w_msa, key_type, 3)
    randomize_(attn, seed=1, scale=0.05).eval()
    fused = copy.deepcopy(attn)
    assert set_attn_impl(fused, 'sdpa') == 1
    x = torch.randn(2, 15 * 19, 32, generator=torch.Generator().manual_seed(4))

    class Block(torch.nn.Module):
        def __init__(self, a):
            super().__init__()
            self.a = a

        def forward(self, q):
            return self.a(q, (15, 19))

    _assert_close(_outputs_and_grads(Block(fused), x), _outputs_and_grads(Block(attn), x))


def test_built_from_config_and_from_window_msa_keeps_the_impl():
    model = MODELS.build(dict(type='SwinTransformerMKey', key_type='simplek', num_charts=2,
                              attn_impl='sdpa', **small_cfg()))
    assert model.attn_impl == 'sdpa' and "attn_impl='sdpa'" in repr(model)
    assert all(b.attn.w_msa.attn_impl == 'sdpa' for _, b in model.named_blocks())
    stock = WindowMSA(16, 1, (7, 7))
    assert ManifoldKeyWindowMSA.from_window_msa(stock, 'spatialk', 2).attn_impl == 'eager'
    set_attn_impl(stock, 'sdpa')  # the linear-key module, switched in place
    assert type(stock) is ImplWindowMSA
    assert ManifoldKeyWindowMSA.from_window_msa(stock, 'spatialk', 2).attn_impl == 'sdpa'


def test_attention_dropout_is_the_kernels_while_training(monkeypatch):
    """A non-zero attn_drop_rate goes to the kernel as dropout_p in training, 0 in eval."""
    model = mkey_swin('spatialk', 2, attn_impl='sdpa', attn_drop_rate=0.25)
    seen = []
    real = F.scaled_dot_product_attention

    def spy(*args, **kwargs):
        seen.append(kwargs['dropout_p'])
        return real(*args, **kwargs)

    monkeypatch.setattr(F, 'scaled_dot_product_attention', spy)
    with torch.no_grad():
        model.eval()(_image())
        assert set(seen) == {0.0}
        seen.clear()
        model.train()(_image())
        assert set(seen) == {0.25}


def test_sdpa_under_cpu_autocast_bf16():
    """The combined mask is cast to the query dtype: runs under autocast, close to eager."""
    eager = randomize_(mkey_swin('spatialk', 2), seed=2, scale=0.05)
    sdpa = copy.deepcopy(eager)
    sdpa.set_attn_impl('sdpa')
    x = _image()
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        outs_s, outs_e = sdpa(x), eager(x)
    for a, b in zip(outs_s, outs_e):
        assert torch.isfinite(a).all()
        assert rel_err(a.float(), b.float()) < 0.05
