"""Loading Swin checkpoints into :class:`SwinTransformerMKey` (function-preserving keys).

Accepted checkpoints (a path or an already loaded dict):

* the official Swin format (``swin_tiny_patch4_window7_224.pth``: ``layers.0.blocks.0.attn.qkv
  .weight`` ... under ``'model'``), converted with mmdet's ``swin_converter``;
* timm's Swin layout (timm >= 0.9, e.g. ``model.safetensors`` turned into a ``.pth``): the
  official names except that each stage's patch merging sits at the start of the next stage
  (``layers.1.downsample`` is the official ``layers.0.downsample``) and the classifier is
  ``head.fc``; the tensors are the same, so it is renamed to the official layout first;
* mmdet-format Swin weights, with or without a ``backbone.`` prefix (other prefixes, e.g. a
  detector's neck and heads, are ignored), under ``'state_dict'``, ``'model'`` or plain;
* checkpoints of :class:`SwinTransformerMKey` itself (same ``key_type`` and ``num_charts``),
  which load back exactly.

Shared weights load as they are. Where the model has a manifold key and the checkpoint a
linear ``qkv``, q and v come from ``qkv`` and the key starts from the checkpoint's ``W_k``
function-preservingly (see each key's ``init_from_linear``). A tensor whose shape does not fit
is refused with a ValueError naming the key and both shapes.
"""
from __future__ import annotations

import os
import pickle
import re
from collections import OrderedDict
from typing import Dict, List, Mapping, Optional, Union

import torch
from mmengine.logging import print_log

__all__ = ['load_pretrained', 'read_checkpoint', 'backbone_state_dict', 'official_from_mmdet']

_QKV = '.qkv.'


class _Skipped:
    """Stands in for a non-tensor object of a checkpoint (an mmengine ``HistoryBuffer``, a numpy
    array or scalar, ``getattr``) while loading with torch's safe unpickler: it is built from
    its pickled arguments without running any of the original code, and then ignored."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass

    def __repr__(self) -> str:
        return '<skipped>'


def _skipped_call(*args, **kwargs) -> _Skipped:
    return _Skipped()


#: Globals that mmengine's Runner checkpoints hold outside the tensors (message hub history
#: buffers with their statistics methods, numpy values): read as :class:`_Skipped`.
_SKIPPED_CLASSES = ('mmengine.logging.history_buffer.HistoryBuffer', 'numpy.ndarray',
                    'numpy.dtype')
_SKIPPED_FUNCTIONS = ('builtins.getattr', '__builtin__.getattr',
                      'numpy._core.multiarray._reconstruct', 'numpy.core.multiarray._reconstruct',
                      'numpy._core.multiarray.scalar', 'numpy.core.multiarray.scalar')


def read_checkpoint(path: str) -> dict:
    """Load a checkpoint file on the CPU with torch's safe loader (``weights_only=True``).

    A checkpoint written by mmengine's Runner also holds a message hub (``HistoryBuffer``
    objects, numpy values) that the safe loader refuses; if the first try fails, those objects
    are read as inert placeholders (no code of theirs runs, nothing global is touched) and the
    tensors come back intact. Other locations
    (``http://``, ``open-mmlab://``...) go through mmengine's ``CheckpointLoader``.
    """
    if not os.path.isfile(path):
        if '://' in path:
            from mmengine.runner.checkpoint import CheckpointLoader
            return CheckpointLoader.load_checkpoint(path, map_location='cpu')
        raise ValueError(f'checkpoint file not found: {path!r}')
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError:
        pass
    # Only our inert stand-ins while reading: the globally allow-listed real classes (see
    # mkey_det.compat) would run HistoryBuffer.__setstate__, which writes the pickled
    # statistics methods into HistoryBuffer's class-level registry.
    stand_ins = [(_Skipped, n) for n in _SKIPPED_CLASSES] + \
        [(_skipped_call, n) for n in _SKIPPED_FUNCTIONS]
    saved = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    try:
        with torch.serialization.safe_globals(stand_ins):
            return torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = next((line.strip() for line in str(exc).splitlines()
                       if 'Unsupported global' in line), str(exc).splitlines()[0])
        raise ValueError(f'{path}: refused by torch.load(weights_only=True): {reason} Save the '
                         'state dict alone (torch.save(model.state_dict())), or load the file '
                         'yourself if you trust it and pass the dict.') from None
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(saved)


_TIMM_DOWNSAMPLE = re.compile(r'layers\.(\d+)\.downsample\.')


def _from_timm(sd: 'OrderedDict[str, torch.Tensor]') -> 'OrderedDict[str, torch.Tensor]':
    """timm's Swin layout renamed to the official one (unchanged when it is not timm's): timm
    puts stage i's patch merging at the start of stage i + 1 (no ``layers.0.downsample``) and
    names the classifier ``head.fc``."""
    stages = {int(m.group(1)) for m in map(_TIMM_DOWNSAMPLE.match, sd) if m}
    if not stages or 0 in stages:
        return sd
    out = OrderedDict()
    for k, v in sd.items():
        k = _TIMM_DOWNSAMPLE.sub(lambda m: f'layers.{int(m.group(1)) - 1}.downsample.', k, count=1)
        out[k[:5] + k[8:] if k.startswith('head.fc.') else k] = v
    return out


def _is_official(keys: List[str]) -> bool:
    return any(k.startswith('layers.') or k.startswith('patch_embed.proj.') for k in keys)


def backbone_state_dict(checkpoint: Mapping, convert: Optional[bool] = None):
    """The backbone tensors of a checkpoint dict, in mmdet's naming.

    Returns ``(state_dict, ignored)``: ``ignored`` lists the checkpoint keys that are not the
    backbone's (e.g. ``head.*``, ``neck.*``). ``convert``: apply mmdet's ``swin_converter``
    (official Swin naming); None detects it (keys ``layers.*`` / ``patch_embed.proj.*``).
    """
    sd, ignored, _ = _backbone_state_dict(checkpoint, convert)
    return sd, ignored


def _backbone_state_dict(checkpoint: Mapping, convert: Optional[bool]):
    """:func:`backbone_state_dict` plus the layout it found: ``'timm'``, ``'official'`` (Swin's
    own release naming) or ``'mmdet'`` (mmdet's naming: a detector or mkey-det checkpoint)."""
    from mmdet.models.backbones.swin import swin_converter
    ckpt = checkpoint
    for field in ('state_dict', 'model'):
        if isinstance(ckpt, Mapping) and field in ckpt and isinstance(ckpt[field], Mapping):
            ckpt = ckpt[field]
            break
    if not isinstance(ckpt, Mapping) or not ckpt:
        raise ValueError('checkpoint holds no state dict (expected a non-empty mapping of '
                         "tensors, plain or under 'state_dict' / 'model')")
    sd = OrderedDict((k[7:] if k.startswith('module.') else k, v) for k, v in ckpt.items()
                     if torch.is_tensor(v))
    ignored = [k for k, v in ckpt.items() if not torch.is_tensor(v)]
    renamed = _from_timm(sd)
    layout = 'timm' if renamed is not sd else 'official' if _is_official(list(sd)) else 'mmdet'
    sd = renamed
    if convert is None:
        convert = _is_official(list(sd))
    if convert:
        heads = [k for k in sd if k.startswith('head')]
        sd = swin_converter(sd)
        ignored += heads
    if any(k.startswith('backbone.') for k in sd):
        ignored += [k for k in sd if not k.startswith('backbone.')]
        sd = OrderedDict((k[9:], v) for k, v in sd.items() if k.startswith('backbone.'))
    return sd, ignored, layout


def _short(names: List[str], limit: int = 8) -> str:
    if len(names) <= limit:
        return ', '.join(names) if names else '-'
    return ', '.join(names[:limit]) + f', ... ({len(names) - limit} more)'


@torch.no_grad()
def load_pretrained(model: torch.nn.Module, checkpoint: Union[str, Mapping],
                    convert: Optional[bool] = None, chart_noise: Optional[float] = None,
                    generator: Optional[torch.Generator] = None,
                    logger: str = 'current', strict: bool = True) -> Dict[str, List[str]]:
    """Load Swin weights into a ``SwinTransformerMKey`` (or mmdet ``SwinTransformer``).

    Args:
        model: the backbone.
        checkpoint: a path or a loaded checkpoint dict (formats in the module docstring).
        convert: official-format conversion; None detects it.
        chart_noise: chart perturbation of the created keys (None: the model's).
        generator: random generator of that perturbation.
        logger: mmengine logger name for the report.
        strict: refuse a checkpoint that leaves any model tensor at its initialisation other
            than the per-output norms ``norm0..norm3`` (which official Swin checkpoints do not
            have, as in MMDetection). False: load what fits and report the rest.

    Returns:
        ``dict(loaded=[...], created=[...], ignored=[...], missing=[...], layout=...)`` with model keys
        (``loaded``: copied; ``created``: built from a checkpoint ``qkv``; ``missing``: kept
        at their initialisation) and checkpoint keys (``ignored``: not used); ``layout``: 'timm', 'official' or 'mmdet', the naming found.

    Raises:
        ValueError: a tensor shape does not fit (names the key and both shapes), a block's
            key parameters are of another key type than the model's, or (``strict``) model
            tensors the checkpoint does not provide (names the first ones and the model).
    """
    source = checkpoint if isinstance(checkpoint, str) else '<dict>'
    raw = read_checkpoint(checkpoint) if isinstance(checkpoint, str) else checkpoint
    sd, ignored, layout = _backbone_state_dict(raw, convert)
    own = model.state_dict()
    used = set()
    loaded: List[str] = []
    created: List[str] = []
    new_sd = OrderedDict()
    to_create = []  # (attention, qkv weight, qkv bias): keys started from a linear key

    manifold = dict(model.manifold_attentions()) if hasattr(model, 'manifold_attentions') \
        else {}
    for prefix, msa in manifold.items():
        p = prefix + _QKV
        model_keys = sorted(k for k in own if k.startswith(p))
        ckpt_keys = sorted(k for k in sd if k.startswith(p))
        if p + 'weight' in sd:  # a linear (fused) qkv: q, v copied, key started from W_k
            stray = [k for k in ckpt_keys if k not in (p + 'weight', p + 'bias')]
            if stray:
                raise ValueError(f'checkpoint mixes a fused qkv and other key tensors at '
                                 f'{p}: {stray}')
            w, b = sd[p + 'weight'], sd.get(p + 'bias')
            c = msa.embed_dims
            if tuple(w.shape) != (3 * c, c):
                raise ValueError(f'checkpoint key {p}weight has shape {tuple(w.shape)}; the '
                                 f'model needs ({3 * c}, {c}) to build q, k and v from it')
            if b is not None and tuple(b.shape) != (3 * c, ):
                raise ValueError(f'checkpoint key {p}bias has shape {tuple(b.shape)}; the '
                                 f'model needs ({3 * c},)')
            if b is not None and msa.qkv.q.bias is None:
                ignored.append(p + 'bias')
                b = None
            to_create.append((msa, w, b))
            created += model_keys
            used.update(k for k in (p + 'weight', p + 'bias') if k in sd)
        elif ckpt_keys:  # our own format: the sets must agree
            if ckpt_keys != model_keys:
                raise ValueError(
                    f'checkpoint key tensors at {p} {[k[len(p):] for k in ckpt_keys]} do not '
                    f'match the model ({model.key_type!r}, {model.num_charts} charts): '
                    f'{[k[len(p):] for k in model_keys]}')
        # else: missing, reported below

    for k, v in sd.items():
        if k in used:
            continue
        if k not in own:
            if _QKV in k and k.split(_QKV, 1)[0] + _QKV + 'weight' in own:
                raise ValueError(f'checkpoint key {k} belongs to a manifold key, but the model '
                                 f"has key_type={getattr(model, 'key_type', 'linear')!r} there")
            ignored.append(k)
            continue
        if tuple(v.shape) != tuple(own[k].shape):
            raise ValueError(f'checkpoint key {k} has shape {tuple(v.shape)}, the model\'s '
                             f'{k} has shape {tuple(own[k].shape)}')
        new_sd[k] = v
        loaded.append(k)
    if strict:
        _refuse_missing(model, source, [k for k in own if k not in new_sd and k not in created])
    # everything fits: only now touch the model
    for msa, w, b in to_create:
        if b is None and msa.qkv.q.bias is not None:  # keep the model's q / v biases
            b = torch.cat([msa.qkv.q.bias, torch.zeros_like(msa.qkv.q.bias), msa.qkv.v.bias])
        msa.init_from_qkv(w.to(msa.qkv.q.weight), None if b is None else b.to(msa.qkv.q.bias),
                          chart_noise=chart_noise, generator=generator)
    missing = [k for k in own if k not in new_sd and k not in created]
    full = OrderedDict((k, new_sd.get(k, own[k])) for k in own)  # own: live, created included
    model.load_state_dict(full, strict=True)

    key_tensors = [k for k in own if _QKV + 'key.' in k]
    if key_tensors and not created and all(k in new_sd for k in key_tensors):
        # A manifold-key checkpoint (e.g. of `mkey-det pretrain`): nothing was started afresh.
        print_log(f'load_pretrained({source}): every manifold-key weight loaded from the checkpoint '
                  f'({len(key_tensors)} key tensors in {len(manifold)} '
                  f'attentions; no function-preserving start)', logger=logger)
    print_log(f'load_pretrained({source}, {layout} layout): {len(loaded)} tensors loaded, {len(created)} created '
              f'from the checkpoint linear keys (function-preserving: {_short(created, 4)}), '
              f'{len(ignored)} checkpoint tensors ignored ({_short(ignored)}), '
              f'{len(missing)} model tensors kept at their initialisation '
              f'({_short(missing)})', logger=logger)
    return dict(loaded=loaded, created=created, ignored=ignored, missing=missing, layout=layout)


#: model tensors a Swin checkpoint may lack: the per-output norms MMDetection adds (official
#: checkpoints have a single final ``norm``, which is not mapped onto them, as in mmdet).
#: Also the relative position index buffers, which timm does not save (they are fixed by the
#: window size and rebuilt at init).
_MAY_BE_MISSING = re.compile(r'norm\d+\.|.*\.relative_position_index$')


def _refuse_missing(model: torch.nn.Module, source: str, missing: List[str]) -> None:
    """ValueError naming the first model tensors ``source`` does not provide and the model."""
    unexpected = [k for k in missing if not _MAY_BE_MISSING.match(k)]
    if not unexpected:
        return
    key_type = getattr(model, 'key_type', 'linear')
    charts = getattr(model, 'num_charts', None)
    what = f'key_type={key_type!r}' + (f', {charts} charts' if key_type != 'linear' else '')
    raise ValueError(
        f'checkpoint {source} does not fit the backbone ({what}): {len(unexpected)} of its '
        f'tensors are missing from the checkpoint, first {_short(unexpected, 3)}; give a Swin '
        f'checkpoint (official, timm or mmdet layout) or one of this key type and chart count, or '
        f'load non-strictly (init_cfg strict=False)')


def official_from_mmdet(state_dict: Mapping) -> 'OrderedDict[str, torch.Tensor]':
    """Inverse of mmdet's ``swin_converter``: mmdet Swin keys (``backbone.`` prefix optional)
    to the official Swin naming (``layers.i.blocks.j.attn.qkv.weight`` ...).

    ``norm{last}`` becomes the official final ``norm``; the other ``norm{i}`` have no official
    counterpart and are dropped. Used to write official-format checkpoints in tests/tools.
    """
    sd = OrderedDict((k[9:] if k.startswith('backbone.') else k, v)
                     for k, v in state_dict.items())
    norms = sorted(int(k[4]) for k in sd if k.startswith('norm') and k[4:5].isdigit())
    last = max(norms) if norms else None
    out = OrderedDict()
    for k, v in sd.items():
        if k.startswith('stages.'):
            nk = k.replace('stages', 'layers', 1)
            if '.attn.w_msa.' in nk:
                nk = nk.replace('attn.w_msa.', 'attn.')
            elif '.ffn.layers.0.0.' in nk:
                nk = nk.replace('ffn.layers.0.0.', 'mlp.fc1.')
            elif '.ffn.layers.1.' in nk:
                nk = nk.replace('ffn.layers.1.', 'mlp.fc2.')
            elif '.downsample.reduction.' in nk:
                o, i = v.shape
                v = v.reshape(o, i // 4, 4).transpose(1, 2)[:, [0, 2, 1, 3], :].reshape(o, i)
            elif '.downsample.norm.' in nk:
                i = v.shape[0]
                v = v.reshape(i // 4, 4).transpose(0, 1)[[0, 2, 1, 3], :].reshape(i)
        elif k.startswith('patch_embed.projection.'):
            nk = k.replace('projection', 'proj', 1)
        elif k.startswith('norm') and k[4:5].isdigit():
            if int(k[4]) != last:
                continue
            nk = 'norm' + k[5:]
        else:
            nk = k
        out[nk] = v.contiguous() if torch.is_tensor(v) else v
    return out
