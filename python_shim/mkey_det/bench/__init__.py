"""``mkey-det bench``: the cost of a manifold key, measured (see docs/BENCH.md).

Run as a child process by the Node CLI (``python -m mkey_det.bench --suite S``); it writes one
JSON object per line to stdout (the protocol, see :mod:`.common`), everything else to stderr.

Suites:

``params``    parameters and FLOPs (fvcore convention, :mod:`mkey_det.analysis`) of Swin-T and the
              manifold-key variants at 4 and 8 charts, at 224x224 and 800x1216, paper / fast /
              folded.
``module``    forward+backward time of our key modules (order ``'fast'``) against a literal
              transcription of Algorithm 1 (:mod:`.literal`) at every Swin-T stage's shapes,
              with outputs and parameter gradients checked equal.
``backbone``  inference latency of Swin-T and SpatialK (8 charts): eager, folded, TorchScript,
              ONNX (run by the Node side in onnxruntime-node), GFLOP/s against torch.mm's.
``train``     one Mask R-CNN + FPN training step per variant, each in a fresh process: time and
              peak RSS, ratios to the baseline next to the FLOPs ratio.

The variants of every suite come from the key registry (:mod:`mkey_det.models.keys.registry`).
"""
SUITES = ('params', 'module', 'backbone', 'train')

__all__ = ['SUITES']
