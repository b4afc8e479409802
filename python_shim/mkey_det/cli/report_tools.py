"""Python side of ``mkey-det report``.

* ``python report_tools.py describe CONFIG...`` (:func:`describe_configs`): the identity of each
  run from its config file, read as data and never executed (:func:`read_config_data`): backbone
  type, manifold key, charts, seed, loop length, the ``mkey_experiment`` dict, and a fingerprint
  of the config without seed and launch-only settings (same fingerprint = same configuration).
  A report is often made over runs someone else sent: reading their numbers must not run them.
* ``python report_tools.py plot --data series.json --prefix out/report [--format png,svg]``: the
  report's plots (training loss, learning rate, box/mask AP or top-1/top-5), drawn once each by
  matplotlib and saved as PNG and/or as SVG ready to inline in the HTML report (the one renderer
  of both); prints ``{format: {name: path}}`` as JSON. Run by file path so it does not import
  torch or mmdet.
"""
from __future__ import annotations

import argparse
import ast
import copy
import hashlib
import html
import io
import json
import math
import os
import re
import stat
import sys
from typing import Any

# Top-level config keys that change from launch to launch without changing the experiment.
_VOLATILE_TOP = ('work_dir', 'resume', 'load_from', 'launcher', 'filename')
# mkey_experiment fields that do not define the configuration.
_VOLATILE_EXPERIMENT = ('seed', 'generator')


def _plain(value: Any) -> Any:
    """ConfigDict/tuple trees as plain JSON-able data (tuples as lists, other objects as repr)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    return repr(value)


def fingerprint(cfg: dict[str, Any]) -> str:
    """sha256 (16 hex digits) of the config without seed, work_dir and launch-only settings."""
    d = copy.deepcopy(_plain(cfg))
    for k in _VOLATILE_TOP:
        d.pop(k, None)
    if isinstance(d.get('randomness'), dict):
        d['randomness'].pop('seed', None)
    if isinstance(d.get('mkey_experiment'), dict):
        for k in _VOLATILE_EXPERIMENT:
            d['mkey_experiment'].pop(k, None)
    blob = json.dumps(d, sort_keys=True, separators=(',', ':'))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _num(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


class _NotData(Exception):
    """An expression that is not plain data (a call, an operator, a comprehension...)."""


def _literal(node: ast.AST, names: dict[str, Any]) -> Any:
    """The value of a data expression of a config file, without evaluating anything.

    Accepted: constants, lists, tuples, sets, ``{...}`` and ``dict(k=v)`` (mmengine's dumped
    configs are written in these), ``float('inf')``, a sign on a number, and names: one assigned
    earlier in the file gives its value, any other (a class of a lazy-import config, ``{{_base_}}``
    style references) gives its own name as a string, never looked up.
    """
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return [_literal(e, names) for e in node.elts]
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise _NotData('** in a dict')
        return {_literal(k, names): _literal(v, names) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        if node.func.id == 'dict' and not node.args and all(k.arg for k in node.keywords):
            return {k.arg: _literal(k.value, names) for k in node.keywords}
        if node.func.id == 'float' and len(node.args) == 1 and not node.keywords:
            arg = _literal(node.args[0], names)
            if isinstance(arg, str) and arg.strip().lower() in ('inf', '-inf', '+inf', 'nan'):
                return float(arg)
        raise _NotData(f'a call of {node.func.id}()')
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _literal(node.operand, names)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return -v if isinstance(node.op, ast.USub) else v
        raise _NotData('a sign on a non-number')
    if isinstance(node, ast.Name):
        return copy.deepcopy(names[node.id]) if node.id in names else node.id
    if isinstance(node, ast.Attribute):
        parts = []
        cur: ast.AST = node
        while isinstance(cur, ast.Attribute):
            parts.append(cur.attr)
            cur = cur.value
        if isinstance(cur, ast.Name):
            return '.'.join([cur.id, *reversed(parts)])
    raise _NotData(type(node).__name__)


def read_config_data(path: str) -> dict[str, Any]:
    """The top-level assignments of a config file whose values are plain data; nothing executed.

    mmengine runs a config file as Python (``Config.fromfile``); a run's ``config.py`` is the config
    mmengine dumped at launch, all data, so reading it as data loses nothing, and a line someone
    added to it is skipped instead of run. ``_base_`` files are not followed (they are code too).
    """
    if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO would block the read for ever
        raise ValueError(f'{path} is not a regular file')
    with open(path, encoding='utf-8') as f:
        tree = ast.parse(f.read(), filename=path)
    names: dict[str, Any] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and all(isinstance(t, ast.Name) for t in stmt.targets):
            try:
                value = _literal(stmt.value, names)
            except _NotData:
                continue
            for t in stmt.targets:
                names[t.id] = value
    return names


def describe_config(path: str) -> dict[str, Any]:
    """Identity of one run from its config file, read as data (raises on an unreadable file)."""
    d = _plain(read_config_data(path))
    model = d.get('model') if isinstance(d.get('model'), dict) else {}
    backbone = model.get('backbone') if isinstance(model.get('backbone'), dict) else {}
    exp = d.get('mkey_experiment') if isinstance(d.get('mkey_experiment'), dict) else {}
    train_cfg = d.get('train_cfg') if isinstance(d.get('train_cfg'), dict) else {}
    randomness = d.get('randomness') if isinstance(d.get('randomness'), dict) else {}

    btype = backbone.get('type')
    key = backbone.get('key_type') or exp.get('key_type') or exp.get('key')
    if key is None and isinstance(btype, str) and 'swin' in btype.lower():
        key = 'linear'  # mmdet's own SwinTransformer: the plain linear key
    charts = backbone.get('num_charts', exp.get('charts'))
    if key == 'linear':
        charts = None
    seed = randomness['seed'] if 'seed' in randomness else exp.get('seed')
    loop = str(train_cfg.get('type', ''))
    by_iter = 'IterBased' in loop or ('max_iters' in train_cfg and 'max_epochs' not in train_cfg)
    return {
        'backbone_type': btype if isinstance(btype, str) else None,
        'key_type': key if isinstance(key, str) else None,
        'num_charts': _num(charts),
        'seed': _num(seed),
        'max_epochs': None if by_iter else _num(train_cfg.get('max_epochs')),
        'max_iters': _num(train_cfg.get('max_iters')) if by_iter else None,
        'schedule': exp.get('schedule') if isinstance(exp.get('schedule'), str) else None,
        'backbone_name': exp.get('backbone') if isinstance(exp.get('backbone'), str) else None,
        'experiment': exp or None,
        'fingerprint': fingerprint(d),
    }


def describe_configs(paths: list[str]) -> list[dict[str, Any]]:
    """:func:`describe_config` for each path; a bad config gives ``ok: False`` and a one-line error."""
    out: list[dict[str, Any]] = []
    for p in paths:
        try:
            out.append({'path': p, 'ok': True, **describe_config(p)})
        except Exception as exc:  # noqa: BLE001 - one bad config must not hide the other runs
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ''
            out.append({'path': p, 'ok': False, 'error': f'{type(exc).__name__}: {msg}'[:300]})
    return out


# ---------------------------------------------------------------- plots

#: One color per run, in order (Okabe-Ito, readable with color-vision deficiencies).
COLORS = ('#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#000000', '#F0E442')

#: What ``plot --format`` writes: PNG files (next to the report), and SVG fit to inline in the HTML
#: report (:func:`embeddable_svg`), both saved from the same figure.
FORMATS = ('png', 'svg')

#: Start of the ids kept in an embeddable SVG (the runs' line groups, the legends, the root), so
#: that the figures of one HTML page never share an id.
ID_PREFIX = 'mkey-'

#: Settings of every figure: DejaVu Sans (matplotlib's own font, the one the PNGs always used) named
#: alone in the SVG's font-family, and run labels as plain text (a ``$`` in a label is no mathtext).
_RC = {'font.sans-serif': ['DejaVu Sans'], 'text.parse_math': False}


def _draw_series(ax: Any, series: list[dict[str, Any]], key: str, title: str, xlabel: str,
                 ylabel: str, empty: str, **style: Any) -> None:
    """One line per run from its ``key`` points ``[[x, y], ...]``; ``empty`` when no run has any.
    The x axis counts iterations or epochs: whole numbers only on it. Each run's line is the group
    ``mkey-<key>-<run index>`` in the SVG, the legend ``mkey-<key>-legend``."""
    from matplotlib.ticker import MaxNLocator

    for i, s in enumerate(series):
        pts = s.get(key) or []
        if pts:
            # one point is a dot (a line through one point draws nothing)
            dot = {'marker': 'o', 'ms': 4} if len(pts) == 1 and 'marker' not in style else {}
            ax.plot([p[0] for p in pts], [p[1] for p in pts], label=s['label'], gid=f'{ID_PREFIX}{key}-{i}',
                    color=COLORS[i % len(COLORS)], lw=1.4, **style, **dot)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    xs = {p[0] for s in series for p in (s.get(key) or [])}
    if len(xs) == 1:
        # every run's points at one step (one evaluation each, as a sweep's short cells have):
        # matplotlib would span +-5% around it, where no whole number lies but that step
        x = next(iter(xs))
        ax.set_xlim(x - 1, x + 1)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    if any(s.get(key) for s in series):
        ax.legend(fontsize=8).set_gid(f'{ID_PREFIX}{key}-legend')
    else:
        ax.text(0.5, 0.5, empty, ha='center', va='center', transform=ax.transAxes, color='#777')


def _figures(series: list[dict[str, Any]]) -> Any:
    """``(name, title, figure)`` of each plot, one at a time: ``loss``, ``lr``, then ``ap`` (box and
    mask AP) or, for classification series (``top1``/``top5``), ``top1`` (top-1 and top-5)."""
    import matplotlib.pyplot as plt

    for key, title in (('loss', 'Training loss'), ('lr', 'Learning rate')):
        fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
        _draw_series(ax, series, key, title, 'iteration', key, 'no data yet')
        yield key, title, fig

    by_iter = bool(series) and all(s.get('evalBy') == 'iter' for s in series)
    if series and all('top1' in s for s in series):
        # classification (mkey-det pretrain): top-1 and top-5 instead of box and mask AP
        name, ylabel, panels = 'top1', 'accuracy (%)', (('top1', 'Top-1 accuracy'), ('top5', 'Top-5 accuracy'))
    else:
        name, ylabel, panels = 'ap', 'AP (%)', (('apBox', 'Box AP'), ('apMask', 'Mask AP'))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=110)
    for ax, (key, title) in zip(axes, panels):
        _draw_series(ax, series, key, title, 'iteration' if by_iter else 'epoch', ylabel,
                     'no evaluation yet', marker='o', ms=4)
    yield name, f'{panels[0][1]} and {panels[1][1]}', fig


_TAG = re.compile(r'<[^>]+>')  # matplotlib escapes <, > in text and attributes: every < opens a tag
_DEF_PATH = re.compile(r'<path id="([^"]+)" d="([^"]*)"(?: style="([^"]*)")?\s*/>')
_USE = re.compile(r'<use xlink:href="#([^"]+)" x="([^"]*)" y="([^"]*)"(?: style="([^"]*)")?\s*/>')
_STYLE_DEFS = re.compile(r'<defs>\s*<style type="text/css">\s*\*\s*\{([^}<]*)\}\s*</style>\s*</defs>')


_DECIMALS = re.compile(r'(?<![\w#.])-?\d+\.\d{3,}')


def _unwrap_bare_groups(svg: str) -> str:
    """``<g>...</g>`` without attributes (the groups whose ids were dropped) as their content."""
    out: list[str] = []
    stack: list[bool] = []
    pos = 0
    for m in _TAG.finditer(svg):
        tag = m[0]
        out.append(svg[pos:m.start()])
        pos = m.end()
        if tag == '<g>':
            stack.append(True)
            continue
        if tag.startswith('<g ') and not tag.endswith('/>'):
            stack.append(False)
        elif tag == '</g>' and stack and stack.pop():
            continue
        out.append(tag)
    out.append(svg[pos:])
    return ''.join(out)


def _circle_radius(d: str) -> float | None:
    """The radius of a marker path that is matplotlib's circle (``M 0 r``, Bezier segments ending on
    the circle, ``z``), else None."""
    m = re.fullmatch(r'\s*M 0 (\S+)\s+((?:C(?: \S+){6}\s+)+)z\s*', d)
    if not m:
        return None
    try:
        r = float(m[1])
        nums = [float(v) for v in m[2].replace('C', ' ').split()]
    except ValueError:
        return None
    ends = [(nums[i + 4], nums[i + 5]) for i in range(0, len(nums), 6)]
    if r <= 0 or len(ends) < 4 or any(abs(math.hypot(x, y) - r) > 1e-3 * r for x, y in ends):
        return None
    return r


def _css(text: str | None) -> dict[str, str]:
    pairs = (kv.split(':', 1) for kv in (text or '').split(';') if ':' in kv)
    return {k.strip(): v.strip() for k, v in pairs}


def embeddable_svg(svg: str, svg_id: str, title: str) -> str:
    """matplotlib's SVG (saved with ``svg.fonttype='none'``: text stays text) made fit to inline in
    an HTML page that holds several: no XML prolog or DOCTYPE; the markers (ticks, points) that
    matplotlib defines once and places with ``<use xlink:href>`` written out as paths, so the
    figure refers to nothing but its own clip paths; those clip paths' ids prefixed with
    ``svg_id``, matplotlib's other ids (``figure_1``, ``axes_1``, ... the same in every figure)
    dropped, the ``mkey-`` ids of :func:`_draw_series` kept; the ``*{stroke-linejoin...}`` style
    sheet (global in a page) as the root's inherited style; no whitespace between tags; ``id``,
    ``role="img"`` and ``aria-label`` on the root."""
    svg = svg[svg.index('<svg'):].strip()
    defs = {m[1]: (m[2], m[3]) for m in _DEF_PATH.finditer(svg)}

    def expand(m: re.Match[str]) -> str:
        ref, x, y, style = m.groups()
        if ref not in defs:
            return m[0]
        d, own = defs[ref]
        css = {**_css(style), **_css(own)}  # what the marker path sets wins, as through <use>
        style_attr = (' style="' + '; '.join(f'{k}: {v}' for k, v in css.items()) + '"') if css else ''
        r = _circle_radius(d)
        if r is not None:  # the 'o' marker: one <circle>, not its 8 Bezier segments
            return f'<circle cx="{x}" cy="{y}" r="{r:g}"{style_attr}/>'
        return f'<path d="{d}" transform="translate({x} {y})"{style_attr}/>'

    svg = _USE.sub(expand, svg)
    used = set(re.findall(r'href="#([^"]+)"', svg))
    svg = _DEF_PATH.sub(lambda m: m[0] if m[1] in used or m[1] not in defs else '', svg)
    svg = re.sub(r'<defs>\s*</defs>', '', svg)
    root_style = ''
    sheet = _STYLE_DEFS.search(svg)
    if sheet:
        root_style = ';'.join(f'{k}:{v}' for k, v in _css(sheet[1]).items())
        svg = svg[:sheet.start()] + svg[sheet.end():]

    refs = set(re.findall(r'url\(#([^)]+)\)', svg)) | set(re.findall(r'href="#([^"]+)"', svg))

    def fix_id(m: re.Match[str]) -> str:
        if m[1] in refs:
            return f' id="{svg_id}-{m[1]}"'
        return m[0] if m[1].startswith(ID_PREFIX) else ''

    def fix_tag(m: re.Match[str]) -> str:
        tag = re.sub(r'\s*\n\s*', ' ', m[0])  # path data over several lines
        tag = _DECIMALS.sub(lambda r: f'{float(r[0]):.2f}'.rstrip('0').rstrip('.'), tag)  # 1/100 pt is plenty
        tag = re.sub(r' transform="rotate\(-?0 [^"]*\)"', '', tag)  # text not turned
        tag = re.sub(r' id="([^"]+)"', fix_id, tag)
        tag = re.sub(r'url\(#([^)]+)\)', lambda r: f'url(#{svg_id}-{r[1]})', tag)
        return re.sub(r'href="#([^"]+)"', lambda r: f'href="#{svg_id}-{r[1]}"', tag)

    svg = _unwrap_bare_groups(_TAG.sub(fix_tag, svg))
    svg = re.sub(r'>\s+<', '><', svg)
    head_end = svg.index('>')
    head = svg[:head_end]
    if 'xlink:' not in svg[head_end:]:
        head = re.sub(r'\s+xmlns:xlink="[^"]*"', '', head)
    head = re.sub(r'\s+(id|role|aria-label|style)="[^"]*"', '', head)
    attrs = f' id="{svg_id}" role="img" aria-label="{html.escape(title, quote=True)}"'
    if root_style:
        attrs += f' style="{root_style}"'
    return head + attrs + svg[head_end:]


def check_formats(formats: tuple[str, ...] | list[str]) -> None:
    """ValueError unless ``formats`` is a non-empty list of :data:`FORMATS`."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ValueError(f'{",".join(unknown) or "empty"}: accepted {",".join(FORMATS)}')


#: The PNG text key naming what a report's plot was drawn from (src/core/report/plots.ts reads it).
PLOTS_TAG_KEY = 'mkey-det report plots'


def write_plots(series: list[dict[str, Any]], prefix: str, formats: tuple[str, ...] | list[str] = ('png',),
                tag: str | None = None) -> dict[str, dict[str, str]]:
    """Draws each figure of :func:`_figures` once and saves it in each of ``formats`` as
    ``<prefix>-<name>.<format>`` (``loss``, ``lr``, ``ap`` or ``top1``); the SVG files are
    :func:`embeddable_svg`'s. Returns ``{format: {name: path}}``. ``tag`` (the digest of the
    series) goes into each PNG as the text ``PLOTS_TAG_KEY``: a later report of the same runs
    knows those files as its own."""
    check_formats(formats)
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
    files: dict[str, dict[str, str]] = {fmt: {} for fmt in formats}
    with matplotlib.rc_context(_RC):
        for name, title, fig in _figures(series):
            try:
                fig.tight_layout()
                for fmt in formats:
                    path = f'{prefix}-{name}.{fmt}'
                    if fmt == 'png':
                        fig.savefig(path, metadata={PLOTS_TAG_KEY: tag} if tag else None)
                    else:
                        buf = io.StringIO()
                        # a fixed salt per figure: the same report gives the same SVG, and figures differ
                        with matplotlib.rc_context({'svg.fonttype': 'none', 'svg.hashsalt': f'{ID_PREFIX}{name}'}):
                            fig.savefig(buf, format='svg', metadata={'Creator': None, 'Date': None, 'Format': None, 'Type': None})
                        with open(path, 'w', encoding='utf8') as f:
                            f.write(embeddable_svg(buf.getvalue(), f'{ID_PREFIX}plot-{name}', title))
                    files[fmt][name] = path
            finally:
                plt.close(fig)
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='report_tools.py', description=__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='cmd', required=True)
    p_plot = sub.add_parser('plot', help='draw the report plots (PNG files, SVG to inline in html)')
    p_plot.add_argument('--data', required=True, help='JSON file {"series": [...]} as mkey-det report writes it')
    p_plot.add_argument('--prefix', required=True, help='output path prefix: <prefix>-loss.<format>, -lr, -ap (or -top1)')
    p_plot.add_argument('--format', default='png', help=f'comma-separated formats, each figure drawn once: {",".join(FORMATS)} (default png)')
    p_desc = sub.add_parser('describe', help='print the identity of config files as JSON')
    p_desc.add_argument('configs', nargs='+')
    args = parser.parse_args(argv)
    if args.cmd == 'plot':
        with open(args.data, 'rb') as f:
            raw = f.read()
        series = json.loads(raw)['series']
        formats = [f.strip() for f in args.format.split(',') if f.strip()]
        try:
            check_formats(formats)
        except ValueError as exc:
            parser.error(f'--format: {exc}')
        # the digest of the data file's bytes, as plots.ts computes it from the same JSON text
        print(json.dumps(write_plots(series, args.prefix, formats, tag=hashlib.sha256(raw).hexdigest())))
    else:
        print(json.dumps(describe_configs(args.configs), indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
