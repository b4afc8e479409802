"""Backbones: mmdet's Swin with manifold keys (registered in mmdet's MODELS)."""
from .pretrained import backbone_state_dict, load_pretrained, official_from_mmdet, read_checkpoint
from .swin_mkey import SwinTransformerMKey
from .window_msa import ManifoldKeyWindowMSA, ManifoldQKV

__all__ = [
    'SwinTransformerMKey', 'ManifoldKeyWindowMSA', 'ManifoldQKV', 'load_pretrained',
    'official_from_mmdet', 'read_checkpoint', 'backbone_state_dict'
]
