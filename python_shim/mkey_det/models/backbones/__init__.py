"""Backbones: mmdet's Swin with manifold keys (registered in mmdet's MODELS) and, where mmpretrain
is installed, mmpretrain's Vision Transformer and Swin Transformer V2 with manifold keys (in
mmpretrain's MODELS)."""
import importlib.util

from .fused_window_attention import ATTN_IMPLS, check_attn_impl, set_attn_impl
from .pretrained import backbone_state_dict, load_pretrained, official_from_mmdet, read_checkpoint
from .swin_mkey import SwinTransformerMKey
from .window_msa import ManifoldKeyWindowMSA, ManifoldQKV

__all__ = [
    'SwinTransformerMKey', 'ManifoldKeyWindowMSA', 'ManifoldQKV', 'load_pretrained',
    'official_from_mmdet', 'read_checkpoint', 'backbone_state_dict', 'ATTN_IMPLS',
    'check_attn_impl', 'set_attn_impl'
]

# The ViT host needs mmpretrain (an optional dependency): without it mkey_det imports all the same.
if importlib.util.find_spec('mmpretrain') is not None:
    from .swinv2_mkey import ManifoldKeyWindowMSAV2, SwinTransformerV2MKey  # noqa: E402
    from .vit_mkey import ManifoldKeyMultiheadAttention, VisionTransformerMKey  # noqa: E402

    __all__ += ['VisionTransformerMKey', 'ManifoldKeyMultiheadAttention',
                'SwinTransformerV2MKey', 'ManifoldKeyWindowMSAV2']
