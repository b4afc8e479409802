"""mmcv ops with bfloat16 inputs (``--amp bf16``): mmcv 2.1.0 has no bf16 RoIAlign (nor CPU nms);
mkey_det adds a float32 detour. Runs on CPU, whose kernels lack bf16 as the CUDA RoIAlign does."""
import pytest
import torch
from mmcv.ops import RoIAlign

import mkey_det  # noqa: F401  (applies allow_bf16_mmcv_ops)


def _inputs(device='cpu'):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 16, 16, generator=g).to(device)
    rois = torch.tensor([[0., 1., 1., 9., 9.], [1., 2., 3., 14., 12.]], device=device)
    return x, rois


@pytest.mark.parametrize('device', ['cpu', pytest.param('cuda', marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason='needs a CUDA GPU'))])
def test_bf16_inputs_match_float32_forward_and_backward(device):
    layer = RoIAlign((7, 7), 1.0, 2, 'avg', True)
    x, rois = _inputs(device)
    ref_x = x.clone().requires_grad_()
    ref = layer(ref_x, rois)
    ref.sum().backward()

    bx = x.bfloat16().requires_grad_()
    out = layer(bx, rois.bfloat16())
    assert out.dtype == torch.bfloat16 and out.shape == ref.shape == (2, 4, 7, 7)
    torch.testing.assert_close(out.float(), ref.detach(), atol=0.05, rtol=0.02)
    out.float().sum().backward()
    assert bx.grad.dtype == torch.bfloat16
    torch.testing.assert_close(bx.grad.float(), ref_x.grad, atol=0.05, rtol=0.02)

    # Under bf16 autocast, as AmpOptimWrapper(dtype='bfloat16') runs the RoI heads.
    with torch.autocast(device_type=device, dtype=torch.bfloat16):
        auto = layer(x.bfloat16(), rois)
    assert torch.isfinite(auto.float()).all()


def test_other_dtypes_take_mmcv_path_unchanged():
    layer = RoIAlign((4, 4), 0.5, 0, 'avg', True)
    x, rois = _inputs()
    from mmcv.ops.roi_align import roi_align
    expected = roi_align(x, rois, (4, 4), 0.5, 0, 'avg', True)
    assert torch.equal(layer(x, rois), expected)


def test_nms_takes_bf16_boxes_and_scores():
    from mmcv.ops import nms
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [20., 20., 30., 30.]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    _, keep = nms(boxes.bfloat16(), scores.bfloat16(), 0.5)
    assert keep.tolist() == [0, 2]


def test_mask_rcnn_trains_a_step_under_bf16_autocast(tmp_path):
    """The whole detector (RPN nms, RoIAlign of boxes and masks) forward + backward in bf16."""
    from mmengine.config import Config
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mkey_det.bench.train_worker import make_batch
    from mkey_det.bench.train import write_config

    register_all_modules()
    cfg = Config.fromfile(write_config(str(tmp_path / 'spatialk.py'), 'spatialk', charts=2))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    data = model.data_preprocessor(make_batch(1, 128, 3), True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        losses = model(**data, mode='loss')
    loss, _ = model.parse_losses(losses)
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in model.backbone.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
