"""Per-head attention maps of one attention block over an image (the paper's Fig. 2, for Swin;
ViT's class-token maps: :mod:`.attention_vit`, drawn with this module's image and plot helpers).

What is shown is what the model computes: the attention probabilities are taken from the block's
own ``softmax`` module (a forward hook on ``block.attn.w_msa.softmax``, mmdet's ``WindowMSA``
and :class:`~mkey_det.models.backbones.ManifoldKeyWindowMSA` alike), after the relative position
bias and the shifted-window mask, whatever computes the key (linear, a manifold key in either
``key_order``, a :class:`~mkey_det.models.keys.FoldedKey`). The tokens of every window are mapped
back to the block's feature grid with the block's own padding, cyclic shift and
``window_partition`` (:func:`window_cells`), so shifted windows land where they belong.

For a block with feature grid ``H x W`` (stage ``s``: ``stride = 4 * 2**s`` input pixels per
cell), heads ``h`` and windows of ``N = window_size**2`` tokens, with ``P[w, h, i, j]`` the
probability that query ``i`` of window ``w`` gives key ``j``:

``query`` map (per head)
    the row of one query location ``q``: ``P[w(q), h, i(q), :]`` placed at its keys' cells; the
    cells outside ``q``'s window are not attended (NaN in the plot, 0 in the JSON with
    ``in_window`` telling them apart). Shifted windows are masked by mmdet with -100 (not
    -inf) between the regions that the roll brought together, so those keys get ~e^-100.
``received`` map (per head)
    for every location ``j``, the attention it receives, summed over the queries of its window:
    ``sum_i P[w, h, i, j]`` over the real (non-padding) queries ``i``. A window where every
    query spread its attention evenly gives 1 everywhere; values above 1 mark locations that
    many queries look at.

Keys in the padding (right and bottom, to a multiple of the window) are no image location: the
share of a query's attention that goes there is reported (``padding_share``), not drawn.

Numbers per head (JSON): ``entropy`` of the query row (nats; ``log N`` is uniform),
``max`` and its cell, ``self`` (the query's attention to itself), ``mean_distance`` (attention-
weighted distance from the query, in cells), and the ``received`` map's max and min.
"""
from __future__ import annotations

import math
import os
import textwrap
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

#: ImageNet mean and std on a 0-255 RGB image (mmdet's Swin configs, mmpretrain's)
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


class _Captured(Exception):
    """Raised by a capturing hook once the chosen block has run: the rest is not needed."""


def layer_index(layer: Optional[int], n: int, numbering: str) -> int:
    """Attention layer ``layer`` of ``n`` (0-based; None: the last); ValueError naming the range
    and how the layers are counted (``numbering``) when it is not one."""
    if layer is None:
        return n - 1
    if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < n:
        raise ValueError(f'--layer must be an attention layer 0..{n - 1} ({numbering}), got {layer!r}')
    return layer


def check_one_image(image: torch.Tensor, who: str) -> None:
    """``image`` must be one image ``(1, 3, H, W)``; ValueError naming ``who`` takes it otherwise."""
    if image.dim() != 4 or image.shape[0] != 1:
        raise ValueError(f'{who} takes one image (1, 3, H, W), got {tuple(image.shape)}')


def run_until_captured(backbone, image: torch.Tensor, seen: Dict[str, Any],
                       remove_hooks: Callable[[], None], missing: str) -> None:
    """``backbone(image)`` until a hook has put ``probs`` in ``seen`` and raised :class:`_Captured`
    (or to the end when it does not stop); the hooks are removed either way. RuntimeError
    (``missing``) when no ``probs`` came."""
    try:
        backbone(image)
    except _Captured:
        pass
    finally:
        remove_hooks()
    if 'probs' not in seen:
        raise RuntimeError(missing)


def attention_blocks(backbone) -> List[Dict[str, Any]]:
    """Every attention block of a Swin backbone in depth order: ``{layer, stage, block, attn}``
    (``attn`` the block's ``ShiftWindowMSA``), numbered as ``analyze qk`` numbers them."""
    if not hasattr(backbone, 'stages'):
        raise ValueError(f'{type(backbone).__name__}: analyze attention draws Swin backbones '
                         '(window attention) only')
    out = []
    for si, stage in enumerate(backbone.stages):
        for bi, block in enumerate(stage.blocks):
            out.append(dict(layer=len(out), stage=si, block=bi, attn=block.attn))
    return out


def pick_block(backbone, layer: Optional[int]) -> Dict[str, Any]:
    """Block ``layer`` (depth order, 0-based; None: the last); ValueError when out of range."""
    blocks = attention_blocks(backbone)
    return blocks[layer_index(layer, len(blocks), 'depth order over the stages')]


@torch.no_grad()
def window_cells(attn, hw_shape: Tuple[int, int]) -> torch.Tensor:
    """``(windows, N)``: the feature-grid cell (``y * W + x``) of every window token, -1 for
    padding, in the order ``ShiftWindowMSA`` hands windows to its ``w_msa`` (batch 1): its own
    padding, roll and ``window_partition`` applied to a map of cell numbers."""
    h, w = hw_shape
    ws, shift = attn.window_size, attn.shift_size
    ids = torch.arange(1, h * w + 1, dtype=torch.float64).view(1, h, w, 1)
    pad_r, pad_b = (ws - w % ws) % ws, (ws - h % ws) % ws
    ids = F.pad(ids, (0, 0, 0, pad_r, 0, pad_b))  # 0 = padding
    if shift > 0:
        ids = torch.roll(ids, shifts=(-shift, -shift), dims=(1, 2))
    return attn.window_partition(ids).reshape(-1, ws * ws).round().long() - 1


@dataclass
class WindowAttention:
    """The attention probabilities of one block on one image, with where each token sits."""
    probs: torch.Tensor   # (windows, heads, N, N), float64
    cells: torch.Tensor   # (windows, N), -1 for padding
    grid: Tuple[int, int]  # feature grid (H, W)
    layer: int
    stage: int
    block: int
    window: int
    shift: int
    stride: int

    @property
    def heads(self) -> int:
        return int(self.probs.shape[1])


@torch.no_grad()
def window_attention(backbone, image: torch.Tensor, layer: Optional[int] = None,
                     stop: bool = True) -> WindowAttention:
    """Run ``backbone`` on ``image: (1, 3, H, W)`` up to block ``layer`` (None: the last) and
    return its attention probabilities as computed (hooks; see the module docstring).
    ``stop``: end the forward pass at that block's softmax (False: run the whole backbone)."""
    check_one_image(image, 'window_attention')
    blk = pick_block(backbone, layer)
    attn = blk['attn']
    seen: Dict[str, Any] = {}

    def pre(_module, args):
        seen['hw'] = tuple(int(v) for v in args[1])

    def post(_module, _inputs, output):
        seen['probs'] = output.detach()
        if stop:
            raise _Captured

    handles = [attn.register_forward_pre_hook(pre),
               attn.w_msa.softmax.register_forward_hook(post)]
    run_until_captured(backbone, image, seen, lambda: [h.remove() for h in handles],
                       f'block {blk["layer"]} did not run its softmax (is it a Swin block?)')
    cells = window_cells(attn, seen['hw'])
    probs = seen['probs'].double()
    if probs.shape[0] != cells.shape[0] or probs.shape[-1] != cells.shape[1]:
        raise RuntimeError(f'attention {tuple(probs.shape)} does not match {tuple(cells.shape)} '
                           'window tokens')
    return WindowAttention(probs=probs, cells=cells, grid=seen['hw'], layer=blk['layer'],
                           stage=blk['stage'], block=blk['block'], window=int(attn.window_size),
                           shift=int(attn.shift_size), stride=4 * 2**blk['stage'])


def query_maps(wa: WindowAttention, cell: int) -> Dict[str, Any]:
    """What location ``cell`` (``y * W + x``) attends to, per head: ``maps (heads, H*W)`` (0
    outside its window), ``in_window (H*W,)`` bool, ``padding_share (heads,)``, ``window``."""
    hits = (wa.cells == cell).nonzero()
    if hits.shape[0] != 1:
        raise ValueError(f'cell {cell} is not in the grid {wa.grid}')
    w, t = int(hits[0, 0]), int(hits[0, 1])
    row = wa.probs[w, :, t, :]  # (heads, N)
    keys = wa.cells[w]
    valid = keys >= 0
    maps = torch.zeros(wa.heads, wa.grid[0] * wa.grid[1], dtype=row.dtype)
    maps[:, keys[valid]] = row[:, valid]
    in_window = torch.zeros(wa.grid[0] * wa.grid[1], dtype=torch.bool)
    in_window[keys[valid]] = True
    return dict(maps=maps, in_window=in_window, padding_share=row[:, ~valid].sum(-1), window=w,
                token=t)


def received_maps(wa: WindowAttention) -> torch.Tensor:
    """``(heads, H*W)``: per location, the attention it receives summed over the real queries of
    its window."""
    q_real = (wa.cells >= 0).to(wa.probs.dtype)                      # (windows, N)
    col = (wa.probs * q_real[:, None, :, None]).sum(dim=2)           # (windows, heads, N)
    keys = wa.cells.reshape(-1)
    valid = keys >= 0
    flat = col.permute(1, 0, 2).reshape(wa.heads, -1)                # (heads, windows*N)
    out = torch.zeros(wa.heads, wa.grid[0] * wa.grid[1], dtype=wa.probs.dtype)
    return out.index_add_(1, keys[valid], flat[:, valid])


def _head_stats(wa: WindowAttention, q: Dict[str, Any], cell: int, received: torch.Tensor
                ) -> List[Dict[str, Any]]:
    gw = wa.grid[1]
    qy, qx = divmod(cell, gw)
    ys = torch.arange(wa.grid[0] * gw) // gw
    xs = torch.arange(wa.grid[0] * gw) % gw
    dist = ((ys - qy).double()**2 + (xs - qx).double()**2).sqrt()
    full_row = wa.probs[q['window'], :, q['token'], :]
    out = []
    for h in range(wa.heads):
        m = q['maps'][h]
        p = full_row[h].clamp_min(1e-300)
        top = int(m.argmax())
        out.append(dict(
            head=h, entropy=float(-(full_row[h] * p.log()).sum()), max=float(m.max()),
            max_cell=[top // gw, top % gw], self=float(m[cell]),
            mean_distance=float((m * dist).sum() / m.sum().clamp_min(1e-300)),
            padding_share=float(q['padding_share'][h]),
            received_max=float(received[h].max()), received_min=float(received[h].min())))
    return out


def _grid(values: torch.Tensor, grid: Tuple[int, int], digits: int = 6) -> List[List[float]]:
    rows = values.reshape(grid).tolist()
    return [[round(v, digits) for v in row] for row in rows]


def analyse(wa: WindowAttention, query_cell: Tuple[int, int]) -> Dict[str, Any]:
    """JSON-ready result of one block on one image: layer, query, per-head numbers and maps."""
    gy, gx = wa.grid
    cy, cx = min(max(query_cell[0], 0), gy - 1), min(max(query_cell[1], 0), gx - 1)
    cell = cy * gx + cx
    q = query_maps(wa, cell)
    received = received_maps(wa)
    return dict(
        backbone='swin', layer=wa.layer, stage=wa.stage, block=wa.block, heads=wa.heads,
        window=wa.window, shift=wa.shift, stride=wa.stride, grid=[gy, gx],
        windows=int(wa.cells.shape[0]),
        query_cell=[cy, cx], query_window=q['window'],
        head_stats=_head_stats(wa, q, cell, received),
        in_window=_grid(q['in_window'].to(torch.int64), wa.grid, 0),
        query_maps=[_grid(m, wa.grid) for m in q['maps']],
        received_maps=[_grid(m, wa.grid) for m in received])


def load_image(path: str, size: int, mean: Sequence[float] = IMAGENET_MEAN,
               std: Sequence[float] = IMAGENET_STD, rgb: bool = True,
               crop: Optional[Tuple[int, int]] = None) -> Dict[str, Any]:
    """Read ``path``, resize it so that its longer side is ``size`` pixels (aspect kept),
    normalise. ``crop = (h, w)``: instead, resize it to just cover ``h x w`` and keep the centre
    ``h x w`` (a classification test pipeline's resize and centre crop; ``size`` unused).
    Returns ``tensor (1, 3, h, w)``, ``pixels`` (the resized RGB image, uint8 numpy, for
    drawing), ``size`` (the file's ``[width, height]``), ``input_size`` (``[w, h]``), ``scale``
    and ``crop`` (``[x, y, w, h]``: the part of the file fed, in its pixels)."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert('RGB')
    except Image.DecompressionBombError as exc:
        # a header claiming e.g. 30000 x 30000: Pillow refuses it before decoding; bad input, not a crash
        raise ValueError(f'{path}: not an image that can be read (too large: {exc}; accepted: at most '
                         f'{2 * Image.MAX_IMAGE_PIXELS} pixels)') from None
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f'{path}: not an image that can be read ({exc})') from None
    w0, h0 = im.size
    if crop is None:
        scale = size / max(w0, h0)
        w, h = max(1, round(w0 * scale)), max(1, round(h0 * scale))
        box = [0.0, 0.0, float(w0), float(h0)]
    else:  # the centred region of the file that, scaled, is h x w: resampled in one step
        scale = max(crop[0] / h0, crop[1] / w0)
        h, w = crop
        box = [(w0 - w / scale) / 2, (h0 - h / scale) / 2, w / scale, h / scale]
    im = im.resize((w, h), Image.BICUBIC, box=(box[0], box[1], box[0] + box[2], box[1] + box[3]))
    pixels = np.asarray(im, dtype=np.uint8).copy()
    x = torch.from_numpy(pixels).permute(2, 0, 1).double()
    if not rgb:
        x = x.flip(0)
        mean, std = tuple(mean)[::-1], tuple(std)[::-1]
    x = (x - torch.tensor(mean, dtype=x.dtype).view(3, 1, 1)) / torch.tensor(
        std, dtype=x.dtype).view(3, 1, 1)
    return dict(tensor=x.float().unsqueeze(0), pixels=pixels, size=[w0, h0], input_size=[w, h],
                scale=scale, crop=[round(v, 2) for v in box])


def query_to_cell(query_xy: Optional[Sequence[float]], image: Dict[str, Any], stride: int,
                  grid: Tuple[int, int]) -> Tuple[int, int]:
    """The feature cell ``(y, x)`` under a query point given in the file's pixels (None: the
    image centre), clamped to the grid."""
    w0, h0 = image['size']
    x, y = (w0 / 2, h0 / 2) if query_xy is None else (float(query_xy[0]), float(query_xy[1]))
    if not (0 <= x <= w0 and 0 <= y <= h0):
        raise ValueError(f'--query {x:g},{y:g} is outside the image ({w0} x {h0} pixels)')
    s = image['scale']
    cy = min(max(int(math.floor(y * s / stride)), 0), grid[0] - 1)
    cx = min(max(int(math.floor(x * s / stride)), 0), grid[1] - 1)
    return cy, cx


@dataclass(frozen=True)
class MapRows:
    """One kind of map in the grid, a row block per model: ``key`` names the per-head maps of a
    result (``(heads, gy, gx)`` lists over its ``grid`` of ``stride``-pixel cells), ``mask`` its
    cells to draw (None: all), ``mark`` whether the ``query_cell`` gets a cyan ``+``."""
    kind: str
    key: str
    mask: Optional[str] = None
    mark: bool = False


#: the grid of a Swin: query maps (the query's window only, the query marked), then received maps
SWIN_ROWS = (MapRows('query', 'query_maps', mask='in_window', mark=True),
             MapRows('received', 'received_maps'))


def plot_grid(pixels, entries: Sequence[Tuple[str, Dict[str, Any]]], path: str,
              title: str = '', per_row: int = 12, rows: Sequence[MapRows] = SWIN_ROWS) -> str:
    """One PNG: for each of ``rows`` in turn, one row block per model (``entries`` =
    ``[(label, result)]``, baseline first), its heads left to right (``per_row`` to a row), the
    image with the mean over heads first. Each head is scaled to its own max."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np

    ih, iw = pixels.shape[:2]
    max_heads = max(r['heads'] for _, r in entries)
    cols = 1 + min(per_row, max_heads)
    blocks = []  # (rows spec, label, result, first head, last head)
    for spec in rows:
        for label, r in entries:
            for start in range(0, r['heads'], per_row):
                blocks.append((spec, label, r, start, min(start + per_row, r['heads'])))
    # Axes placed in inches, not by tight_layout: with equal-aspect images it let each row's head
    # titles overlap the row above.
    cell_in, gap_in, left_in, head_title_in = 1.45, 0.05, 0.35, 0.2
    img_w = cell_in - gap_in
    img_h = img_w * ih / iw
    row_h = head_title_in + img_h
    title_lines = textwrap.wrap(title, width=int(cols * cell_in * 15)) if title else []
    title_in = 0.15 + 0.14 * len(title_lines)
    fig_w = left_in + cols * cell_in
    fig_h = title_in + len(blocks) * row_h + 0.05
    fig = plt.figure(figsize=(fig_w, fig_h), dpi=110)
    axes = np.empty((len(blocks), cols), dtype=object)
    for row in range(len(blocks)):
        bottom = fig_h - (title_in + row * row_h + row_h)
        for c in range(cols):
            axes[row, c] = fig.add_axes((
                (left_in + c * cell_in) / fig_w, bottom / fig_h, img_w / fig_w, img_h / fig_h))

    def draw(ax, values, r, in_window):
        gy, gx = r['grid']
        arr = np.asarray(values, dtype=float)
        if in_window is not None:
            arr = np.where(np.asarray(in_window, dtype=bool), arr, np.nan)
        ax.imshow(pixels)
        vmax = np.nanmax(arr) if np.isfinite(arr).any() else 1.0
        ax.imshow(np.ma.masked_invalid(arr), cmap='inferno', alpha=0.65, vmin=0,
                  vmax=vmax if vmax > 0 else 1.0, interpolation='nearest',
                  extent=(0, gx * r['stride'], gy * r['stride'], 0))
        ax.set_xlim(0, iw)
        ax.set_ylim(ih, 0)
        return vmax

    for row, (spec, label, r, lo, hi) in enumerate(blocks):
        maps = r[spec.key]
        in_window = r[spec.mask] if spec.mask else None
        if spec.mark:
            qy, qx = r['query_cell']
            qpx = ((qx + 0.5) * r['stride'], (qy + 0.5) * r['stride'])
        for c in range(cols):
            ax = axes[row, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                if lo == 0:
                    draw(ax, np.mean(np.asarray(maps, dtype=float), axis=0), r, in_window)
                    ax.set_ylabel(f'{label}\n{spec.kind}', fontsize=7)
                    ax.set_title('mean of heads', fontsize=6)
                    if spec.mark:
                        ax.plot(*qpx, marker='+', color='cyan', markersize=7, mew=1.5)
                else:
                    ax.axis('off')
                continue
            h = lo + c - 1
            if h >= hi:
                ax.axis('off')
                continue
            vmax = draw(ax, maps[h], r, in_window)
            if spec.mark:
                ax.plot(*qpx, marker='+', color='cyan', markersize=5, mew=1)
            ax.set_title(f'h{h} max {vmax:.2f}', fontsize=6)
    if title_lines:
        fig.suptitle('\n'.join(title_lines), fontsize=8, y=1 - 0.05 / fig_h, va='top')
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
