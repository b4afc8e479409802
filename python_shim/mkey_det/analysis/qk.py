"""The query-key interaction of every attention head, by singular value decomposition.

Following Pan et al. 2024 ("Dissecting Query-Key Interaction in Vision Transformers",
``../shared/seeds/001``): the logit between a query token ``x_i`` and a key token ``x_j`` of one
head is ``x_i^T A x_j`` with the interaction matrix ``A = scale * W_q,h^T W_k,h`` (C x C, rank
<= d = C / heads; ``scale`` as the attention applies it). Its SVD ``A = sum_r s_r u_r v_r^T``
pairs a query direction ``u_r`` with a key direction ``v_r``, both in the token embedding space.
When ``u_r`` and ``v_r`` point the same way the head attends to tokens *similar* to the query
(grouping); opposite or orthogonal, to *dissimilar* ones (context). The head's summary is the
singular-value-weighted cosine::

    similarity = sum_r s_r cos(u_r, v_r) / sum_r s_r        (in [-1, 1])

**Manifold keys.** A manifold key is linear in the window's tokens (its folded form,
:mod:`mkey_det.models.keys.folded_ops`): ``k_j = sum_c sum_l Lambda_c[j, l] M_c x_l`` (+ the CB
term, a window-wide mean that adds the same vector to every key of a window and so one constant
per query row, which softmax ignores). The key of token ``j`` thus mixes the window's tokens; its
part that comes from token ``j`` itself (zero token offset), averaged over the window's
positions, is ``W_k,0 = sum_c mean_j(Lambda_c[j, j]) M_c``. We report ``A_0 = scale * W_q,h^T
[W_k,0]_h`` as the manifold key's interaction matrix (for the linear key ``Lambda = I``, one chart
and ``W_k,0 = W_k``: the same definition), plus, per chart ``c``, the singular values of
``scale * W_q,h^T [M_c]_h`` and the share of the key that is not at zero offset
(``1 - |mean diag Lambda_c| / mean row-abs-sum Lambda_c``, averaged over charts): how much
spatial mixing the key does beyond the per-token product.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import torch

from ..models.keys.folded_ops import FoldedKeyTensors


def _attention_scale(msa) -> float:
    """The factor of ``q k^T``: a Swin ``WindowMSA``'s ``scale``; mmpretrain's
    ``MultiheadAttention`` (a ViT) applies ``head_dims ** -0.5`` (its scaled dot product; also
    with ``qk_scale`` set, which mmpretrain 1.x reads only as a switch to its Python version)."""
    if hasattr(msa, 'scale'):
        return float(msa.scale)
    return float(msa.head_dims) ** -0.5


def _attention_weights(msa, tokens: int) -> tuple:
    """``(W_q (C, C), folded key, scale)`` of a Swin ``WindowMSA`` or a ViT's
    ``MultiheadAttention`` (linear: ``tokens`` the N of its identity token mixing) or a
    manifold-key one (its own N)."""
    qkv = msa.qkv
    scale = _attention_scale(msa)
    if hasattr(qkv, 'key'):  # ManifoldQKV
        return qkv.q.weight, qkv.key.fold(), scale
    c = msa.embed_dims
    w = qkv.weight
    if w.shape[1] != c:
        raise ValueError(f'{type(msa).__name__}: input_dims {w.shape[1]} != embed_dims {c}: '
                         'the query-key interaction is defined on one token embedding space')
    eye = torch.eye(tokens, dtype=w.dtype, device=w.device)
    return w[:c], FoldedKeyTensors(eye.unsqueeze(0), w[c:2 * c].unsqueeze(0)), scale


def similarity(a: torch.Tensor, rank: int) -> tuple:
    """``(singular values, weighted cosine)`` of one interaction matrix ``a: (C, C)``, using its
    top ``rank`` singular triplets (the head dimension: beyond it they are numerically zero)."""
    u, s, vh = torch.linalg.svd(a.double())
    u, s, v = u[:, :rank], s[:rank], vh[:rank].T
    cos = (u * v).sum(0) / (u.norm(dim=0) * v.norm(dim=0)).clamp_min(1e-30)
    total = float(s.sum())
    return s, (float((s * cos).sum()) / total if total > 0 else 0.0)


def similarity_of_factors(p: torch.Tensor, q: torch.Tensor) -> tuple:
    """:func:`similarity` of ``a = p @ q.T`` (``p, q: (C, d)``, d << C) without forming or
    decomposing the C x C matrix: with thin QRs ``p = Q_p R_p`` and ``q = Q_q R_q``,
    ``a = Q_p (R_p R_q^T) Q_q^T``, so the SVD of the d x d core, ``U' S V'^T``, gives ``a``'s
    singular values ``S`` and vectors ``Q_p U'``, ``Q_q V'`` exactly: O(C d^2) instead of O(C^3)
    (the last Swin-T stage: 768 x 768 per head and chart, the whole analysis 50x faster)."""
    qp, rp = torch.linalg.qr(p.double())
    qq, rq = torch.linalg.qr(q.double())
    uc, s, vch = torch.linalg.svd(rp @ rq.T)
    u, v = qp @ uc, qq @ vch.T
    cos = (u * v).sum(0) / (u.norm(dim=0) * v.norm(dim=0)).clamp_min(1e-30)
    total = float(s.sum())
    return s, (float((s * cos).sum()) / total if total > 0 else 0.0)


def _window_tokens(msa) -> int:
    """N of a Swin ``WindowMSA``: the tokens of one window."""
    return int(msa.window_size[0] * msa.window_size[1])


@torch.no_grad()
def head_interactions(msa, tokens: Optional[int] = None) -> Dict[str, Any]:
    """Every head of one attention (a Swin window attention, or a ViT block's, all ``tokens``
    at once; None: the window's): singular values and similarity of ``A_0`` (module docstring),
    per-chart singular values, and the key's off-diagonal token-mixing share."""
    w_q, folded, scale = _attention_weights(msa, _window_tokens(msa) if tokens is None else tokens)
    w_q = w_q.detach().double()
    mix = folded.token_mix.detach().double()  # (H, N, N)
    charts = folded.weight.detach().double()  # (H, C, C)
    diag = torch.diagonal(mix, dim1=1, dim2=2).mean(1)  # (H,)
    w_k0 = (diag[:, None, None] * charts).sum(0)
    row_abs = mix.abs().sum(2).mean(1).clamp_min(1e-30)
    off_zero = float((1 - diag.abs() / row_abs).mean())
    heads = msa.num_heads
    d = w_q.shape[0] // heads
    out = []
    for h in range(heads):
        rows = slice(h * d, (h + 1) * d)
        s, sim = similarity_of_factors(scale * w_q[rows].T, w_k0[rows].T)
        per_chart = [similarity_of_factors(scale * w_q[rows].T, charts[c][rows].T)[0][:3].tolist()
                     for c in range(charts.shape[0])] if charts.shape[0] > 1 else None
        out.append(dict(similarity=sim, singular_values=s.tolist(),
                        **({'chart_top_singular_values': per_chart} if per_chart else {})))
    return dict(heads=out, charts=int(charts.shape[0]), tokens=int(mix.shape[-1]),
                off_zero_offset_share=off_zero,
                similarity_mean=sum(h['similarity'] for h in out) / len(out))


def backbone_interactions(backbone) -> List[Dict[str, Any]]:
    """One entry per attention block of a Swin backbone (depth order over the stages) or of a ViT
    (mmpretrain's ``VisionTransformer`` and ours: its blocks, ``stage`` 0, every block seeing
    all N tokens, the class token included: 197 at 224 px with 16 px patches)."""
    from .attention_vit import is_vit

    if is_vit(backbone):
        tokens = vit_tokens(backbone)
        return [dict(stage=0, block=i, layer=i, width=int(layer.attn.embed_dims),
                     **head_interactions(layer.attn, tokens))
                for i, layer in enumerate(backbone.layers)]
    layers = []
    for si, stage in enumerate(backbone.stages):
        for bi, block in enumerate(stage.blocks):
            msa = block.attn.w_msa
            layers.append(dict(stage=si, block=bi, layer=len(layers), width=int(msa.embed_dims),
                               **head_interactions(msa)))
    return layers


def vit_tokens(backbone) -> int:
    """N of a ViT at its ``img_size``: the patches plus the class token (and any other extra
    token); a manifold key's own ``num_tokens`` where it has one."""
    n = getattr(backbone, 'num_tokens', None)
    if n:
        return int(n)
    patches = getattr(backbone, 'patch_resolution', None)
    has_cls = getattr(backbone, 'cls_token', None) is not None
    extra = int(getattr(backbone, 'num_extra_tokens', 1 if has_cls else 0))
    if patches is None:
        raise ValueError(f'{type(backbone).__name__}: no patch_resolution to count its tokens')
    return int(patches[0]) * int(patches[1]) + extra


def plot_similarity(series: Dict[str, List[Dict[str, Any]]], path: str, vit: bool = False) -> str:
    """Per layer: every head's similarity (dots) and their mean (line), one colour per model
    (``vit``: the layers are a ViT's blocks, not Swin's stages)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4), dpi=120)
    colors = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd']
    for i, (label, layers) in enumerate(series.items()):
        color = colors[i % len(colors)]
        xs = [entry['layer'] for entry in layers]
        ax.plot(xs, [entry['similarity_mean'] for entry in layers], '-o', color=color, label=label,
                markersize=4)
        for entry in layers:
            ax.scatter([entry['layer']] * len(entry['heads']), [h['similarity'] for h in entry['heads']],
                       s=8, color=color, alpha=0.35)
    ax.axhline(0, color='#888', linewidth=0.8)
    ax.set_xlabel('ViT block (all tokens, the class token included)' if vit
                  else 'attention layer (depth order; Swin stages 2-2-6-2)')
    ax.set_ylabel('similarity: sum s_r cos(u_r, v_r) / sum s_r')
    ax.set_title('Query-key interaction per head (SVD of scale * W_q^T W_k at zero token offset)')
    ax.set_ylim(-1, 1)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
