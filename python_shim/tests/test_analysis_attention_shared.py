"""What the Swin and the ViT attention capture share (:mod:`mkey_det.analysis.attention`): the
layer numbering check, the one-image check, and running a backbone until a hook has the maps."""
from __future__ import annotations

import pytest
import torch

from mkey_det.analysis.attention import _Captured, check_one_image, layer_index, run_until_captured


def test_layer_index_counts_from_zero_and_names_the_numbering() -> None:
    assert layer_index(None, 4, 'x') == 3
    assert layer_index(0, 4, 'x') == 0
    for bad in (4, -1, True, 1.0):
        with pytest.raises(ValueError, match=r'--layer must be an attention layer 0\.\.3 \(the blocks\), got '):
            layer_index(bad, 4, 'the blocks')


def test_check_one_image_names_the_caller() -> None:
    check_one_image(torch.zeros(1, 3, 8, 8), 'f')
    with pytest.raises(ValueError, match=r'^f takes one image \(1, 3, H, W\), got \(2, 3, 8, 8\)$'):
        check_one_image(torch.zeros(2, 3, 8, 8), 'f')


def test_run_until_captured_stops_at_the_hook_and_always_removes_it() -> None:
    model = torch.nn.Sequential(torch.nn.Identity(), torch.nn.ReLU())
    seen: dict = {}
    after = []

    def hook(_m, _i, out):
        seen['probs'] = out
        raise _Captured

    handle = model[0].register_forward_hook(hook)
    model[1].register_forward_hook(lambda *_: after.append(1))
    run_until_captured(model, torch.ones(1), seen, handle.remove, 'no maps')
    assert 'probs' in seen and after == []  # stopped before the second module
    assert not model[0]._forward_hooks  # removed
    removed = []
    with pytest.raises(RuntimeError, match='^no maps$'):
        run_until_captured(model, torch.ones(1), {}, lambda: removed.append(1), 'no maps')
    assert removed == [1]
